package io.github.taspdjl.plan;

import io.github.taspdjl.plan.decompose.HamiltonianCycle;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The two schedule families every strategy is made of: chunks forwarded along cycles (ring, TASP,
 * hierarchical TASP) and the direct all-to-all schedule. Both use the same step semantics (see
 * {@link Step}): step 0 sends the first chunks and computes on the local shard; step {@code t} forwards or
 * sends the next chunks and computes on what step {@code t-1} received; the last step only computes.
 */
final class Schedules {

    private Schedules() {}

    /**
     * Cycle schedule: cycle j carries chunk j of every rank. At step t, rank r at position p of cycle j
     * sends chunk j of origin {@code C_j[p-t]} to its successor, reading it from its local shard (t = 0)
     * or from where it landed in step t-1, and receives chunk j of origin {@code C_j[p-t-1]} into
     * position j of buffer {@code t % 2}. After n-1 transfer steps every rank has met every other rank's
     * chunk j once, since the successor map of each cycle is one n-cycle.
     */
    static Plan cycles(Strategy strategy, boolean causal, SequenceLayout.Kind kind, int n, List<HamiltonianCycle> cycles,
            List<String> notes) {
        int c = cycles.size();
        if (n > 1 && c == 0) {
            throw new IllegalArgumentException("a cycle schedule over " + n + " ranks needs at least one cycle");
        }
        for (HamiltonianCycle cy : cycles) {
            if (cy.size() != n) {
                throw new IllegalArgumentException("cycle " + cy + " has " + cy.size() + " ranks, the plan " + n);
            }
        }
        SequenceLayout layout = new SequenceLayout(kind, n, Math.max(1, c));
        List<Step> steps = new ArrayList<>();
        for (int t = 0; t < n; t++) {
            List<Transfer> transfers = new ArrayList<>();
            List<AttentionTask> compute = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                for (int j = 0; j < c && t < n - 1; j++) {
                    HamiltonianCycle cy = cycles.get(j);
                    int p = cy.position(r);
                    int origin = cy.order()[Math.floorMod(p - t, n)];
                    Slot from = t == 0 ? Slot.local(j) : new Slot(Slot.receiveBufferOf(t - 1), j);
                    transfers.add(new Transfer(r, cy.successor(r), new ChunkId(origin, j), from,
                            new Slot(Slot.receiveBufferOf(t), j)));
                }
                if (t == 0) {
                    addTasks(compute, layout, causal, r, ChunkId.whole(r), Slot.local(ChunkId.WHOLE));
                } else {
                    for (int j = 0; j < c; j++) {
                        HamiltonianCycle cy = cycles.get(j);
                        int origin = cy.order()[Math.floorMod(cy.position(r) - t, n)];
                        addTasks(compute, layout, causal, r, new ChunkId(origin, j), new Slot(Slot.receiveBufferOf(t - 1), j));
                    }
                }
            }
            steps.add(new Step(t, sorted(transfers), compute));
        }
        return new Plan(n, strategy, causal, layout, cycles, steps, notes);
    }

    /**
     * Direct all-to-all schedule: each rank's key/values are cut into n-1 chunks; at step t rank r sends
     * its own chunk {@code (t + (p - r - 1) mod n) mod (n-1)} to every peer p, and p puts it at position
     * {@code (r - p - 1) mod n} of buffer {@code t % 2}. Every arc carries one chunk in every step, and every
     * rank receives every chunk of every peer once over the n-1 steps, for every n.
     */
    static Plan direct(Strategy strategy, boolean causal, SequenceLayout.Kind kind, int n, List<String> notes) {
        SequenceLayout layout = new SequenceLayout(kind, n, Math.max(1, n - 1));
        List<Step> steps = new ArrayList<>();
        for (int t = 0; t < n; t++) {
            List<Transfer> transfers = new ArrayList<>();
            List<AttentionTask> compute = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                for (int p = 0; p < n && t < n - 1; p++) {
                    if (p != r) {
                        int index = directChunk(n, t, r, p);
                        transfers.add(new Transfer(r, p, new ChunkId(r, index), Slot.local(index),
                                new Slot(Slot.receiveBufferOf(t), Math.floorMod(r - p - 1, n))));
                    }
                }
                if (t == 0) {
                    addTasks(compute, layout, causal, r, ChunkId.whole(r), Slot.local(ChunkId.WHOLE));
                } else {
                    for (int q = 0; q < n; q++) {
                        if (q != r) {
                            addTasks(compute, layout, causal, r, new ChunkId(q, directChunk(n, t - 1, q, r)),
                                    new Slot(Slot.receiveBufferOf(t - 1), Math.floorMod(q - r - 1, n)));
                        }
                    }
                }
            }
            steps.add(new Step(t, sorted(transfers), compute));
        }
        return new Plan(n, strategy, causal, layout, List.of(), steps, notes);
    }

    /** Chunk that {@code sender} sends to {@code peer} in transfer step {@code step} of the direct schedule. */
    static int directChunk(int n, int step, int sender, int peer) {
        return Math.floorMod(step + Math.floorMod(peer - sender - 1, n), n - 1);
    }

    /**
     * Attention tasks of rank r on one chunk: every (query block, key block of the chunk) pair the mask
     * allows. Full mask: all pairs. Causal: key block before query block is FULL, the same block CAUSAL
     * (only possible for the rank's own whole shard), a later block is skipped.
     */
    static void addTasks(List<AttentionTask> out, SequenceLayout layout, boolean causal, int r, ChunkId chunk, Slot slot) {
        for (int q : layout.blocksOfRank(r)) {
            for (int k : layout.blocksOfRank(chunk.owner())) {
                if (!causal) {
                    out.add(new AttentionTask(r, q, chunk, k, slot, Mask.FULL));
                } else if (k < q) {
                    out.add(new AttentionTask(r, q, chunk, k, slot, Mask.FULL));
                } else if (k == q) {
                    out.add(new AttentionTask(r, q, chunk, k, slot, Mask.CAUSAL));
                }
            }
        }
    }

    private static List<Transfer> sorted(List<Transfer> transfers) {
        transfers.sort(Comparator.comparingInt(Transfer::src).thenComparingInt(Transfer::dst)
                .thenComparingInt(t -> t.chunk().owner()).thenComparingInt(t -> t.chunk().index()));
        return transfers;
    }
}
