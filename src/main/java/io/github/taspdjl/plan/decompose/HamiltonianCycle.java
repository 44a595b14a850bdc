package io.github.taspdjl.plan.decompose;

import java.util.Arrays;

/**
 * A directed Hamiltonian cycle over ranks {@code 0..n-1}: the ranks in visiting order; the successor
 * of {@code order[i]} is {@code order[(i + 1) % n]}.
 *
 * <p>A final class rather than a record (same accessors, same constructor) because it keeps an
 * inverse index, so {@link #position}, {@link #successor} and {@link #predecessor} are O(1): schedule
 * builders call them n^2 times. Immutable; {@link #order()} returns a copy.
 */
public final class HamiltonianCycle {

    private final int[] order;
    private final int[] position;

    /**
     * @param order every rank {@code 0..order.length-1} exactly once, in visiting order
     * @throws IllegalArgumentException if {@code order} is empty or not a permutation
     */
    public HamiltonianCycle(int[] order) {
        if (order == null || order.length == 0) {
            throw new IllegalArgumentException("a Hamiltonian cycle needs at least one rank, got "
                    + (order == null ? "null" : "an empty order"));
        }
        int n = order.length;
        this.order = order.clone();
        this.position = new int[n];
        Arrays.fill(position, -1);
        for (int i = 0; i < n; i++) {
            int r = this.order[i];
            if (r < 0 || r >= n) {
                throw new IllegalArgumentException("rank " + r + " at position " + i + " is outside 0.." + (n - 1)
                        + " in " + Arrays.toString(order));
            }
            if (position[r] >= 0) {
                throw new IllegalArgumentException("rank " + r + " appears twice (positions " + position[r] + " and "
                        + i + ") in " + Arrays.toString(order));
            }
            position[r] = i;
        }
    }

    /** The ranks in visiting order (a copy). */
    public int[] order() {
        return order.clone();
    }

    /** The rank at position {@code i} (taken modulo the size, negative allowed). */
    public int at(int i) {
        return order[Math.floorMod(i, order.length)];
    }

    /** Number of ranks on the cycle. */
    public int size() {
        return order.length;
    }

    /** The rank that {@code rank} sends to along this cycle. */
    public int successor(int rank) {
        return order[(position(rank) + 1) % order.length];
    }

    /** The rank that {@code rank} receives from along this cycle. */
    public int predecessor(int rank) {
        return order[(position(rank) + order.length - 1) % order.length];
    }

    /** Where {@code rank} sits in {@link #order()}. */
    public int position(int rank) {
        if (rank < 0 || rank >= order.length) {
            throw new IllegalArgumentException("rank " + rank + " is outside 0.." + (order.length - 1));
        }
        return position[rank];
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof HamiltonianCycle && Arrays.equals(order, ((HamiltonianCycle) o).order);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(order);
    }

    @Override
    public String toString() {
        return "HamiltonianCycle" + Arrays.toString(order);
    }
}
