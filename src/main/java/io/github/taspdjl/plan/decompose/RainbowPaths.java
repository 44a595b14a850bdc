package io.github.taspdjl.plan.decompose;

import java.time.Duration;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * Rainbow Hamiltonian paths over the Walecki decomposition of K*_(n-1), n even (see
 * {@link RainbowPathExtension}). Vertex labels are those of {@link WaleckiDecomposition}: Z_(n-2)
 * plus infinity = n-2.
 */
final class RainbowPaths {

    private RainbowPaths() {}

    /**
     * The closed form for n divisible by 4, n >= 8. With M = n-2 and h = M/2 (odd), the path starts
     * at infinity, goes to 0 and then takes M-1 steps of +(h-2) in Z_M, except at three positions
     * where it steps by -1, -2 and -3; where those defects sit depends on h mod 8. Found by searching
     * "+(h-2) with three defects" for n = 12..76 (one solution each), read off as formulas in h, and
     * checked for every n divisible by 4 up to 4096 (see DecompositionClosedFormTest).
     */
    static int[] closedFormDivisibleByFour(int n) {
        if (n < 8 || n % 4 != 0) {
            throw new IllegalArgumentException("closed-form rainbow path needs n divisible by 4 and >= 8, got n=" + n);
        }
        int m = n - 2;
        int h = m / 2;
        int[] at;
        int[] minus;
        switch (h % 8) {
            case 5:
                at = new int[] {3 * (h - 1) / 4, (3 * h - 1) / 2, (7 * h - 3) / 4};
                minus = new int[] {1, 2, 3};
                break;
            case 7:
                at = new int[] {(3 * h - 5) / 4, 3 * (h - 1) / 2, (7 * h - 5) / 4};
                minus = new int[] {3, 2, 1};
                break;
            case 1:
                at = new int[] {(h - 5) / 4, (h - 3) / 2, 5 * (h - 1) / 4};
                minus = new int[] {3, 2, 1};
                break;
            default: // h % 8 == 3
                at = new int[] {(h - 3) / 4, (h - 1) / 2, (5 * h - 3) / 4};
                minus = new int[] {1, 2, 3};
                break;
        }
        int[] path = new int[n - 1];
        path[0] = m;
        path[1] = 0;
        int step = 0;
        for (int k = 0; k < m - 1; k++) {
            int d = h - 2;
            for (int q = 0; q < 3; q++) {
                if (at[q] == k) {
                    d = m - minus[q];
                }
            }
            step = Math.floorMod(step + d, m);
            path[k + 2] = step;
        }
        return path;
    }

    /**
     * Randomized depth-first search with restarts for a rainbow Hamiltonian path in a coloured
     * complete digraph ({@code colour[x][y]} in 0..n-2). Returns empty when the time bound runs out.
     */
    static Optional<int[]> search(int[][] colour, Duration timeBound, long seed) {
        int n = colour.length;
        if (n <= 1) {
            return Optional.of(new int[n]);
        }
        long deadline = System.nanoTime() + timeBound.toNanos();
        SplittableRandom random = new SplittableRandom(seed);
        Searcher s = new Searcher(colour, random, deadline);
        long budget = 2000L * n;
        while (System.nanoTime() < deadline) {
            int[] found = s.run(random.nextInt(n), budget);
            if (found != null) {
                return Optional.of(found);
            }
            if (s.outOfTime) {
                break;
            }
            budget = Math.min(budget * 11 / 10, 50_000_000L);
        }
        return Optional.empty();
    }

    /** One restart's state; depth-first with random candidate order and a node budget. */
    private static final class Searcher {
        private final int[][] colour;
        private final int n;
        private final SplittableRandom random;
        private final long deadline;
        private final int[] path;
        private final boolean[] usedV;
        private final boolean[] usedC;
        private final int[][] cand;
        private final int[] candCount;
        private final int[] candNext;
        private long nodes;
        private boolean outOfTime;

        Searcher(int[][] colour, SplittableRandom random, long deadline) {
            this.colour = colour;
            this.n = colour.length;
            this.random = random;
            this.deadline = deadline;
            path = new int[n];
            usedV = new boolean[n];
            usedC = new boolean[n];
            cand = new int[n][n];
            candCount = new int[n];
            candNext = new int[n];
        }

        int[] run(int start, long budget) {
            java.util.Arrays.fill(usedV, false);
            java.util.Arrays.fill(usedC, false);
            nodes = 0;
            path[0] = start;
            usedV[start] = true;
            int depth = 0;
            fill(depth);
            while (depth >= 0) {
                if (candNext[depth] < candCount[depth]) {
                    int y = cand[depth][candNext[depth]++];
                    int x = path[depth];
                    int c = colour[x][y];
                    if (usedV[y] || usedC[c]) {
                        continue;
                    }
                    depth++;
                    path[depth] = y;
                    usedV[y] = true;
                    usedC[c] = true;
                    if (depth == n - 1) {
                        return path.clone();
                    }
                    if (++nodes > budget) {
                        return null;
                    }
                    if ((nodes & 0xFFFF) == 0 && System.nanoTime() > deadline) {
                        outOfTime = true;
                        return null;
                    }
                    fill(depth);
                } else {
                    // Backtrack.
                    int y = path[depth];
                    usedV[y] = false;
                    if (depth > 0) {
                        usedC[colour[path[depth - 1]][y]] = false;
                    }
                    depth--;
                }
            }
            return null;
        }

        private void fill(int depth) {
            int x = path[depth];
            int k = 0;
            for (int y = 0; y < n; y++) {
                if (!usedV[y] && !usedC[colour[x][y]]) {
                    cand[depth][k++] = y;
                }
            }
            for (int i = k - 1; i > 0; i--) {
                int j = random.nextInt(i + 1);
                int t = cand[depth][i];
                cand[depth][i] = cand[depth][j];
                cand[depth][j] = t;
            }
            candCount[depth] = k;
            candNext[depth] = 0;
        }
    }
}
