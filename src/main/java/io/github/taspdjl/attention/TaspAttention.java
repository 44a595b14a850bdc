package io.github.taspdjl.attention;

import ai.djl.ndarray.NDArray;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.NativeOps;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.runtime.PackedSequence;
import io.github.taspdjl.runtime.RankGroup;
import io.github.taspdjl.runtime.RankProgram;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.runtime.Sharding;
import java.util.ArrayList;
import java.util.List;

/**
 * TASP sequence-parallel attention: each rank holds part of the sequence (its queries, keys and
 * values, in the plan's layout) and sees every other rank's keys and values over the plan's
 * transfers, merging partial results by log-sum-exp in fp32. The result on each rank equals
 * attention of its queries over the whole sequence.
 *
 * <p>Shapes as in {@link FlashAttention}: (B, H, S_local, D) queries, (B, Hkv, S_local, D) keys and
 * values, float32/float16/bfloat16, grouped-query attention allowed. Any sequence length of at
 * least the plan's minimum (one token per block piece) works.
 */
public final class TaspAttention {

    private TaspAttention() {}

    /** One rank's output (input dtype), fp32 LSE and timings. */
    public record RankResult(NDArray output, NDArray lse, NativeGroup.RankStats stats) {}

    /**
     * The whole sequence's output and LSE, gathered in sequence order, with every rank's timings and
     * the plan that ran: its {@link Plan#strategy()} is the one that ran, which differs from the
     * group's when the planner substituted one (TASP asked with a causal mask runs TASP_CAUSAL), and
     * its {@link Plan#notes()} say why.
     */
    public record Result(NDArray output, NDArray lse, List<NativeGroup.RankStats> stats, Plan plan) {}

    /**
     * Rank {@code rank}'s part of the forward. Every rank of the group must call this concurrently,
     * each from its own thread, with the same mask, scale and sequence length.
     *
     * @param seqLen the length of the whole sequence (the sum over ranks of their local lengths)
     */
    public static RankResult forward(RankGroup group, int rank, NDArray q, NDArray k, NDArray v,
            boolean causal, Float scale, long seqLen) {
        return forward(group, rank, q, k, v, causal, scale, seqLen, null);
    }

    /**
     * Rank {@code rank}'s part of attention over a packed sequence: no query attends to a key of
     * another document (every rank passes the same {@code documents}; null: one document).
     */
    public static RankResult forward(RankGroup group, int rank, NDArray q, NDArray k, NDArray v,
            boolean causal, Float scale, long seqLen, PackedSequence documents) {
        try {
            check(group, rank, q, k, v, causal, scale, seqLen);
            if (documents != null) {
                documents.requireLength(seqLen);
            }
        } catch (RuntimeException e) {
            try {
                group.rejectRank(rank, e.getMessage()); // the peers fail now instead of waiting for this rank
            } catch (RuntimeException notDelivered) {
                e.addSuppressed(notDelivered);
            }
            throw e;
        }
        NativeGroup.RankOutput r = group.forwardRank(rank, q, k, v, causal, scale, seqLen, documents);
        return new RankResult(r.output(), r.lse(), r.stats());
    }

    /**
     * Rank {@code rank}'s part of the exact backward of {@link #forward(RankGroup, int, NDArray, NDArray,
     * NDArray, boolean, Float, long)}, over any group (in-process, TCP between processes, NCCL): this
     * rank's shards of the output gradient, q, k, v and its forward output and LSE. Returns dq, dk, dv
     * of its shard (each block's flash backward with the global output and LSE; dq adds up locally, dk
     * and dv at the keys' owners, in fp32). Every rank must call it concurrently for the same sequence.
     */
    public static NativeGroup.RankGradients backward(RankGroup group, int rank, NDArray dout, NDArray q, NDArray k,
            NDArray v, NDArray out, NDArray lse, boolean causal, Float scale, long seqLen) {
        try {
            check(group, rank, q, k, v, causal, scale, seqLen);
            if (!out.getShape().equals(q.getShape()) || !dout.getShape().equals(q.getShape())) {
                throw new IllegalArgumentException("sequence-parallel backward: out " + out.getShape() + " and dout "
                        + dout.getShape() + " must have q's shape " + q.getShape());
            }
        } catch (RuntimeException e) {
            try {
                group.rejectRank(rank, e.getMessage());
            } catch (RuntimeException notDelivered) {
                e.addSuppressed(notDelivered);
            }
            throw e;
        }
        return group.backwardRank(rank, dout, q, k, v, out, lse, causal, scale, seqLen);
    }

    /**
     * Attention over a whole sequence through the group: shards q, k, v (B, H, S, D) for the plan's
     * layout, runs every rank on the group's threads and gathers the outputs in sequence order.
     */
    public static Result forward(SequenceParallelGroup group, NDArray q, NDArray k, NDArray v, boolean causal,
            Float scale) {
        return forward(group, q, k, v, causal, scale, null);
    }

    /** Attention over a whole packed sequence through the group; attention stays inside each document. */
    public static Result forward(SequenceParallelGroup group, NDArray q, NDArray k, NDArray v, boolean causal,
            Float scale, PackedSequence documents) {
        NativeOps.checkAttention(q, k, v, causal, scale);
        if (q.getShape().get(2) != k.getShape().get(2)) {
            throw new IllegalArgumentException("sequence-parallel attention is self-attention over one sequence: q "
                    + q.getShape() + " and k " + k.getShape() + " must have the same length");
        }
        long seqLen = q.getShape().get(2);
        if (documents != null) {
            documents.requireLength(seqLen);
        }
        Plan plan = group.plan(causal);
        SequenceLayout layout = plan.layout();
        if (seqLen < layout.minimumLength()) {
            throw new IllegalArgumentException("sequence length " + seqLen + " is shorter than the "
                    + layout.minimumLength() + " tokens a " + group.plan(causal).strategy() + " plan over "
                    + group.worldSize() + " ranks needs");
        }
        List<NDArray> qs = Sharding.shardAll(q, layout);
        List<NDArray> ks = Sharding.shardAll(k, layout);
        List<NDArray> vs = Sharding.shardAll(v, layout);
        List<NativeGroup.RankOutput> outs;
        try {
            outs = group.forwardAll(qs, ks, vs, causal, scale, seqLen, documents);
        } finally {
            closeShards(qs, q);
            closeShards(ks, k);
            closeShards(vs, v);
        }
        List<NDArray> o = new ArrayList<>();
        List<NDArray> l = new ArrayList<>();
        List<NativeGroup.RankStats> stats = new ArrayList<>();
        for (NativeGroup.RankOutput r : outs) {
            o.add(r.output());
            l.add(r.lse());
            stats.add(r.stats());
        }
        NDArray output = Sharding.gather(o, layout, seqLen);
        NDArray lse = Sharding.gather(l, layout, seqLen);
        closeShards(o, output);
        closeShards(l, lse);
        return new Result(output, lse, stats, plan);
    }

    /** The caller's manager keeps only the result: shards and per-rank outputs are closed here. */
    private static void closeShards(List<NDArray> shards, NDArray keep) {
        for (NDArray s : shards) {
            if (s != keep) {
                s.close();
            }
        }
    }

    /** dq, dk, dv of a whole sequence, gathered in sequence order, with every rank's timings. */
    public record Gradients(NDArray dq, NDArray dk, NDArray dv, List<NativeGroup.RankStats> stats) {}

    /**
     * The exact backward of {@link #forward(SequenceParallelGroup, NDArray, NDArray, NDArray, boolean,
     * Float)}: shards {@code dout}, q, k, v and the forward's output and LSE (whole-sequence arrays),
     * runs every rank's backward (each block's flash backward with the global output and LSE; dq adds
     * up locally, dk and dv at the keys' owners, all in fp32) and gathers dq, dk, dv in sequence order.
     */
    public static Gradients backward(SequenceParallelGroup group, NDArray dout, NDArray q, NDArray k, NDArray v,
            NDArray out, NDArray lse, boolean causal, Float scale) {
        NativeOps.checkAttention(q, k, v, causal, scale);
        long seqLen = q.getShape().get(2);
        if (k.getShape().get(2) != seqLen || !out.getShape().equals(q.getShape())
                || !dout.getShape().equals(q.getShape())) {
            throw new IllegalArgumentException("sequence-parallel backward: q " + q.getShape() + ", k " + k.getShape()
                    + ", out " + out.getShape() + " and dout " + dout.getShape() + " must describe one sequence");
        }
        SequenceLayout layout = group.plan(causal).layout();
        if (seqLen < layout.minimumLength()) {
            throw new IllegalArgumentException("sequence length " + seqLen + " is shorter than the "
                    + layout.minimumLength() + " tokens this plan needs");
        }
        List<NativeGroup.RankGradients> grads = group.backwardAll(Sharding.shardAll(dout, layout),
                Sharding.shardAll(q, layout), Sharding.shardAll(k, layout), Sharding.shardAll(v, layout),
                Sharding.shardAll(out, layout), Sharding.shardAll(lse, layout), causal, scale, seqLen);
        List<NDArray> dq = new ArrayList<>();
        List<NDArray> dk = new ArrayList<>();
        List<NDArray> dv = new ArrayList<>();
        List<NativeGroup.RankStats> stats = new ArrayList<>();
        for (NativeGroup.RankGradients g : grads) {
            dq.add(g.dq());
            dk.add(g.dk());
            dv.add(g.dv());
            stats.add(g.stats());
        }
        return new Gradients(Sharding.gather(dq, layout, seqLen), Sharding.gather(dk, layout, seqLen),
                Sharding.gather(dv, layout, seqLen), stats);
    }

    private static void check(RankGroup group, int rank, NDArray q, NDArray k, NDArray v, boolean causal,
            Float scale, long seqLen) {
        if (rank < 0 || rank >= group.worldSize()) {
            throw new IllegalArgumentException("rank " + rank + " outside a group of " + group.worldSize());
        }
        NativeOps.checkAttention(q, k, v, causal, scale);
        SequenceLayout layout = group.plan(causal).layout();
        if (seqLen < layout.minimumLength()) {
            throw new IllegalArgumentException("sequence length " + seqLen + " is shorter than the "
                    + layout.minimumLength() + " tokens this plan needs");
        }
        long expected = RankProgram.localTokens(layout, rank, seqLen);
        if (q.getShape().get(2) != expected || k.getShape().get(2) != expected) {
            throw new IllegalArgumentException("rank " + rank + " holds " + expected + " tokens of a " + seqLen
                    + "-token sequence in this plan, got q " + q.getShape() + ", k " + k.getShape());
        }
    }
}
