package io.github.taspdjl.runtime;

import ai.djl.ndarray.NDArray;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.plan.Plan;

/**
 * The ranks a sequence is split over, seen from one rank: the in-process {@link
 * SequenceParallelGroup} (all ranks in this JVM) and the NCCL {@link NcclGroup} (this process's GPU
 * rank) both run one rank's part of attention over a validated plan.
 */
public interface RankGroup {

    int worldSize();

    /** The validated plan for the mask; every rank makes the same one. */
    Plan plan(boolean causal);

    /**
     * Runs rank {@code rank}'s part of the forward with its shard; returns when the group has run it
     * (every rank must call this for the same sequence).
     */
    default NativeGroup.RankOutput forwardRank(int rank, NDArray q, NDArray k, NDArray v, boolean causal, Float scale,
            long seqLen) {
        return forwardRank(rank, q, k, v, causal, scale, seqLen, null);
    }

    /**
     * The same over a packed sequence: attention stays inside each of {@code documents} (null: the
     * sequence is one document). Every rank must pass the same documents.
     */
    NativeGroup.RankOutput forwardRank(int rank, NDArray q, NDArray k, NDArray v, boolean causal, Float scale,
            long seqLen, PackedSequence documents);

    /**
     * Rank {@code rank}'s part of the backward of {@link #forwardRank} (one sequence, no packing):
     * its shard's output gradient, q, k, v and the forward's output and LSE. Returns dq, dk, dv of its
     * shard; key/value gradients of keys it received travel back to their owners through the group's
     * transport. Every rank must call this for the same sequence.
     */
    NativeGroup.RankGradients backwardRank(int rank, NDArray dout, NDArray q, NDArray k, NDArray v, NDArray out,
            NDArray lse, boolean causal, Float scale, long seqLen);

    /**
     * Sums each array over the group's processes, in place, in fp32 (parameter gradients of training
     * across processes, see {@code TaspTrainer}); every rank calls it with the same number of arrays of
     * the same sizes. Only groups with one rank per process support it.
     *
     * @throws UnsupportedOperationException for groups whose ranks share a process
     */
    default void allReduceSum(java.util.List<NDArray> arrays) {
        throw new UnsupportedOperationException(getClass().getSimpleName() + " runs several ranks in one process; "
                + "an all-reduce of gradients needs one rank per process (ProcessGroup, NcclGroup)");
    }

    /**
     * Rank {@code rank} will not take part in the collective its peers are starting (its input was
     * rejected before {@link #forwardRank}): tells the peers, so that every rank fails at once
     * instead of waiting for it until the timeout.
     */
    void rejectRank(int rank, String why);
}
