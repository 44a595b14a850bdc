package io.github.taspdjl.plan.decompose;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertThrows;
import static org.testng.Assert.assertTrue;

import org.testng.annotations.Test;

public class DirectScheduleTest {

    @Test
    public void everyRankReceivesEveryChunkOfEveryPeerOnceForN2To32() {
        for (int n = 2; n <= 32; n++) {
            for (int sender = 0; sender < n; sender++) {
                for (int peer = 0; peer < n; peer++) {
                    if (peer == sender) {
                        continue;
                    }
                    boolean[] got = new boolean[n - 1];
                    for (int s = 0; s < n - 1; s++) {
                        int chunk = Decompositions.directChunk(n, s, sender, peer);
                        assertTrue(chunk >= 0 && chunk < n - 1, "chunk in range");
                        assertTrue(!got[chunk], "n=" + n + " peer " + peer + " got chunk " + chunk + " of " + sender
                                + " twice");
                        got[chunk] = true;
                    }
                }
            }
            // One chunk per (sender, peer) per step is structural (a function); a sender's n-1 peers get
            // n-1 different chunks each step, so every chunk leaves the sender once per step.
            for (int s = 0; s < n - 1; s++) {
                for (int sender = 0; sender < n; sender++) {
                    boolean[] sent = new boolean[n - 1];
                    for (int peer = 0; peer < n; peer++) {
                        if (peer != sender) {
                            int chunk = Decompositions.directChunk(n, s, sender, peer);
                            assertTrue(!sent[chunk], "n=" + n + " step " + s + " chunk " + chunk + " sent twice");
                            sent[chunk] = true;
                        }
                    }
                }
            }
        }
    }

    @Test
    public void knownValuesForThreeRanks() {
        // n=3: rank 0 sends chunk (s + (p-1) mod 3) mod 2 to p.
        assertEquals(Decompositions.directChunk(3, 0, 0, 1), 0);
        assertEquals(Decompositions.directChunk(3, 0, 0, 2), 1);
        assertEquals(Decompositions.directChunk(3, 1, 0, 1), 1);
        assertEquals(Decompositions.directChunk(3, 1, 0, 2), 0);
    }

    @Test
    public void badArgumentsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> Decompositions.directChunk(1, 0, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> Decompositions.directChunk(4, 3, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> Decompositions.directChunk(4, 0, 2, 2));
        assertThrows(IllegalArgumentException.class, () -> Decompositions.directChunk(4, 0, 0, 4));
    }
}
