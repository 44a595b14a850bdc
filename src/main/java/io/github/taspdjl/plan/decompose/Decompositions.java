package io.github.taspdjl.plan.decompose;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Decompositions of interconnect graphs into arc-disjoint directed Hamiltonian cycles: the rings
 * along which TASP moves KV chunks. The math is in docs/DECOMPOSITION.md.
 *
 * <p>Complete graphs: odd n by {@link WaleckiDecomposition}; even n by inserting a new vertex along
 * a rainbow path of K*_(n-1) ({@link RainbowPathExtension}): a closed form for n divisible by 4, a
 * stored, load-verified table for n = 2 mod 4 and a time-bounded search beyond the table. Several
 * nodes: {@link HierarchicalRings}. Other graphs: exact search ({@link CycleSearch}).
 */
public final class Decompositions {

    private static final Logger LOG = LoggerFactory.getLogger(Decompositions.class);

    /** Search time for an n = 2 mod 4 size the stored table lacks, when no bound is given. */
    public static final Duration DEFAULT_SEARCH_BOUND = Duration.ofSeconds(20);

    private static final Map<Integer, Optional<List<HamiltonianCycle>>> CACHE = new ConcurrentHashMap<>();
    private static final Map<Integer, List<HamiltonianCycle>> BEST_EFFORT = new ConcurrentHashMap<>();

    private Decompositions() {}

    /**
     * n-1 arc-disjoint directed Hamiltonian cycles of K*_n (every ordered pair of ranks is an arc),
     * which together use every arc exactly once.
     *
     * @param n number of ranks, at least 1. n = 1 gives an empty list (K*_1 has no arc, so zero
     *     cycles decompose it); n = 2 gives the one cycle [0, 1].
     * @return empty for n = 4 and n = 6 (no decomposition exists; see {@link #bestEffortCompleteGraph}),
     *     and for an n = 2 mod 4 beyond the stored table whose search ran out of time
     */
    public static Optional<List<HamiltonianCycle>> completeGraph(int n) {
        return completeGraph(n, DEFAULT_SEARCH_BOUND);
    }

    /** {@link #completeGraph(int)} with an explicit bound for the search used beyond the stored table. */
    public static Optional<List<HamiltonianCycle>> completeGraph(int n, Duration searchBound) {
        if (n < 1) {
            throw new IllegalArgumentException("rank count must be at least 1, got n=" + n);
        }
        if (searchBound == null || searchBound.isNegative()) {
            throw new IllegalArgumentException("search bound must be non-negative, got " + searchBound);
        }
        Optional<List<HamiltonianCycle>> cached = CACHE.get(n);
        if (cached != null) {
            return cached;
        }
        Optional<List<HamiltonianCycle>> result = build(n, searchBound);
        // A search that ran out of time is not cached: a later call with more time may succeed.
        if (result.isPresent() || n == 4 || n == 6) {
            CACHE.put(n, result);
        }
        return result;
    }

    /**
     * {@link #completeGraph(int, Duration)} computed afresh, bypassing the cache: for benchmarks and
     * tools that measure or re-check the construction itself.
     */
    public static Optional<List<HamiltonianCycle>> computeCompleteGraph(int n, Duration searchBound) {
        if (n < 1) {
            throw new IllegalArgumentException("rank count must be at least 1, got n=" + n);
        }
        if (searchBound == null || searchBound.isNegative()) {
            throw new IllegalArgumentException("search bound must be non-negative, got " + searchBound);
        }
        return build(n, searchBound);
    }

    private static Optional<List<HamiltonianCycle>> build(int n, Duration searchBound) {
        if (n % 2 == 1) {
            return Optional.of(List.copyOf(WaleckiDecomposition.cycles(n)));
        }
        if (n == 4 || n == 6) {
            return Optional.empty();
        }
        Optional<int[]> path = rainbowPath(n, searchBound);
        if (path.isEmpty()) {
            LOG.warn("no rainbow path for n={} within {}: no Hamiltonian decomposition of K*_{}", n, searchBound, n);
            return Optional.empty();
        }
        return Optional.of(List.copyOf(RainbowPathExtension.extend(WaleckiDecomposition.cycles(n - 1), path.get())));
    }

    /** The rainbow path used for even n (Walecki labels of K*_(n-1)); empty if none known or found. */
    static Optional<int[]> rainbowPath(int n, Duration searchBound) {
        if (n == 2) {
            return Optional.of(new int[] {0});
        }
        if (n % 4 == 0) {
            return Optional.of(RainbowPaths.closedFormDivisibleByFour(n));
        }
        int[] stored = StoredRainbowPaths.get(n);
        if (stored != null) {
            return Optional.of(stored);
        }
        LOG.info("n={} is not in the stored rainbow-path table; searching for up to {}", n, searchBound);
        int[][] colour = RainbowPathExtension.colours(WaleckiDecomposition.cycles(n - 1), n - 1);
        return RainbowPaths.search(colour, searchBound, n);
    }

    /**
     * The largest set of arc-disjoint directed Hamiltonian cycles of K*_n found: the full
     * decomposition where one exists, 2 cycles for n = 4 and 4 cycles for n = 6 (the most possible;
     * found by exact search and cached).
     */
    public static List<HamiltonianCycle> bestEffortCompleteGraph(int n) {
        if (n < 1) {
            throw new IllegalArgumentException("rank count must be at least 1, got n=" + n);
        }
        if (n != 4 && n != 6) {
            Optional<List<HamiltonianCycle>> full = completeGraph(n);
            if (full.isPresent()) {
                return full.get();
            }
        }
        return BEST_EFFORT.computeIfAbsent(n, k -> {
            boolean[][] adjacency = new boolean[k][k];
            for (int i = 0; i < k; i++) {
                for (int j = 0; j < k; j++) {
                    adjacency[i][j] = i != j;
                }
            }
            return List.copyOf(maxDisjointCycles(adjacency, Duration.ofSeconds(30)));
        });
    }

    /**
     * Direct all-to-all schedule on a complete graph: the index of the chunk (of n-1) that rank
     * {@code sender} sends to {@code peer} at {@code step} (0..n-2). Over the n-1 steps each rank
     * sends every chunk to every peer once, one chunk per peer per step, for every n >= 2 (4 and 6
     * included).
     */
    public static int directChunk(int n, int step, int sender, int peer) {
        if (n < 2) {
            throw new IllegalArgumentException("direct schedule needs at least 2 ranks, got n=" + n);
        }
        if (step < 0 || step > n - 2) {
            throw new IllegalArgumentException("step " + step + " is outside 0.." + (n - 2) + " for n=" + n);
        }
        if (sender < 0 || sender >= n || peer < 0 || peer >= n || sender == peer) {
            throw new IllegalArgumentException(
                    "sender " + sender + " and peer " + peer + " must be distinct ranks in 0.." + (n - 1));
        }
        return (step + Math.floorMod(peer - sender - 1, n)) % (n - 1);
    }

    /**
     * Rings over {@code nodes} nodes of {@code gpusPerNode} GPUs (global rank = node * m + local) that
     * go through every GPU, use every intra-node arc once and NIC rail e (local e of node k to local e
     * of node k+1) between consecutive nodes: m cycles over m * u ranks.
     *
     * @return empty where none exist: m = 3, m = 5, and m = 2 with an odd number of nodes
     * @throws IllegalArgumentException for gpusPerNode < 1 or nodes < 2
     */
    public static Optional<List<HamiltonianCycle>> hierarchical(int gpusPerNode, int nodes) {
        return HierarchicalRings.rings(gpusPerNode, nodes).map(List::copyOf);
    }

    /**
     * Largest set of arc-disjoint directed Hamiltonian cycles of a digraph ({@code adjacency[i][j]}:
     * arc i->j) found within the time bound: exact (enumerate, then branch-and-bound packing) when
     * it finishes, which it does quickly for up to 16 vertices of low degree. Empty when the graph
     * has no Hamiltonian cycle. At most 31 vertices.
     */
    public static List<HamiltonianCycle> maxDisjointCycles(boolean[][] adjacency, Duration timeBound) {
        return CycleSearch.maxDisjointCycles(CycleSearch.toCapacity(adjacency), timeBound);
    }

    /**
     * As {@link #maxDisjointCycles(boolean[][], Duration)} with arc capacities: {@code capacity[i][j]}
     * cycles may use arc i->j (parallel links, e.g. 2 for NV2).
     */
    public static List<HamiltonianCycle> maxDisjointCycles(int[][] capacity, Duration timeBound) {
        return CycleSearch.maxDisjointCycles(capacity, timeBound);
    }

    /**
     * Checks that every cycle visits all n = adjacency.length vertices once, uses only arcs of the
     * graph, and that no arc is used twice.
     *
     * @throws IllegalArgumentException naming the first problem found
     */
    public static void verify(List<HamiltonianCycle> cycles, boolean[][] adjacency) {
        verify(cycles, CycleSearch.toCapacity(adjacency));
    }

    /** As {@link #verify(List, boolean[][])}, letting arc i->j be used up to {@code capacity[i][j]} times. */
    public static void verify(List<HamiltonianCycle> cycles, int[][] capacity) {
        if (cycles == null) {
            throw new IllegalArgumentException("cycle list is null");
        }
        int[][] left = CycleSearch.checkSquare(capacity, "capacity");
        int n = left.length;
        for (int j = 0; j < cycles.size(); j++) {
            HamiltonianCycle c = cycles.get(j);
            if (c == null) {
                throw new IllegalArgumentException("cycle " + j + " is null");
            }
            if (c.size() != n) {
                throw new IllegalArgumentException(
                        "cycle " + j + " visits " + c.size() + " vertices, the graph has " + n + ": " + c);
            }
            if (n == 1) {
                throw new IllegalArgumentException("cycle " + j + " on a single vertex would need a loop arc");
            }
            for (int i = 0; i < n; i++) {
                int x = c.at(i);
                int y = c.at(i + 1);
                if (capacity[x][y] == 0) {
                    throw new IllegalArgumentException("cycle " + j + " uses arc " + x + "->" + y
                            + ", which is not in the graph");
                }
                if (left[x][y] == 0) {
                    throw new IllegalArgumentException("arc " + x + "->" + y + " is used by more cycles than its capacity "
                            + capacity[x][y] + " (again by cycle " + j + ")");
                }
                left[x][y]--;
            }
        }
    }

    /** Adjacency of K*_n: every ordered pair of distinct ranks. */
    public static boolean[][] completeAdjacency(int n) {
        if (n < 1) {
            throw new IllegalArgumentException("rank count must be at least 1, got n=" + n);
        }
        boolean[][] adjacency = new boolean[n][n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                adjacency[i][j] = i != j;
            }
        }
        return adjacency;
    }

    /**
     * Adjacency of the hierarchical graph: complete inside each node of m GPUs, and local e of node k
     * to local e of node k+1 (mod u), one way, for every rail e.
     */
    public static boolean[][] hierarchicalAdjacency(int gpusPerNode, int nodes) {
        if (gpusPerNode < 1 || nodes < 2) {
            throw new IllegalArgumentException(
                    "need gpusPerNode >= 1 and nodes >= 2, got gpusPerNode=" + gpusPerNode + ", nodes=" + nodes);
        }
        int n = gpusPerNode * nodes;
        boolean[][] adjacency = new boolean[n][n];
        for (int k = 0; k < nodes; k++) {
            for (int a = 0; a < gpusPerNode; a++) {
                for (int b = 0; b < gpusPerNode; b++) {
                    adjacency[k * gpusPerNode + a][k * gpusPerNode + b] = a != b;
                }
                adjacency[k * gpusPerNode + a][((k + 1) % nodes) * gpusPerNode + a] = true;
            }
        }
        return adjacency;
    }

    static List<Integer> storedTableSizes() {
        return new ArrayList<>(StoredRainbowPaths.sizes());
    }
}
