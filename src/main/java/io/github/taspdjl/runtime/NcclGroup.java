package io.github.taspdjl.runtime;

import ai.djl.ndarray.NDArray;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.NcclCommunicator;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Planner;
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
 * TaspAttentionBlocks then run over NCCL.
 */
public final class NcclGroup implements RankGroup, AutoCloseable {

    private final Topology topology;
    private final Strategy strategy;
    private final NcclCommunicator comm;
    private final Map<Boolean, Plan> plans = new ConcurrentHashMap<>();
    private final Map<String, long[]> programs = new ConcurrentHashMap<>();
    private final Map<String, long[]> returnMaps = new ConcurrentHashMap<>();

    private NcclGroup(Topology topology, Strategy strategy, NcclCommunicator comm) {
        this.topology = topology;
        this.strategy = strategy;
        this.comm = comm;
    }

    /**
     * Joins rank {@code rank} on CUDA device {@code device}. Blocks until every rank has joined, at
     * most {@code timeoutMs}.
     */
    public static NcclGroup join(Topology topology, Strategy strategy, int rank, byte[] uniqueId, int device,
            long timeoutMs) {
        NcclCommunicator c = NcclCommunicator.join(topology.deviceCount(), rank, uniqueId, device, timeoutMs);
        return new NcclGroup(topology, strategy, c);
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
        return plans.computeIfAbsent(causal, c -> {
            Plan p = Planner.plan(topology, strategy, c); // validated by the planner
            RankProgram.refuseHeadParallel(p, "an NcclGroup");
            return p;
        });
    }

    /** This rank's part of the forward (its shard, see {@link Sharding}); every rank must call it. */
    @Override
    public NativeGroup.RankOutput forwardRank(
            int rank, NDArray q, NDArray k, NDArray v, boolean causal, Float scale, long seqLen,
            PackedSequence documents) {
        long[] program;
        try {
            if (rank != comm.rank()) {
                throw new IllegalArgumentException("this NCCL group is rank " + comm.rank() + ", not rank " + rank);
            }
            program = documents != null
                    ? RankProgram.lowerAll(plan(causal), seqLen, documents)[comm.rank()] // per packing: not cached
                    : programs.computeIfAbsent(causal + "/" + seqLen,
                            key -> RankProgram.lowerAll(plan(causal), seqLen)[comm.rank()]);
        } catch (RuntimeException e) {
            try {
                rejectRank(rank, String.valueOf(e.getMessage()));
            } catch (RuntimeException notDelivered) {
                e.addSuppressed(notDelivered);
            }
            throw e;
        }
        return comm.rankForward(program, q, k, v, scale);
    }

    /** This rank's part of the backward of {@link #forwardRank}; every rank must call it. */
    @Override
    public NativeGroup.RankGradients backwardRank(int rank, NDArray dout, NDArray q, NDArray k, NDArray v,
            NDArray out, NDArray lse, boolean causal, Float scale, long seqLen) {
        long[] program;
        long[] returnMap;
        try {
            if (rank != comm.rank()) {
                throw new IllegalArgumentException("this NCCL group is rank " + comm.rank() + ", not rank " + rank);
            }
            program = programs.computeIfAbsent(causal + "/" + seqLen,
                    key -> RankProgram.lowerAll(plan(causal), seqLen)[comm.rank()]);
            returnMap = returnMaps.computeIfAbsent(causal + "/" + seqLen,
                    key -> RankProgram.returnMapsAll(plan(causal), seqLen)[comm.rank()]);
        } catch (RuntimeException e) {
            try {
                rejectRank(rank, String.valueOf(e.getMessage()));
            } catch (RuntimeException notDelivered) {
                e.addSuppressed(notDelivered);
            }
            throw e;
        }
        return comm.rankBackward(program, returnMap, dout, q, k, v, out, lse, scale);
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
