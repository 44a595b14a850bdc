package io.github.taspdjl.runtime;

import java.util.Optional;
import java.util.concurrent.Callable;

/**
 * Which rank of which group the current thread is running, for blocks deep inside a model: while
 * {@link #run} runs a model on rank r's shard of a sequence, every {@code TaspAttentionBlock} in it
 * runs rank r's part of sequence-parallel attention. Thread-local, so each rank's thread has its own.
 */
public final class RankContext {

    private static final ThreadLocal<RankContext> CURRENT = new ThreadLocal<>();

    private final RankGroup group;
    private final int rank;
    private final long seqLen;
    private final boolean causal;

    private RankContext(RankGroup group, int rank, long seqLen, boolean causal) {
        this.group = group;
        this.rank = rank;
        this.seqLen = seqLen;
        this.causal = causal;
    }

    /**
     * Whether the shards were cut for the causal plan's layout (zigzag) or the full-mask plan's
     * (contiguous); attention in the model must use the same mask, since the layout decides which
     * tokens each rank holds.
     */
    public boolean causal() {
        return causal;
    }

    public RankGroup group() {
        return group;
    }

    public int rank() {
        return rank;
    }

    /** Length of the whole sequence whose shard this rank holds. */
    public long seqLen() {
        return seqLen;
    }

    /** The context of the calling thread, if it is running a rank. */
    public static Optional<RankContext> current() {
        return Optional.ofNullable(CURRENT.get());
    }

    /**
     * Runs {@code body} as rank {@code rank} of {@code group} over a sequence of {@code seqLen} tokens,
     * sharded for the layout of the {@code causal} plan.
     */
    public static <T> T run(RankGroup group, int rank, long seqLen, boolean causal, Callable<T> body)
            throws Exception {
        if (rank < 0 || rank >= group.worldSize()) {
            throw new IllegalArgumentException("rank " + rank + " outside a group of " + group.worldSize());
        }
        return ThreadScopes.with(CURRENT, new RankContext(group, rank, seqLen, causal), body);
    }
}
