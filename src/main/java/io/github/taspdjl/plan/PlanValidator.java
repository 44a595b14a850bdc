package io.github.taspdjl.plan;

import java.util.ArrayList;
import java.util.List;

/**
 * Proves a plan correct before it runs. The rules:
 *
 * <ol>
 *   <li><b>Well-formed</b>: ranks, blocks, chunks, slots and masks in range; query blocks held by the
 *       computing rank; each task's key block belongs to its chunk's owner.
 *   <li><b>Matched</b>: every send has its receive and every receive its send ({@link Transfer} with a
 *       null slot), in the same step.
 *   <li><b>No deadlock</b>: a step's sends and receives are posted as one group, which completes when every
 *       send in it is matched in it (rule 2) and no transfer needs data that arrives in the same step; data
 *       flow (rule 4) proves the latter.
 *   <li><b>Data flow</b>: every send and every attention task reads a slot that holds exactly the named chunk
 *       at the start of its step (the local shard, or a chunk received in an earlier step and not yet
 *       overwritten); no slot is written by two receives in one step, nor read in the step that writes it.
 *   <li><b>Arc-disjoint</b>: no arc {@code src -> dst} carries two transfers in one step.
 *   <li><b>Coverage</b>: every query block meets every key piece it must exactly once: all of them for the
 *       full mask; for causal masks the earlier blocks (FULL), its own block (CAUSAL, as one whole block),
 *       and never a later block.
 *   <li><b>Causal balance</b>: for causal plans, the attention work of the busiest and the idlest rank
 *       differs by at most one block pair (a FULL block pair is 1, a CAUSAL diagonal 1/2).
 *   <li><b>Head-parallel</b> ({@link Strategy#ULYSSES}, {@link Strategy#HYBRID}): the Ulysses degree divides the
 *       world size; the layout is the inner plan's layout {@link SequenceLayout#grouped grouped} by the degree,
 *       so each group's all-to-all gives every member the inner rank's blocks whole; no steps or cycles of its
 *       own; the inner plan has the same mask, n/u ranks, is one rank exactly for Ulysses, and passes rules
 *       1-7. Which heads go where is checked against the heads at run time ({@link HeadParallel#requireHeads}).
 * </ol>
 */
public final class PlanValidator {

    /** Most violations listed; a broken plan usually breaks many rules at once. */
    static final int MAX_VIOLATIONS = 50;

    /**
     * The outcome of a validation.
     *
     * @param valid true when there is no violation
     * @param violations one line per broken rule instance, at most {@value #MAX_VIOLATIONS}
     */
    public record Verdict(boolean valid, List<String> violations) {

        public Verdict {
            violations = List.copyOf(violations);
        }

        @Override
        public String toString() {
            return valid ? "valid" : "INVALID (" + violations.size() + " violation(s)):\n  " + String.join("\n  ", violations);
        }
    }

    private PlanValidator() {}

    /** Checks every rule; never throws for a bad plan. */
    public static Verdict validate(Plan plan) {
        List<String> v = new ArrayList<>();
        if (plan.headParallel() != null) {
            checkHeadParallel(plan, v);
        } else {
            new Run(plan, v).check();
        }
        List<String> shown = v.size() > MAX_VIOLATIONS ? new ArrayList<>(v.subList(0, MAX_VIOLATIONS)) : v;
        if (v.size() > MAX_VIOLATIONS) {
            shown.add("... and " + (v.size() - MAX_VIOLATIONS) + " more");
        }
        return new Verdict(v.isEmpty(), shown);
    }

    /**
     * Returns the plan when it is valid.
     *
     * @throws IllegalStateException listing the violations otherwise
     */
    public static Plan requireValid(Plan plan) {
        Verdict verdict = validate(plan);
        if (!verdict.valid()) {
            throw new IllegalStateException("plan " + plan + " is " + verdict);
        }
        return plan;
    }

    private static void checkHeadParallel(Plan plan, List<String> v) {
        HeadParallel hp = plan.headParallel();
        Plan inner = hp.inner();
        int n = plan.worldSize();
        if (hp.worldSize() != n) {
            v.add("head-parallel: Ulysses degree " + hp.degree() + " times " + inner.worldSize() + " inner ranks is not "
                    + n + " ranks");
            return;
        }
        SequenceLayout expected = SequenceLayout.grouped(inner.layout().kind(), n, hp.degree());
        if (!plan.layout().equals(expected)) {
            v.add("head-parallel: layout " + plan.layout() + " is not the inner layout grouped by " + hp.degree() + " ("
                    + expected + ")");
        }
        if (!plan.steps().isEmpty() || !plan.cycles().isEmpty()) {
            v.add("head-parallel: the plan's own steps and cycles must be empty (they are the inner plan's)");
        }
        if (inner.causal() != plan.causal()) {
            v.add("head-parallel: inner plan is " + (inner.causal() ? "causal" : "full") + ", the plan is not");
        }
        if ((plan.strategy() == Strategy.ULYSSES) != (inner.worldSize() == 1)) {
            v.add("head-parallel: " + plan.strategy().cliName() + " with " + inner.worldSize() + " inner rank(s): ulysses"
                    + " has exactly one, hybrid more");
        }
        for (String inside : validate(inner).violations()) {
            v.add("inner plan: " + inside);
        }
    }

    /** One validation pass: state kept per rank while the steps are replayed. */
    private static final class Run {
        private final Plan plan;
        private final List<String> v;
        private final int n;
        private final SequenceLayout layout;
        /**
         * Contents of the receive slots: {@code slots[buffer][rank * positions + position]} holds the chunk
         * there, encoded by {@link #code}, or {@link #EMPTY}. Arrays, not maps of strings: a 128-rank TASP
         * plan has two million transfers.
         */
        private final long[][] slots;
        /** Positions per rank and buffer: one more than the largest position any receive names. */
        private final int positions;
        /** Per arc {@code src * n + dst}, one more than the last step that used it (0: none). */
        private final int[] arcUsedIn;
        /** Per buffer, the step in which a receive last wrote each slot (-1: never). */
        private final int[][] writtenIn;
        /** coverage[rank][query block index in shard][key block][piece]. */
        private final int[][][][] coverage;
        private final double[] work;

        Run(Plan plan, List<String> v) {
            this.plan = plan;
            this.v = v;
            this.n = plan.worldSize();
            this.layout = plan.layout();
            int most = 0;
            for (Step step : plan.steps()) {
                for (Transfer tr : step.transfers()) {
                    if (tr.recvSlot() != null) {
                        most = Math.max(most, tr.recvSlot().position() + 1);
                    }
                }
            }
            this.positions = most;
            this.arcUsedIn = new int[Math.multiplyExact(n, n)];
            this.slots = new long[Slot.RECEIVE_BUFFERS][Math.multiplyExact(n, positions)];
            this.writtenIn = new int[Slot.RECEIVE_BUFFERS][Math.multiplyExact(n, positions)];
            for (int b = 0; b < Slot.RECEIVE_BUFFERS; b++) {
                java.util.Arrays.fill(slots[b], EMPTY);
                java.util.Arrays.fill(writtenIn[b], -1);
            }
            coverage = new int[n][layout.blocksPerRank()][layout.blockCount()][layout.chunksPerRank()];
            work = new double[n];
        }

        void check() {
            for (Step step : plan.steps()) {
                checkStep(step);
            }
            checkCoverage();
            checkBalance();
        }

        private void checkStep(Step step) {
            int t = step.index();
            List<Transfer> landing = new ArrayList<>();
            for (Transfer tr : step.transfers()) {
                if (!rank(tr.src()) || !rank(tr.dst()) || tr.src() == tr.dst()) {
                    v.add("step " + t + ": transfer " + tr + " does not join two distinct ranks of " + n);
                    continue;
                }
                if (!chunk(tr.chunk()) || tr.chunk().isWhole()) {
                    v.add("step " + t + ": transfer " + tr + " names no valid chunk");
                    continue;
                }
                if (tr.sendSlot() == null) {
                    v.add("step " + t + ": rank " + tr.dst() + " receives chunk " + tr.chunk() + " from " + tr.src()
                            + " but rank " + tr.src() + " posts no matching send: the group would block");
                    continue;
                }
                if (tr.recvSlot() == null) {
                    v.add("step " + t + ": rank " + tr.src() + " sends chunk " + tr.chunk() + " to " + tr.dst()
                            + " but rank " + tr.dst() + " posts no matching receive: the group would block");
                    continue;
                }
                int arc = tr.src() * n + tr.dst();
                if (arcUsedIn[arc] == t + 1) {
                    v.add("step " + t + ": arc " + tr.src() + "->" + tr.dst() + " carries more than one transfer");
                }
                arcUsedIn[arc] = t + 1;
                checkRead(t, tr.src(), tr.chunk(), tr.sendSlot(), "send ", tr);
                Slot rs = tr.recvSlot();
                if (rs.buffer() < 0 || rs.buffer() >= Slot.RECEIVE_BUFFERS || rs.position() < 0) {
                    v.add("step " + t + ": transfer " + tr + " receives into invalid slot " + rs);
                } else {
                    if (rs.buffer() != Slot.receiveBufferOf(t)) {
                        v.add("step " + t + ": transfer " + tr + " receives into buffer " + rs.buffer() + ", not the step's buffer "
                                + Slot.receiveBufferOf(t));
                    }
                    int at = tr.dst() * positions + rs.position();
                    if (writtenIn[rs.buffer()][at] == t) {
                        Transfer other = landing.stream().filter(o -> o.dst() == tr.dst() && o.recvSlot().equals(rs)).findFirst()
                                .orElse(null);
                        v.add("step " + t + ": transfers " + other + " and " + tr + " both land in slot " + rs + " of rank " + tr.dst());
                    } else {
                        writtenIn[rs.buffer()][at] = t;
                        landing.add(tr);
                    }
                }
            }
            for (AttentionTask task : step.compute()) {
                checkTask(t, task);
            }
            for (Transfer tr : step.transfers()) {
                if (tr.sendSlot() != null && !tr.sendSlot().isLocal() && rank(tr.src()) && writtenThisStep(t, tr.src(), tr.sendSlot())) {
                    v.add("step " + t + ": send " + tr + " reads slot " + tr.sendSlot() + " that a receive overwrites in the same step");
                }
            }
            // Receives land at the end of the step.
            for (Transfer tr : landing) {
                slots[tr.recvSlot().buffer()][tr.dst() * positions + tr.recvSlot().position()] = code(tr.chunk());
            }
        }

        private boolean writtenThisStep(int t, int r, Slot s) {
            return s.buffer() >= 0 && s.buffer() < Slot.RECEIVE_BUFFERS && s.position() >= 0 && s.position() < positions
                    && writtenIn[s.buffer()][r * positions + s.position()] == t;
        }

        private void checkTask(int t, AttentionTask task) {
            if (!rank(task.rank()) || task.mask() == null || task.slot() == null || !chunk(task.chunk())) {
                v.add("step " + t + ": malformed attention task " + task);
                return;
            }
            int r = task.rank();
            int qi = indexIn(layout.blocksOfRank(r), task.queryBlock());
            int[] ownerBlocks = layout.blocksOfRank(task.chunk().owner());
            if (qi < 0) {
                v.add("step " + t + ": task " + task + " uses query block " + task.queryBlock() + " that rank " + r + " does not hold");
                return;
            }
            if (indexIn(ownerBlocks, task.kvBlock()) < 0) {
                v.add("step " + t + ": task " + task + " uses key block " + task.kvBlock() + " that is not in chunk " + task.chunk());
                return;
            }
            checkRead(t, r, task.chunk(), task.slot(), "task ", task);
            if (!task.slot().isLocal() && writtenThisStep(t, r, task.slot())) {
                v.add("step " + t + ": task " + task + " reads slot " + task.slot() + " that a receive overwrites in the same step");
            }
            int q = task.queryBlock();
            int k = task.kvBlock();
            if (task.mask() == Mask.CAUSAL && (k != q || !task.chunk().isWhole())) {
                v.add("step " + t + ": task " + task + " has a causal mask off the diagonal (or on part of a block)");
            }
            if (task.mask() == Mask.FULL && plan.causal() && k >= q) {
                v.add("step " + t + ": task " + task + " is causal-masked work run with a full mask");
            }
            if (!plan.causal() && task.mask() == Mask.CAUSAL) {
                v.add("step " + t + ": task " + task + " uses a causal mask in a full-mask plan");
            }
            int from = task.chunk().isWhole() ? 0 : task.chunk().index();
            int to = task.chunk().isWhole() ? layout.chunksPerRank() : task.chunk().index() + 1;
            for (int piece = from; piece < to; piece++) {
                coverage[r][qi][k][piece]++;
            }
            double pieces = to - from;
            work[r] += (task.mask() == Mask.CAUSAL ? 0.5 : 1.0) * pieces / layout.chunksPerRank();
        }

        /** Checks that slot s of rank r holds chunk c; {@code what} names the reader (built only on failure). */
        private void checkRead(int t, int r, ChunkId c, Slot s, String kind, Object what) {
            if (s.isLocal()) {
                if (c.owner() != r || c.index() != s.position()) {
                    v.add("step " + t + ": " + kind + what + " reads local slot " + s + " of rank " + r + ", which holds chunk "
                            + new ChunkId(r, s.position()) + ", not " + c);
                }
                return;
            }
            long held = s.buffer() >= 0 && s.buffer() < Slot.RECEIVE_BUFFERS && s.position() >= 0 && s.position() < positions
                    ? slots[s.buffer()][r * positions + s.position()] : EMPTY;
            if (held != code(c)) {
                v.add("step " + t + ": " + kind + what + " reads slot " + s + " of rank " + r + ", which holds "
                        + (held == EMPTY ? "nothing" : "chunk " + decode(held)) + ", not chunk " + c);
            }
        }

        private void checkCoverage() {
            for (int r = 0; r < n; r++) {
                int[] mine = layout.blocksOfRank(r);
                for (int qi = 0; qi < mine.length; qi++) {
                    int q = mine[qi];
                    for (int k = 0; k < layout.blockCount(); k++) {
                        boolean needed = !plan.causal() || k <= q;
                        for (int piece = 0; piece < layout.chunksPerRank(); piece++) {
                            int count = coverage[r][qi][k][piece];
                            if (needed && count == 0) {
                                v.add("rank " + r + ": query block " + q + " never meets key block " + k + " piece " + piece);
                            } else if (needed && count > 1) {
                                v.add("rank " + r + ": query block " + q + " meets key block " + k + " piece " + piece + " "
                                        + count + " times");
                            } else if (!needed && count > 0) {
                                v.add("rank " + r + ": query block " + q + " meets later key block " + k + " piece " + piece
                                        + " that the causal mask hides");
                            }
                        }
                    }
                }
            }
        }

        private void checkBalance() {
            if (!plan.causal() || n == 0) {
                return;
            }
            int busiest = 0;
            int idlest = 0;
            for (int r = 1; r < n; r++) {
                busiest = work[r] > work[busiest] ? r : busiest;
                idlest = work[r] < work[idlest] ? r : idlest;
            }
            if (work[busiest] - work[idlest] > 1.0 + 1e-9) {
                v.add(String.format(java.util.Locale.ROOT,
                        "causal work unbalanced: rank %d computes %.2f block pairs, rank %d only %.2f (limit: one block)",
                        busiest, work[busiest], idlest, work[idlest]));
            }
        }

        private static final long EMPTY = Long.MIN_VALUE;

        private static long code(ChunkId c) {
            return ((long) c.owner() << 32) | (c.index() & 0xffffffffL);
        }

        private static ChunkId decode(long code) {
            return new ChunkId((int) (code >> 32), (int) code);
        }

        private boolean rank(int r) {
            return r >= 0 && r < n;
        }

        private boolean chunk(ChunkId c) {
            return c != null && rank(c.owner()) && (c.isWhole() || (c.index() >= 0 && c.index() < layout.chunksPerRank()));
        }

        private static int indexIn(int[] a, int x) {
            for (int i = 0; i < a.length; i++) {
                if (a[i] == x) {
                    return i;
                }
            }
            return -1;
        }
    }
}
