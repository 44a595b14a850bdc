package io.github.taspdjl.plan.decompose;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertThrows;
import static org.testng.Assert.assertTrue;

import java.time.Duration;
import java.util.List;
import org.testng.annotations.Test;

public class CycleSearchTest {

    private static final Duration BOUND = Duration.ofSeconds(20);

    /** nvidia-smi topo -m of a DGX-1 with V100: NV1/NV2 link counts between the 8 GPUs. */
    static int[][] dgx1V100() {
        int[][] nv = new int[8][8];
        int[][] links = {
            {0, 1, 1}, {0, 2, 1}, {0, 3, 2}, {0, 4, 2}, {1, 2, 2}, {1, 3, 1}, {1, 5, 2}, {2, 3, 2},
            {2, 6, 1}, {3, 7, 1}, {4, 5, 1}, {4, 6, 1}, {4, 7, 2}, {5, 6, 2}, {5, 7, 1}, {6, 7, 2}};
        for (int[] l : links) {
            nv[l[0]][l[1]] = l[2];
            nv[l[1]][l[0]] = l[2];
        }
        return nv;
    }

    static boolean[][] undirected(int n, int[][] edges) {
        boolean[][] g = new boolean[n][n];
        for (int[] e : edges) {
            g[e[0]][e[1]] = true;
            g[e[1]][e[0]] = true;
        }
        return g;
    }

    static boolean[][] torus(int rows, int cols) {
        boolean[][] g = new boolean[rows * cols][rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int v = r * cols + c;
                int right = r * cols + (c + 1) % cols;
                int down = ((r + 1) % rows) * cols + c;
                g[v][right] = g[right][v] = true;
                g[v][down] = g[down][v] = true;
            }
        }
        return g;
    }

    private static List<HamiltonianCycle> assertCycles(boolean[][] g, int expected) {
        List<HamiltonianCycle> cycles = Decompositions.maxDisjointCycles(g, BOUND);
        assertEquals(cycles.size(), expected);
        Decompositions.verify(cycles, g);
        CycleChecks.assertArcDisjointHamiltonian(cycles, g.length, g);
        return cycles;
    }

    @Test
    public void dgx1V100UsesEveryNvlinkBothWays() {
        int[][] nv = dgx1V100();
        assertEquals(CycleSearch.upperBound(nv), 6);
        List<HamiltonianCycle> cycles = Decompositions.maxDisjointCycles(nv, BOUND);
        assertEquals(cycles.size(), 6);
        Decompositions.verify(cycles, nv);
        // Independent count: each arc i->j used exactly nv[i][j] times (6 cycles x 8 arcs = 48 = all).
        int[][] used = new int[8][8];
        for (HamiltonianCycle c : cycles) {
            for (int i = 0; i < 8; i++) {
                used[c.at(i)][c.at(i + 1)]++;
            }
        }
        for (int i = 0; i < 8; i++) {
            for (int j = 0; j < 8; j++) {
                assertEquals(used[i][j], nv[i][j], "arc " + i + "->" + j);
            }
        }
    }

    @Test
    public void dgx1P100SingleLinksGiveFourCycles() {
        int[][] nv = dgx1V100();
        boolean[][] g = new boolean[8][8];
        for (int i = 0; i < 8; i++) {
            for (int j = 0; j < 8; j++) {
                g[i][j] = nv[i][j] > 0;
            }
        }
        assertCycles(g, 4);
    }

    @Test
    public void toriReachTheDegreeBound() {
        assertCycles(torus(4, 4), 4);
        assertCycles(torus(3, 3), 4);
        assertCycles(torus(2, 4), 2); // 2x4 wraps onto double edges: degree 3 as a simple graph, 2 found
    }

    @Test
    public void cubeQ3HoldsTwoOfThree() {
        int[][] edges = new int[12][];
        int k = 0;
        for (int v = 0; v < 8; v++) {
            for (int b = 0; b < 3; b++) {
                int w = v ^ (1 << b);
                if (v < w) {
                    edges[k++] = new int[] {v, w};
                }
            }
        }
        boolean[][] q3 = undirected(8, edges);
        assertEquals(CycleSearch.upperBound(CycleSearch.toCapacity(q3)), 3);
        assertCycles(q3, 2);
    }

    @Test
    public void ringsHoldOneCyclePerDirection() {
        boolean[][] oneWay = new boolean[6][6];
        for (int i = 0; i < 6; i++) {
            oneWay[i][(i + 1) % 6] = true;
        }
        assertCycles(oneWay, 1);
        boolean[][] bothWays = undirected(6, new int[][] {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 0}});
        assertCycles(bothWays, 2);
    }

    @Test
    public void graphWithoutHamiltonianCycleGivesNone() {
        // Two triangles joined by a single bridge 2-3: no Hamiltonian cycle.
        boolean[][] g = undirected(6, new int[][] {{0, 1}, {1, 2}, {2, 0}, {3, 4}, {4, 5}, {5, 3}, {2, 3}});
        assertTrue(Decompositions.maxDisjointCycles(g, BOUND).isEmpty());
        // A star (a PCIe switch tree seen as a GPU graph) has none either.
        assertTrue(Decompositions.maxDisjointCycles(undirected(4, new int[][] {{0, 1}, {0, 2}, {0, 3}}), BOUND)
                .isEmpty());
    }

    @Test
    public void completeGraphsAgreeWithTheClosedForms() {
        assertCycles(Decompositions.completeAdjacency(5), 4);
        assertCycles(Decompositions.completeAdjacency(4), 2);
        assertCycles(Decompositions.completeAdjacency(6), 4);
    }

    @Test
    public void denseGraphBeyondTheEnumerationCapStillGivesValidCycles() {
        boolean[][] k12 = Decompositions.completeAdjacency(12);
        List<HamiltonianCycle> cycles = Decompositions.maxDisjointCycles(k12, Duration.ofSeconds(5));
        assertTrue(!cycles.isEmpty() && cycles.size() <= 11, "got " + cycles.size());
        CycleChecks.assertArcDisjointHamiltonian(cycles, 12, k12);
    }

    @Test
    public void verifyNamesTheProblem() {
        boolean[][] k4 = Decompositions.completeAdjacency(4);
        HamiltonianCycle c = new HamiltonianCycle(new int[] {0, 1, 2, 3});
        IllegalArgumentException twice = org.testng.Assert.expectThrows(
                IllegalArgumentException.class, () -> Decompositions.verify(List.of(c, c), k4));
        assertTrue(twice.getMessage().contains("0->1"), twice.getMessage());
        boolean[][] ring = new boolean[4][4];
        ring[0][1] = ring[1][2] = ring[2][3] = true;
        IllegalArgumentException missing = org.testng.Assert.expectThrows(
                IllegalArgumentException.class, () -> Decompositions.verify(List.of(c), ring));
        assertTrue(missing.getMessage().contains("3->0"), missing.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> Decompositions.verify(List.of(new HamiltonianCycle(new int[] {0, 1, 2})), k4));
        assertThrows(IllegalArgumentException.class, () -> new HamiltonianCycle(new int[] {0, 1, 1}));
        assertThrows(IllegalArgumentException.class,
                () -> Decompositions.maxDisjointCycles(new boolean[][] {{false, true}}, BOUND));
    }

    @Test
    public void cycleAccessorsAgree() {
        HamiltonianCycle c = new HamiltonianCycle(new int[] {2, 0, 3, 1});
        assertEquals(c.size(), 4);
        assertEquals(c.successor(2), 0);
        assertEquals(c.successor(1), 2);
        assertEquals(c.predecessor(2), 1);
        assertEquals(c.position(3), 2);
        int[] copy = c.order();
        copy[0] = 99;
        assertEquals(c.order()[0], 2, "order() is a copy");
    }
}
