package io.github.taspdjl.plan.decompose;

import java.util.ArrayList;
import java.util.List;

/**
 * The decomposition of K*_n, n odd, into n-1 arc-disjoint directed Hamiltonian cycles.
 *
 * <p>Vertices are Z_M (M = n-1, even) plus a point at infinity, labelled {@code M}. With the sequence
 * a = 0, 1, -1, 2, -2, ..., M/2 the consecutive differences are +1, -2, +3, -4, ..., +(M-1): every odd
 * residue once as +d and every even residue once as M-d, so every nonzero difference of Z_M occurs
 * exactly once. Cycle t is (inf, t+a_0, ..., t+a_(M-1)). An arc x->y between finite vertices has
 * difference y-x = a_(i+1)-a_i for exactly one i, and then lies only on cycle t = x - a_i; the arcs
 * inf->t and t+a_(M-1)->inf lie only on cycle t. So the M cycles are arc-disjoint and cover all
 * n(n-1) arcs.
 */
final class WaleckiDecomposition {

    private WaleckiDecomposition() {}

    /** The sequence a_0..a_(M-1), reduced into 0..M-1. */
    static int[] sequence(int m) {
        int[] a = new int[m];
        for (int k = 1; k < m; k++) {
            a[k] = Math.floorMod(k % 2 == 1 ? (k + 1) / 2 : -(k / 2), m);
        }
        return a;
    }

    /** Cycles of K*_n for odd n; cycle index t starts with the arc inf->t. n = 1 gives no cycle. */
    static List<HamiltonianCycle> cycles(int n) {
        if (n < 1 || n % 2 == 0) {
            throw new IllegalArgumentException("Walecki decomposition needs odd n >= 1, got n=" + n);
        }
        int m = n - 1;
        List<HamiltonianCycle> out = new ArrayList<>(m);
        int[] a = sequence(m);
        for (int t = 0; t < m; t++) {
            int[] order = new int[n];
            order[0] = m;
            for (int i = 0; i < m; i++) {
                order[i + 1] = (t + a[i]) % m;
            }
            out.add(new HamiltonianCycle(order));
        }
        return out;
    }
}
