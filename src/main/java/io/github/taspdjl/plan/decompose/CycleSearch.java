package io.github.taspdjl.plan.decompose;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The largest set of arc-disjoint directed Hamiltonian cycles of a small digraph, by exact search.
 *
 * <p>Arcs carry a capacity (how many cycles may use them: parallel links such as NV2 count 2). Phase
 * one enumerates every Hamiltonian cycle through a root vertex (the one with the least
 * out-capacity), depth first with a visited bitmask. Every cycle leaves the root by exactly one arc,
 * so phase two packs cycles slot by slot, one slot per unit of the root's out-capacity, each slot
 * taking a cycle that leaves by that arc and fits the remaining capacities, or nothing. Branch and
 * bound: stop at the upper bound (least in- or out-capacity of any vertex), and prune a branch that
 * cannot beat the best found. Exact when it finishes within the time bound and stores at most
 * {@link #MAX_STORED_CYCLES} cycles (always, in practice, for up to 16 vertices of low degree);
 * otherwise it returns the best found so far.
 */
final class CycleSearch {

    /** Enumeration stops after this many cycles (memory), making the result best-effort. */
    static final int MAX_STORED_CYCLES = 2_000_000;

    private final int n;
    private final int[][] capacity;
    private final long deadline;
    private boolean timedOut;

    private CycleSearch(int[][] capacity, Duration timeBound) {
        this.n = capacity.length;
        this.capacity = capacity;
        this.deadline = System.nanoTime() + timeBound.toNanos();
    }

    /** Validated copy of a capacity matrix; {@code what} names it in errors. */
    static int[][] checkSquare(int[][] capacity, String what) {
        if (capacity == null) {
            throw new IllegalArgumentException(what + " is null");
        }
        int n = capacity.length;
        int[][] copy = new int[n][];
        for (int i = 0; i < n; i++) {
            if (capacity[i] == null || capacity[i].length != n) {
                throw new IllegalArgumentException(what + " row " + i + " has "
                        + (capacity[i] == null ? "no entries" : capacity[i].length + " entries") + ", expected " + n);
            }
            copy[i] = capacity[i].clone();
            for (int j = 0; j < n; j++) {
                if (copy[i][j] < 0) {
                    throw new IllegalArgumentException(what + "[" + i + "][" + j + "] is negative: " + copy[i][j]);
                }
            }
        }
        return copy;
    }

    static int[][] toCapacity(boolean[][] adjacency) {
        if (adjacency == null) {
            throw new IllegalArgumentException("adjacency is null");
        }
        int n = adjacency.length;
        int[][] cap = new int[n][];
        for (int i = 0; i < n; i++) {
            if (adjacency[i] == null || adjacency[i].length != n) {
                throw new IllegalArgumentException("adjacency row " + i + " has "
                        + (adjacency[i] == null ? "no entries" : adjacency[i].length + " entries") + ", expected " + n);
            }
            cap[i] = new int[n];
            for (int j = 0; j < n; j++) {
                cap[i][j] = adjacency[i][j] && i != j ? 1 : 0;
            }
        }
        return cap;
    }

    /** Upper bound on disjoint Hamiltonian cycles: least in- or out-capacity over all vertices. */
    static int upperBound(int[][] capacity) {
        int n = capacity.length;
        int bound = Integer.MAX_VALUE;
        for (int v = 0; v < n; v++) {
            int out = 0;
            int in = 0;
            for (int w = 0; w < n; w++) {
                if (w != v) {
                    out += capacity[v][w];
                    in += capacity[w][v];
                }
            }
            bound = Math.min(bound, Math.min(out, in));
        }
        return n == 0 ? 0 : bound;
    }

    static List<HamiltonianCycle> maxDisjointCycles(int[][] capacityIn, Duration timeBound) {
        if (timeBound == null || timeBound.isNegative()) {
            throw new IllegalArgumentException("time bound must be non-negative, got " + timeBound);
        }
        int[][] capacity = checkSquare(capacityIn, "capacity");
        int n = capacity.length;
        if (n < 2) {
            return List.of(); // a single vertex has no arc, so no cycle through it
        }
        if (n > 31) {
            throw new IllegalArgumentException("exact cycle search handles at most 31 vertices, got n=" + n);
        }
        return new CycleSearch(capacity, timeBound).run();
    }

    private List<HamiltonianCycle> run() {
        int bound = upperBound(capacity);
        if (bound == 0) {
            return List.of();
        }
        int root = 0;
        int rootOut = Integer.MAX_VALUE;
        for (int v = 0; v < n; v++) {
            int out = 0;
            for (int w = 0; w < n; w++) {
                out += w == v ? 0 : capacity[v][w];
            }
            if (out < rootOut) {
                rootOut = out;
                root = v;
            }
        }
        // groups[w]: cycles (vertex orders starting at root) whose first arc is root->w.
        List<List<int[]>> groups = new ArrayList<>();
        for (int w = 0; w < n; w++) {
            groups.add(new ArrayList<>());
        }
        enumerate(root, groups);
        // One slot per unit of out-capacity at the root, the largest groups last (fewer branches early).
        List<Integer> slots = new ArrayList<>();
        for (int w = 0; w < n; w++) {
            if (w != root && !groups.get(w).isEmpty()) {
                for (int c = 0; c < capacity[root][w]; c++) {
                    slots.add(w);
                }
            }
        }
        slots.sort((a, b) -> Integer.compare(groups.get(a).size(), groups.get(b).size()));
        Packer packer = new Packer(groups, slots, Math.min(bound, slots.size()));
        packer.pack(0, 0, -1);
        List<HamiltonianCycle> out = new ArrayList<>();
        for (int[] order : packer.best) {
            out.add(new HamiltonianCycle(order));
        }
        return out;
    }

    private void enumerate(int root, List<List<int[]>> groups) {
        int[] path = new int[n];
        path[0] = root;
        int[] next = new int[n];
        int visited = 1 << root;
        int depth = 0;
        next[0] = 0;
        long steps = 0;
        int stored = 0;
        while (depth >= 0) {
            if ((++steps & 0xFFFF) == 0 && System.nanoTime() > deadline) {
                timedOut = true;
                return;
            }
            int x = path[depth];
            if (depth == n - 1) {
                if (capacity[x][root] > 0) {
                    groups.get(path[1]).add(path.clone());
                    if (++stored >= MAX_STORED_CYCLES) {
                        // Dense graphs have factorially many cycles: pack what was found.
                        timedOut = true;
                        return;
                    }
                }
                visited &= ~(1 << x);
                depth--;
                continue;
            }
            int y = next[depth];
            while (y < n && ((visited >> y & 1) != 0 || capacity[x][y] == 0)) {
                y++;
            }
            if (y == n) {
                if (depth > 0) {
                    visited &= ~(1 << x);
                }
                depth--;
                continue;
            }
            next[depth] = y + 1;
            depth++;
            path[depth] = y;
            next[depth] = 0;
            visited |= 1 << y;
        }
    }

    /** Branch and bound over the root's out-slots. */
    private final class Packer {
        final List<List<int[]>> groups;
        final List<Integer> slots;
        final int bound;
        final int[][] residual;
        final List<int[]> chosen = new ArrayList<>();
        List<int[]> best = new ArrayList<>();
        long steps;

        Packer(List<List<int[]>> groups, List<Integer> slots, int bound) {
            this.groups = groups;
            this.slots = slots;
            this.bound = bound;
            residual = new int[n][];
            for (int i = 0; i < n; i++) {
                residual[i] = capacity[i].clone();
            }
        }

        /** Returns true when the bound is reached (search can stop). */
        boolean pack(int slot, int count, int lastIndex) {
            if (count > best.size()) {
                best = new ArrayList<>(chosen);
                if (count >= bound) {
                    return true;
                }
            }
            if (slot == slots.size() || count + (slots.size() - slot) <= best.size()) {
                return false;
            }
            if ((++steps & 0x3FF) == 0 && System.nanoTime() > deadline) {
                timedOut = true;
                return true;
            }
            int w = slots.get(slot);
            List<int[]> group = groups.get(w);
            // Slots of the same arc take cycles in non-decreasing index order: no permuted repeats.
            int from = slot > 0 && slots.get(slot - 1) == w ? Math.max(lastIndex, 0) : 0;
            for (int i = from; i < group.size(); i++) {
                int[] c = group.get(i);
                if (fits(c)) {
                    apply(c, -1);
                    chosen.add(c);
                    boolean done = pack(slot + 1, count + 1, i);
                    chosen.remove(chosen.size() - 1);
                    apply(c, +1);
                    if (done) {
                        return true;
                    }
                }
            }
            int nextFrom = slot + 1 < slots.size() && slots.get(slot + 1) == w ? group.size() : -1;
            return pack(slot + 1, count, nextFrom);
        }

        private boolean fits(int[] c) {
            for (int i = 0; i < n; i++) {
                if (residual[c[i]][c[(i + 1) % n]] == 0) {
                    return false;
                }
            }
            return true;
        }

        private void apply(int[] c, int delta) {
            for (int i = 0; i < n; i++) {
                residual[c[i]][c[(i + 1) % n]] += delta;
            }
        }
    }

    boolean timedOut() {
        return timedOut;
    }
}
