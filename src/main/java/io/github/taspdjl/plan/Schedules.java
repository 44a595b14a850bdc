package io.github.taspdjl.plan;

import io.github.taspdjl.plan.decompose.HamiltonianCycle;
import java.util.ArrayList;
import java.util.List;

/**
 * The two schedule families every strategy is made of: chunks forwarded along cycles (ring, TASP,
 * hierarchical TASP) and the direct all-to-all schedule. Both use the same step semantics (see
 * {@link Step}): step 0 sends the first chunks and computes on the local shard; step {@code t} forwards or
 * sends the next chunks and computes on what step {@code t-1} received; the last step only computes.
 */
final class Schedules {

    /**
     * Most transfers plus attention tasks a plan may hold. A plan is explicit (every transfer and task of
     * every step is an object), so TASP and direct plans grow as n^3: 128 ranks of full-mask TASP hold
     * 4.2 million entries (about 200 MB, built and validated in a few seconds on 2 cores). Past this bound the planner refuses at once,
     * before allocating, rather than running out of memory minutes later.
     */
    static final long MAX_PLAN_ENTRIES = 8_000_000L;

    private Schedules() {}

    /**
     * About how many transfers and attention tasks a schedule of {@code n} ranks holds whose ranks each
     * receive {@code chunks} chunks per step: n steps of n x chunks transfers and, per received chunk, one
     * task per (query block, key block) pair the mask allows (4 on the zigzag layout without mask, about 2
     * with the causal mask, 1 on the contiguous layout).
     */
    static long estimatedEntries(int n, long chunks, SequenceLayout.Kind kind, boolean causal) {
        long pairs = kind == SequenceLayout.Kind.CONTIGUOUS ? 1 : causal ? 2 : 4;
        return (long) n * n * chunks * (1 + pairs);
    }

    /** Throws when a schedule would exceed {@link #MAX_PLAN_ENTRIES}; names the limit and what to do instead. */
    static void checkSize(Strategy strategy, int n, long chunks, SequenceLayout.Kind kind, boolean causal) {
        long entries = estimatedEntries(n, chunks, kind, causal);
        if (entries > MAX_PLAN_ENTRIES) {
            throw new IllegalArgumentException(String.format(java.util.Locale.ROOT,
                    "a %s plan for %d ranks would hold about %,d transfers and attention tasks (%d chunk(s) per rank"
                            + " per step; the count grows as n^2 x chunks), more than the planner's limit of %,d: %s",
                    strategy.cliName(), n, entries, chunks, MAX_PLAN_ENTRIES, Planner.sizeAdvice(causal)));
        }
    }

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
        checkSize(strategy, n, Math.max(1, c), kind, causal);
        SequenceLayout layout = new SequenceLayout(kind, n, Math.max(1, c));
        Interned in = new Interned(n, Math.max(1, c));
        List<Step> steps = new ArrayList<>();
        for (int t = 0; t < n; t++) {
            List<Transfer> transfers = new ArrayList<>();
            List<AttentionTask> compute = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                for (int j = 0; j < c && t < n - 1; j++) {
                    HamiltonianCycle cy = cycles.get(j);
                    int p = cy.position(r);
                    int origin = cy.at(p - t);
                    Slot from = t == 0 ? in.local(j) : in.slot(Slot.receiveBufferOf(t - 1), j);
                    transfers.add(new Transfer(r, cy.successor(r), in.chunk(origin, j), from, in.slot(Slot.receiveBufferOf(t), j)));
                }
                if (t == 0) {
                    addTasks(compute, layout, causal, r, ChunkId.whole(r), Slot.local(ChunkId.WHOLE));
                } else {
                    for (int j = 0; j < c; j++) {
                        HamiltonianCycle cy = cycles.get(j);
                        int origin = cy.at(cy.position(r) - t);
                        addTasks(compute, layout, causal, r, in.chunk(origin, j), in.slot(Slot.receiveBufferOf(t - 1), j));
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
        checkSize(strategy, n, Math.max(1, n - 1), kind, causal);
        SequenceLayout layout = new SequenceLayout(kind, n, Math.max(1, n - 1));
        Interned in = new Interned(n, Math.max(1, n - 1));
        List<Step> steps = new ArrayList<>();
        for (int t = 0; t < n; t++) {
            List<Transfer> transfers = new ArrayList<>();
            List<AttentionTask> compute = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                for (int p = 0; p < n && t < n - 1; p++) {
                    if (p != r) {
                        int index = directChunk(n, t, r, p);
                        transfers.add(new Transfer(r, p, in.chunk(r, index), in.local(index),
                                in.slot(Slot.receiveBufferOf(t), Math.floorMod(r - p - 1, n))));
                    }
                }
                if (t == 0) {
                    addTasks(compute, layout, causal, r, ChunkId.whole(r), Slot.local(ChunkId.WHOLE));
                } else {
                    for (int q = 0; q < n; q++) {
                        if (q != r) {
                            addTasks(compute, layout, causal, r, in.chunk(q, directChunk(n, t - 1, q, r)),
                                    in.slot(Slot.receiveBufferOf(t - 1), Math.floorMod(q - r - 1, n)));
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

    /**
     * Shared immutable slots and chunk ids: a large plan names the same few thousand of them millions of
     * times, and sharing them halves the plan's memory.
     */
    private static final class Interned {
        private final ChunkId[] chunks;
        private final Slot[][] slots;
        private final int perRank;

        Interned(int n, int perRank) {
            this.perRank = perRank;
            this.chunks = new ChunkId[n * perRank];
            this.slots = new Slot[Slot.RECEIVE_BUFFERS + 1][Math.max(n, perRank)];
        }

        ChunkId chunk(int owner, int index) {
            int i = owner * perRank + index;
            ChunkId c = chunks[i];
            return c != null ? c : (chunks[i] = new ChunkId(owner, index));
        }

        Slot local(int index) {
            return at(Slot.LOCAL, index);
        }

        Slot slot(int buffer, int position) {
            return at(buffer, position);
        }

        private Slot at(int buffer, int position) {
            Slot[] row = slots[buffer + 1];
            Slot s = row[position];
            return s != null ? s : (row[position] = buffer == Slot.LOCAL ? Slot.local(position) : new Slot(buffer, position));
        }
    }

    /** Sorts a step's transfers by (src, dst, chunk owner, chunk index): one primitive key, no comparator chain. */
    private static List<Transfer> sorted(List<Transfer> transfers) {
        int n = transfers.size();
        long[] keys = new long[n];
        int most = 1;
        for (Transfer t : transfers) {
            most = Math.max(most, Math.max(Math.max(t.src(), t.dst()), Math.max(t.chunk().owner(), t.chunk().index() + 1)) + 1);
        }
        for (int i = 0; i < n; i++) {
            Transfer t = transfers.get(i);
            long key = ((long) t.src() * most + t.dst()) * most + t.chunk().owner();
            keys[i] = (key * (most + 1) + t.chunk().index() + 1) * n + i;
        }
        java.util.Arrays.sort(keys);
        List<Transfer> out = new ArrayList<>(n);
        for (long k : keys) {
            out.add(transfers.get((int) (k % n)));
        }
        return out;
    }
}
