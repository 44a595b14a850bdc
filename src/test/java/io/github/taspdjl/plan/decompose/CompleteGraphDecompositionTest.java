package io.github.taspdjl.plan.decompose;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertFalse;
import static org.testng.Assert.assertThrows;
import static org.testng.Assert.assertTrue;

import java.util.List;
import java.util.Optional;
import org.testng.annotations.Test;

public class CompleteGraphDecompositionTest {

    private static void assertFullDecomposition(int n) {
        Optional<List<HamiltonianCycle>> d = Decompositions.completeGraph(n);
        assertTrue(d.isPresent(), "decomposition of K*_" + n);
        List<HamiltonianCycle> cycles = d.get();
        assertEquals(cycles.size(), n - 1, "cycle count for n=" + n);
        boolean[][] k = Decompositions.completeAdjacency(n);
        Decompositions.verify(cycles, k);
        // n-1 disjoint Hamiltonian cycles of n arcs each are all n(n-1) arcs: the independent check
        // below sees each once.
        CycleChecks.assertArcDisjointHamiltonian(cycles, n, k);
    }

    @Test
    public void oddSizesUpTo129DecomposeByWalecki() {
        for (int n = 3; n <= 129; n += 2) {
            assertFullDecomposition(n);
        }
    }

    @Test
    public void sizesDivisibleByFourUpTo128UseTheClosedForm() {
        for (int n = 8; n <= 128; n += 4) {
            assertFullDecomposition(n);
        }
    }

    @Test
    public void closedFormRainbowPathHoldsForEveryMultipleOfFourUpTo2048() {
        for (int n = 8; n <= 2048; n += 4) {
            int[] path = RainbowPaths.closedFormDivisibleByFour(n);
            int[][] colour = RainbowPathExtension.colours(WaleckiDecomposition.cycles(n - 1), n - 1);
            assertEquals(RainbowPathExtension.rainbowProblem(colour, path), null, "n=" + n);
        }
    }

    @Test
    public void sizesTwoModFourUpTo128Decompose() {
        for (int n = 10; n <= 126; n += 4) {
            assertFullDecomposition(n);
        }
    }

    @Test
    public void everySizeFrom2To128ExceptFourAndSixDecomposes() {
        for (int n = 2; n <= 128; n++) {
            if (n != 4 && n != 6) {
                assertFullDecomposition(n);
            }
        }
    }

    @Test
    public void storedTableCoversEveryTwoModFourSizeFrom10To126() {
        for (int n = 10; n <= 126; n += 4) {
            int[] path = StoredRainbowPaths.get(n);
            assertTrue(path != null, "stored rainbow path for n=" + n);
            int[][] colour = RainbowPathExtension.colours(WaleckiDecomposition.cycles(n - 1), n - 1);
            assertEquals(RainbowPathExtension.rainbowProblem(colour, path), null, "n=" + n);
        }
    }

    @Test
    public void twoRanksFormOneCycleAndOneRankNone() {
        assertEquals(Decompositions.completeGraph(2).orElseThrow(), List.of(new HamiltonianCycle(new int[] {0, 1})));
        assertEquals(Decompositions.completeGraph(1).orElseThrow(), List.of());
    }

    @Test
    public void fourAndSixHaveNoDecompositionButBestEffortSets() {
        assertFalse(Decompositions.completeGraph(4).isPresent());
        assertFalse(Decompositions.completeGraph(6).isPresent());
        List<HamiltonianCycle> four = Decompositions.bestEffortCompleteGraph(4);
        List<HamiltonianCycle> six = Decompositions.bestEffortCompleteGraph(6);
        assertEquals(four.size(), 2);
        assertEquals(six.size(), 4);
        CycleChecks.assertArcDisjointHamiltonian(four, 4, Decompositions.completeAdjacency(4));
        CycleChecks.assertArcDisjointHamiltonian(six, 6, Decompositions.completeAdjacency(6));
        assertEquals(Decompositions.bestEffortCompleteGraph(8).size(), 7);
    }

    @Test
    public void rainbowPathSearchFindsSmallTwoModFourSizes() {
        for (int n = 10; n <= 30; n += 4) {
            int[][] colour = RainbowPathExtension.colours(WaleckiDecomposition.cycles(n - 1), n - 1);
            int[] path = RainbowPaths.search(colour, java.time.Duration.ofSeconds(10), 1).orElseThrow();
            assertEquals(RainbowPathExtension.rainbowProblem(colour, path), null, "n=" + n);
        }
    }

    @Test
    public void rainbowPathSearchFindsNoneForSix() {
        int[][] colour = RainbowPathExtension.colours(WaleckiDecomposition.cycles(5), 5);
        assertFalse(RainbowPaths.search(colour, java.time.Duration.ofMillis(300), 1).isPresent());
    }

    @Test
    public void invalidSizesAreRejectedNamingN() {
        IllegalArgumentException e =
                expectThrows(() -> Decompositions.completeGraph(0));
        assertTrue(e.getMessage().contains("n=0"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Decompositions.bestEffortCompleteGraph(-3));
    }

    private static IllegalArgumentException expectThrows(Runnable r) {
        return org.testng.Assert.expectThrows(IllegalArgumentException.class, r::run);
    }
}
