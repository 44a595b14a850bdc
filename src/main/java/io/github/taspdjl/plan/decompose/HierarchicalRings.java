package io.github.taspdjl.plan.decompose;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * Rings over u nodes of m GPUs each (global rank = node * m + local) that use every intra-node arc
 * once and, between consecutive nodes, one NIC rail per GPU (local e of node k to local e of node
 * k+1, modulo u).
 *
 * <p>Each node k gets a decomposition of K*_m into m directed Hamiltonian paths; every GPU starts one
 * path and ends one, so start -> end is a permutation f_k. Ring x starts at GPU x of node 0, follows
 * node 0's path from x to f_0(x), crosses rail f_0(x) to node 1, follows node 1's path from there,
 * and so on; after node u-1 it crosses back to node 0 at F(x) = f_(u-1)(...f_0(x)). The m rings close
 * into m Hamiltonian cycles exactly when F is the identity.
 *
 * <p>Path decompositions of K*_m are exactly the cycle decompositions of K*_(m+1) with one vertex w
 * deleted (cycle j minus w runs from succ_j(w) to pred_j(w)); so they exist unless m = 3 or 5, and
 * {@link Decompositions#completeGraph} supplies them. Reversing every path gives the inverse map,
 * and relabelling the GPUs by a permutation s gives s f s^-1. For even u, nodes alternate a
 * decomposition and its reverse. For odd u the first three nodes carry f_0, s f_1 s^-1 and the
 * inverse of their product, which must be conjugate to (have the cycle type of) some available map;
 * a seeded random search over relabellings s finds such a triple. m = 2 with odd u has none: the only
 * map is the swap, and an odd number of swaps is never the identity.
 */
final class HierarchicalRings {

    private HierarchicalRings() {}

    /** A path decomposition: paths[s] is the path starting at local GPU s. */
    static final class PathDecomposition {
        final int[][] paths;

        PathDecomposition(int[][] paths) {
            this.paths = paths;
        }

        int m() {
            return paths.length;
        }

        /** f: start -> end. */
        int[] map() {
            int[] f = new int[m()];
            for (int s = 0; s < m(); s++) {
                f[s] = paths[s][m() - 1];
            }
            return f;
        }

        PathDecomposition reversed() {
            int m = m();
            int[][] out = new int[m][];
            for (int[] p : paths) {
                int[] r = new int[m];
                for (int i = 0; i < m; i++) {
                    r[i] = p[m - 1 - i];
                }
                out[r[0]] = r;
            }
            return new PathDecomposition(out);
        }

        /** GPU x becomes sigma[x]; the map becomes sigma f sigma^-1. */
        PathDecomposition relabelled(int[] sigma) {
            int m = m();
            int[][] out = new int[m][];
            for (int[] p : paths) {
                int[] r = new int[m];
                for (int i = 0; i < m; i++) {
                    r[i] = sigma[p[i]];
                }
                out[r[0]] = r;
            }
            return new PathDecomposition(out);
        }
    }

    static Optional<List<HamiltonianCycle>> rings(int m, int u) {
        if (m < 1) {
            throw new IllegalArgumentException("GPUs per node must be at least 1, got gpusPerNode=" + m);
        }
        if (u < 2) {
            throw new IllegalArgumentException(
                    "hierarchical rings need at least 2 nodes, got nodes=" + u + " (one node: use completeGraph)");
        }
        List<PathDecomposition> pool = pool(m);
        if (pool.isEmpty()) {
            return Optional.empty();
        }
        PathDecomposition[] nodes = new PathDecomposition[u];
        int paired = 0;
        if (u % 2 == 1) {
            Optional<PathDecomposition[]> triple = TRIPLES.computeIfAbsent(m, k -> Optional.ofNullable(findTriple(k)));
            if (triple.isEmpty()) {
                return Optional.empty();
            }
            System.arraycopy(triple.get(), 0, nodes, 0, 3);
            paired = 3;
        }
        PathDecomposition d = pool.get(0);
        PathDecomposition r = d.reversed();
        for (int k = paired; k < u; k++) {
            nodes[k] = (k - paired) % 2 == 0 ? d : r;
        }
        return Optional.of(assemble(nodes, m));
    }

    /** Per m: three path decompositions whose maps compose to the identity (independent of u). */
    private static final java.util.Map<Integer, Optional<PathDecomposition[]>> TRIPLES =
            new java.util.concurrent.ConcurrentHashMap<>();

    private static PathDecomposition[] findTriple(int m) {
        List<PathDecomposition> pool = pool(m);
        if (pool.isEmpty()) {
            return null;
        }
        PathDecomposition[] triple = oddTriple(pool, m);
        // The maps from one decomposition of K*_(m+1) can all be odd permutations (m = 2 mod 4), and
        // three odd maps never compose to the identity. Other decompositions of K*_(m+1) bring other
        // maps: extend K*_m's decomposition along other rainbow paths (m not 4 or 6), or search path
        // decompositions of K*_m directly (small m).
        for (int seed = 1; triple == null && seed <= 40; seed++) {
            List<PathDecomposition> more = extendedPool(m, seed);
            if (more.isEmpty()) {
                break;
            }
            pool.addAll(more);
            triple = oddTriple(pool, m);
        }
        if (triple == null && m <= MAX_SEARCHED_M) {
            pool.addAll(searchedPool(m));
            triple = oddTriple(pool, m);
        }
        return triple;
    }

    /**
     * Path decompositions from the decomposition of K*_(m+1) obtained by extending K*_m's along a
     * random rainbow path (seeded), each vertex deleted in turn; empty where K*_m has none.
     */
    static List<PathDecomposition> extendedPool(int m, long seed) {
        Optional<List<HamiltonianCycle>> base = Decompositions.completeGraph(m);
        if (base.isEmpty() || m < 3) {
            return new ArrayList<>();
        }
        int[][] colour = RainbowPathExtension.colours(base.get(), m);
        Optional<int[]> path = RainbowPaths.search(colour, java.time.Duration.ofMillis(200), seed);
        if (path.isEmpty()) {
            return new ArrayList<>();
        }
        return deletions(RainbowPathExtension.extend(base.get(), path.get()), m);
    }

    /** Path decompositions of K*_m from deleting each vertex of K*_(m+1)'s cycle decomposition. */
    static List<PathDecomposition> pool(int m) {
        Optional<List<HamiltonianCycle>> full = Decompositions.completeGraph(m + 1);
        List<PathDecomposition> out = new ArrayList<>();
        if (full.isEmpty()) {
            return out;
        }
        return deletions(full.get(), m);
    }

    /** Each vertex w of a decomposition of K*_(m+1) deleted in turn, with the reverses. */
    private static List<PathDecomposition> deletions(List<HamiltonianCycle> cycles, int m) {
        List<PathDecomposition> out = new ArrayList<>();
        for (int w = m; w >= 0; w--) {
            int[][] paths = new int[m][];
            for (HamiltonianCycle c : cycles) {
                int[] p = new int[m];
                int at = c.position(w);
                for (int i = 0; i < m; i++) {
                    int x = c.at(at + 1 + i);
                    p[i] = x < w ? x : x - 1; // close the gap left by w
                }
                paths[p[0]] = p;
            }
            PathDecomposition pd = new PathDecomposition(paths);
            out.add(pd);
            out.add(pd.reversed());
        }
        return out;
    }

    /** Largest m for which extra path decompositions are searched directly. */
    static final int MAX_SEARCHED_M = 12;

    /**
     * Path decompositions of K*_m found by seeded randomized depth-first search, one per new cycle
     * type of the start->end map (plus reverses), for up to a second.
     */
    static List<PathDecomposition> searchedPool(int m) {
        List<PathDecomposition> out = new ArrayList<>();
        List<String> seen = new ArrayList<>();
        SplittableRandom random = new SplittableRandom(m * 104729L);
        long deadline = System.nanoTime() + 1_000_000_000L;
        int sinceNew = 0;
        while (System.nanoTime() < deadline && seen.size() < 6 && sinceNew < 500) {
            sinceNew++;
            int[][] paths = new PathSearch(m, random, deadline).run();
            if (paths == null) {
                continue;
            }
            PathDecomposition d = new PathDecomposition(paths);
            String type = cycleType(d.map());
            if (!seen.contains(type)) {
                sinceNew = 0;
                seen.add(type);
                out.add(d);
                out.add(d.reversed());
            }
        }
        return out;
    }

    /** One randomized attempt at a path decomposition of K*_m: path from GPU 0, then 1, ... */
    private static final class PathSearch {
        final int m;
        final SplittableRandom random;
        final long deadline;
        final boolean[][] used;
        final boolean[] isEnd;
        final int[][] paths;
        long nodes;

        PathSearch(int m, SplittableRandom random, long deadline) {
            this.m = m;
            this.random = random;
            this.deadline = deadline;
            used = new boolean[m][m];
            isEnd = new boolean[m];
            paths = new int[m][m];
        }

        int[][] run() {
            return path(0, 1, 1L) ? paths : null;
        }

        /** Extends path {@code s} at length {@code len} (visited set {@code mask}); then the next paths. */
        private boolean path(int s, int len, long mask) {
            if (++nodes > 200_000 || System.nanoTime() > deadline) {
                return false;
            }
            if (s == m) {
                return true;
            }
            int[] p = paths[s];
            if (len == 1) {
                p[0] = s;
                mask = 1L << s;
            }
            int x = p[len - 1];
            if (len == m) {
                if (isEnd[x]) {
                    return false;
                }
                isEnd[x] = true;
                if (path(s + 1, 1, 0L)) {
                    return true;
                }
                isEnd[x] = false;
                return false;
            }
            int offset = random.nextInt(m);
            for (int k = 0; k < m; k++) {
                int y = (k + offset) % m;
                if ((mask >> y & 1) == 0 && !used[x][y]) {
                    used[x][y] = true;
                    p[len] = y;
                    if (path(s, len + 1, mask | 1L << y)) {
                        return true;
                    }
                    used[x][y] = false;
                }
            }
            return false;
        }
    }

    private static PathDecomposition[] oddTriple(List<PathDecomposition> pool, int m) {
        if (m == 1) {
            PathDecomposition d = pool.get(0);
            return new PathDecomposition[] {d, d, d};
        }
        List<String> types = new ArrayList<>();
        for (PathDecomposition p : pool) {
            types.add(cycleType(p.map()));
        }
        SplittableRandom random = new SplittableRandom(m * 7919L);
        int[] identity = new int[m];
        for (int i = 0; i < m; i++) {
            identity[i] = i;
        }
        for (int attempt = 0; attempt < 20_000; attempt++) {
            PathDecomposition d0 = pool.get(random.nextInt(pool.size()));
            int[] sigma = attempt == 0 ? identity : randomPermutation(m, random);
            PathDecomposition d1 = pool.get(random.nextInt(pool.size())).relabelled(sigma);
            int[] h = compose(d1.map(), d0.map());
            int[] hInv = inverse(h);
            int k = types.indexOf(cycleType(hInv));
            if (k < 0) {
                continue;
            }
            PathDecomposition d2 = pool.get(k);
            int[] tau = conjugator(d2.map(), hInv);
            return new PathDecomposition[] {d0, d1, d2.relabelled(tau)};
        }
        return null;
    }

    private static List<HamiltonianCycle> assemble(PathDecomposition[] nodes, int m) {
        int u = nodes.length;
        List<HamiltonianCycle> rings = new ArrayList<>(m);
        for (int x = 0; x < m; x++) {
            int[] order = new int[m * u];
            int cur = x;
            int i = 0;
            for (int k = 0; k < u; k++) {
                int[] p = nodes[k].paths[cur];
                for (int local : p) {
                    order[i++] = k * m + local;
                }
                cur = p[m - 1];
            }
            if (cur != x) {
                throw new IllegalStateException("ring from GPU " + x + " does not close (ends at " + cur + "), m=" + m
                        + " u=" + u);
            }
            rings.add(new HamiltonianCycle(order));
        }
        return rings;
    }

    /** (a o b)(x) = a(b(x)). */
    static int[] compose(int[] a, int[] b) {
        int[] c = new int[a.length];
        for (int x = 0; x < a.length; x++) {
            c[x] = a[b[x]];
        }
        return c;
    }

    static int[] inverse(int[] a) {
        int[] inv = new int[a.length];
        for (int x = 0; x < a.length; x++) {
            inv[a[x]] = x;
        }
        return inv;
    }

    static String cycleType(int[] f) {
        boolean[] seen = new boolean[f.length];
        List<Integer> lengths = new ArrayList<>();
        for (int x = 0; x < f.length; x++) {
            int len = 0;
            for (int y = x; !seen[y]; y = f[y]) {
                seen[y] = true;
                len++;
            }
            if (len > 0) {
                lengths.add(len);
            }
        }
        lengths.sort(null);
        return lengths.toString();
    }

    /** A permutation tau with tau f tau^-1 = g (f and g of the same cycle type). */
    static int[] conjugator(int[] f, int[] g) {
        List<int[]> cf = cyclesByLength(f);
        List<int[]> cg = cyclesByLength(g);
        int[] tau = new int[f.length];
        for (int i = 0; i < cf.size(); i++) {
            int[] a = cf.get(i);
            int[] b = cg.get(i);
            for (int j = 0; j < a.length; j++) {
                tau[a[j]] = b[j];
            }
        }
        return tau;
    }

    private static List<int[]> cyclesByLength(int[] f) {
        boolean[] seen = new boolean[f.length];
        List<int[]> out = new ArrayList<>();
        for (int x = 0; x < f.length; x++) {
            if (!seen[x]) {
                List<Integer> c = new ArrayList<>();
                for (int y = x; !seen[y]; y = f[y]) {
                    seen[y] = true;
                    c.add(y);
                }
                out.add(c.stream().mapToInt(Integer::intValue).toArray());
            }
        }
        out.sort((p, q) -> Integer.compare(p.length, q.length));
        return out;
    }

    private static int[] randomPermutation(int m, SplittableRandom random) {
        int[] p = new int[m];
        for (int i = 0; i < m; i++) {
            p[i] = i;
        }
        for (int i = m - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    static String describe(int[] f) {
        return Arrays.toString(f);
    }
}
