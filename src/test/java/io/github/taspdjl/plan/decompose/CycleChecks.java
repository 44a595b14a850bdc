package io.github.taspdjl.plan.decompose;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/** An independent check of a cycle set, written apart from {@link Decompositions#verify}. */
final class CycleChecks {

    private CycleChecks() {}

    /** Asserts the cycles are Hamiltonian on n vertices, pairwise arc-disjoint and use only allowed arcs. */
    static void assertArcDisjointHamiltonian(List<HamiltonianCycle> cycles, int n, boolean[][] allowed) {
        Set<Long> arcs = new HashSet<>();
        for (HamiltonianCycle c : cycles) {
            int[] order = c.order();
            assertEquals(order.length, n, "cycle length");
            Set<Integer> seen = new HashSet<>();
            for (int i = 0; i < n; i++) {
                int x = order[i];
                int y = order[(i + 1) % n];
                assertTrue(seen.add(x), "vertex " + x + " repeated in " + c);
                assertTrue(allowed[x][y], "arc " + x + "->" + y + " not allowed");
                assertTrue(arcs.add((long) x * n + y), "arc " + x + "->" + y + " used twice");
            }
        }
    }
}
