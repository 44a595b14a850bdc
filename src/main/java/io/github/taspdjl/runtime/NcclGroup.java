package io.github.taspdjl.runtime;

import ai.djl.ndarray.NDArray;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.NcclCommunicator;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One GPU rank of a sequence-parallel group whose ranks talk over NCCL: one rank per GPU, in this
 * process (one thread per GPU) or in several processes. Every rank builds the same plan from the
 * same topology and strategy; rank 0 makes the unique id ({@link NcclCommunicator#uniqueId()}) and
 * the caller hands it to the others (a file, a socket, a launcher's environment). A model runs its
 * shard inside {@code RankContext.run(ncclGroup, ncclGroup.rank(), seqLen, causal, ...)}, and its
 * TaspAttentionBlocks then run over NCCL. Ulysses and hybrids run too: their all-to-alls go through
 * {@link NcclCommunicator#allToAll} and a hybrid's inner attention runs its lifted program over the same
 * communicator ({@link RankProgram#liftAll}).
 */
public final class NcclGroup implements RankGroup, AutoCloseable {

    private final Topology topology;
    private final PlanChoice choice;
    private final NcclCommunicator comm;
    private final Map<Boolean, Plan> plans = new ConcurrentHashMap<>();
    private final ProcessRank self;

    private NcclGroup(Topology topology, PlanChoice choice, NcclCommunicator comm) {
        this.topology = topology;
        this.choice = choice;
        this.comm = comm;
        this.self = new ProcessRank(comm.rank(), this::plan, RankTransport.of(comm), why -> rejectRank(comm.rank(), why));
    }

    /**
     * Joins rank {@code rank} on CUDA device {@code device}. Blocks until every rank has joined, at
     * most {@code timeoutMs}.
     */
    public static NcclGroup join(Topology topology, Strategy strategy, int rank, byte[] uniqueId, int device,
            long timeoutMs) {
        return join(topology, PlanChoice.of(strategy), rank, uniqueId, device, timeoutMs);
    }

    /** The same for a plan choice (a hybrid of a given degree: {@code ProcessGroup.Builder.hybrid}). */
    static NcclGroup join(Topology topology, PlanChoice choice, int rank, byte[] uniqueId, int device, long timeoutMs) {
        NcclCommunicator c = NcclCommunicator.join(topology.deviceCount(), rank, uniqueId, device, timeoutMs);
        return new NcclGroup(topology, choice, c);
    }

    public int rank() {
        return comm.rank();
    }

    @Override
    public int worldSize() {
        return comm.worldSize();
    }

    @Override
    public Plan plan(boolean causal) {
        return plans.computeIfAbsent(causal, c -> choice.plan(topology, c));
    }

    /** This rank's part of the forward (its shard, see {@link Sharding}); every rank must call it. */
    @Override
    public NativeGroup.RankOutput forwardRank(
            int rank, NDArray q, NDArray k, NDArray v, boolean causal, Float scale, long seqLen,
            PackedSequence documents) {
        requireOwnRank(rank);
        return self.forward(q, k, v, causal, scale, seqLen, documents);
    }

    /** This rank's part of the backward of {@link #forwardRank}; every rank must call it. */
    @Override
    public NativeGroup.RankGradients backwardRank(int rank, NDArray dout, NDArray q, NDArray k, NDArray v,
            NDArray out, NDArray lse, boolean causal, Float scale, long seqLen) {
        requireOwnRank(rank);
        return self.backward(dout, q, k, v, out, lse, causal, scale, seqLen);
    }

    /** Another rank's call on this communicator: refused, and the peers told (they would wait for this rank). */
    private void requireOwnRank(int rank) {
        if (rank != comm.rank()) {
            IllegalArgumentException e =
                    new IllegalArgumentException("this NCCL group is rank " + comm.rank() + ", not rank " + rank);
            try {
                rejectRank(rank, e.getMessage());
            } catch (RuntimeException notDelivered) {
                e.addSuppressed(notDelivered);
            }
            throw e;
        }
    }

    /** Sums each array (fp32, on this rank's GPU) over the ranks, in place ({@code ncclAllReduce}). */
    @Override
    public void allReduceSum(java.util.List<NDArray> arrays) {
        comm.allReduceSum(arrays);
    }

    /** Takes part in the peers' agreement exchange with the reason, so every rank fails at once. */
    @Override
    public void rejectRank(int rank, String why) {
        comm.reject("rank " + comm.rank() + ": " + why);
    }

    @Override
    public void close() {
        comm.close();
    }
}
