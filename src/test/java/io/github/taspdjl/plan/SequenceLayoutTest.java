package io.github.taspdjl.plan;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import org.testng.annotations.Test;

/** Blocks and pieces cut any sequence length exactly, and zigzag places blocks r and 2n-1-r on rank r. */
public class SequenceLayoutTest {

    @Test
    public void piecesPartitionTheSequenceForAnyLength() {
        for (SequenceLayout.Kind kind : SequenceLayout.Kind.values()) {
            for (int n = 1; n <= 9; n++) {
                for (int k = 1; k <= 4; k++) {
                    SequenceLayout l = new SequenceLayout(kind, n, k);
                    for (long len = l.minimumLength(); len < l.minimumLength() + 40; len += 7) {
                        boolean[] seen = new boolean[(int) len];
                        for (int r = 0; r < n; r++) {
                            for (int i = 0; i < k; i++) {
                                for (long[] range : l.chunkRanges(new ChunkId(r, i), len)) {
                                    assertTrue(range[1] > range[0], "empty piece");
                                    for (long x = range[0]; x < range[1]; x++) {
                                        assertTrue(!seen[(int) x], "token " + x + " twice");
                                        seen[(int) x] = true;
                                    }
                                }
                            }
                        }
                        for (int x = 0; x < len; x++) {
                            assertTrue(seen[x], "token " + x + " of " + len + " missing in " + l);
                        }
                    }
                }
            }
        }
    }

    @Test
    public void blockSizesDifferByAtMostOneToken() {
        SequenceLayout l = new SequenceLayout(SequenceLayout.Kind.ZIGZAG, 3, 2);
        long min = Long.MAX_VALUE;
        long max = 0;
        for (int b = 0; b < l.blockCount(); b++) {
            long[] r = l.blockRange(b, 1001);
            min = Math.min(min, r[1] - r[0]);
            max = Math.max(max, r[1] - r[0]);
        }
        assertTrue(max - min <= 1, min + ".." + max);
        assertEquals(l.blockRange(5, 1001)[1], 1001);
    }

    @Test
    public void zigzagPlacesMirroredBlocks() {
        SequenceLayout l = new SequenceLayout(SequenceLayout.Kind.ZIGZAG, 4, 3);
        assertEquals(l.blockCount(), 8);
        assertEquals(l.blocksOfRank(1), new int[] {1, 6});
        assertEquals(l.ownerOfBlock(6), 1);
        assertEquals(l.ownerOfBlock(3), 3);
        assertEquals(new SequenceLayout(SequenceLayout.Kind.CONTIGUOUS, 4, 3).blocksOfRank(2), new int[] {2});
    }

    @Test
    public void tooShortSequenceIsRejected() {
        SequenceLayout l = new SequenceLayout(SequenceLayout.Kind.ZIGZAG, 4, 3);
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class, () -> l.blockRange(0, 23));
        assertTrue(e.getMessage().contains("23") && e.getMessage().contains("24"), e.getMessage());
    }
}
