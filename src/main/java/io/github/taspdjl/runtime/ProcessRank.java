package io.github.taspdjl.runtime;

import ai.djl.ndarray.NDArray;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.plan.Plan;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * This process's rank of a group whose transport spans the world (a TCP mesh, an NCCL communicator): lowers
 * its program for a token-chunk plan, or lifts its hybrid's inner program ({@link RankProgram#liftAll}), caches
 * them per mask and length, and runs its part of the forward and backward over the transport, head-parallel
 * plans through {@link HeadParallelForward} and {@link HeadParallelBackward}. A failure of its own (bad
 * input, heads that do not divide) goes to the peers through {@code reject}, so that they fail at once.
 */
final class ProcessRank {

    private final int rank;
    private final Function<Boolean, Plan> plans;
    private final RankTransport transport;
    private final Consumer<String> reject;
    private final Map<String, long[]> programs = new ConcurrentHashMap<>();
    private final Map<String, long[]> returnMaps = new ConcurrentHashMap<>();

    ProcessRank(int rank, Function<Boolean, Plan> plans, RankTransport transport, Consumer<String> reject) {
        this.rank = rank;
        this.plans = plans;
        this.transport = transport;
        this.reject = reject;
    }

    NativeGroup.RankOutput forward(NDArray q, NDArray k, NDArray v, boolean causal, Float scale, long seqLen,
            PackedSequence documents) {
        return RankTransport.rejectingOwnFailures(transport, reject, t -> {
            Plan plan = plans.apply(causal);
            if (plan.headParallel() == null) {
                return t.forward(program(causal, seqLen, documents), q, k, v, scale);
            }
            long[] inner = hybrid(plan) ? program(causal, seqLen, documents) : null;
            return HeadParallelForward.forward(plan, t, inner, rank, q, k, v, causal, scale, seqLen, documents);
        });
    }

    NativeGroup.RankGradients backward(NDArray dout, NDArray q, NDArray k, NDArray v, NDArray out, NDArray lse,
            boolean causal, Float scale, long seqLen) {
        return RankTransport.rejectingOwnFailures(transport, reject, t -> {
            Plan plan = plans.apply(causal);
            if (plan.headParallel() == null) {
                return t.backward(program(causal, seqLen, null), returnMap(causal, seqLen), dout, q, k, v, out, lse, scale);
            }
            boolean hybrid = hybrid(plan);
            return HeadParallelBackward.backward(plan, t, hybrid ? program(causal, seqLen, null) : null,
                    hybrid ? returnMap(causal, seqLen) : null, rank, dout, q, k, v, out, lse, causal, scale, seqLen);
        });
    }

    private static boolean hybrid(Plan plan) {
        return plan.headParallel().inner().worldSize() > 1;
    }

    private long[] program(boolean causal, long seqLen, PackedSequence documents) {
        if (documents != null) {
            return RankProgram.programsFor(plans.apply(causal), seqLen, documents)[rank]; // per packing: not cached
        }
        return programs.computeIfAbsent(causal + "/" + seqLen,
                key -> RankProgram.programsFor(plans.apply(causal), seqLen, null)[rank]);
    }

    private long[] returnMap(boolean causal, long seqLen) {
        return returnMaps.computeIfAbsent(causal + "/" + seqLen,
                key -> RankProgram.returnMapsFor(plans.apply(causal), seqLen)[rank]);
    }
}
