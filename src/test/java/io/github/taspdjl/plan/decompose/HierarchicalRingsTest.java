package io.github.taspdjl.plan.decompose;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertFalse;
import static org.testng.Assert.assertThrows;
import static org.testng.Assert.assertTrue;

import java.util.List;
import java.util.Optional;
import org.testng.annotations.Test;

public class HierarchicalRingsTest {

    /** Rings valid on the hierarchical graph; with m rings of m*u arcs they use every arc exactly once. */
    private static void assertRings(int m, int u) {
        Optional<List<HamiltonianCycle>> rings = Decompositions.hierarchical(m, u);
        assertTrue(rings.isPresent(), "rings for m=" + m + " u=" + u);
        assertEquals(rings.get().size(), m, "ring count m=" + m + " u=" + u);
        boolean[][] g = Decompositions.hierarchicalAdjacency(m, u);
        Decompositions.verify(rings.get(), g);
        CycleChecks.assertArcDisjointHamiltonian(rings.get(), m * u, g);
        int arcs = 0;
        for (boolean[] row : g) {
            for (boolean a : row) {
                arcs += a ? 1 : 0;
            }
        }
        assertEquals(arcs, m * m * u, "every arc of the graph is on one ring");
    }

    @Test
    public void ringsExistForAcceptanceSizes() {
        for (int m : new int[] {4, 6, 7, 8, 16}) {
            for (int u : new int[] {2, 3, 4, 8}) {
                assertRings(m, u);
            }
        }
    }

    @Test
    public void ringsExistForOtherVerifiedSizes() {
        for (int m : new int[] {1, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14}) {
            for (int u = 2; u <= 9; u++) {
                assertRings(m, u);
            }
            assertRings(m, 16);
        }
        assertRings(24, 5);
        assertRings(32, 3);
    }

    @Test
    public void twoGpusPerNodeWorkOnlyWithAnEvenNodeCount() {
        for (int u = 2; u <= 9; u++) {
            if (u % 2 == 0) {
                assertRings(2, u);
            } else {
                assertFalse(Decompositions.hierarchical(2, u).isPresent(), "m=2 u=" + u);
            }
        }
    }

    @Test
    public void threeAndFiveGpusPerNodeHaveNoRings() {
        for (int u : new int[] {2, 3, 4, 8}) {
            assertFalse(Decompositions.hierarchical(3, u).isPresent(), "m=3 u=" + u);
            assertFalse(Decompositions.hierarchical(5, u).isPresent(), "m=5 u=" + u);
        }
    }

    @Test
    public void ringsUseTheSameRailBetweenNodes() {
        int m = 8;
        int u = 3;
        for (HamiltonianCycle ring : Decompositions.hierarchical(m, u).orElseThrow()) {
            for (int i = 0; i < m * u; i++) {
                int x = ring.at(i);
                int y = ring.at(i + 1);
                if (x / m != y / m) {
                    assertEquals(y % m, x % m, "rail crossing " + x + "->" + y);
                    assertEquals(y / m, (x / m + 1) % u, "next node");
                }
            }
        }
    }

    @Test
    public void badArgumentsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> Decompositions.hierarchical(0, 2));
        assertThrows(IllegalArgumentException.class, () -> Decompositions.hierarchical(8, 1));
    }
}
