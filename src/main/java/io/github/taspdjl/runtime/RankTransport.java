package io.github.taspdjl.runtime;

import ai.djl.ndarray.NDArray;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.ProcessTransport;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * One rank's view of a transport whose ranks are the whole world: what the head-parallel forward and
 * backward ({@link HeadParallelForward}, {@link HeadParallelBackward}) need of it. An all-to-all of this
 * rank over every rank (their outer exchange), and runs of lowered programs (a hybrid's inner attention,
 * whose inner programs are lifted to world ranks by {@link RankProgram#liftAll}). Every rank of the world
 * takes part in each call, in the same order. The in-process group, the TCP mesh and NCCL each provide one.
 */
interface RankTransport {

    /**
     * This rank's part of an all-to-all: {@code sends[p]} (null: nothing) goes to rank p, and from each rank
     * p whose {@code recvShapes[p]} is not null a tensor of that shape comes back with {@code like}'s dtype
     * and device (see {@link NativeGroup#allToAll}).
     */
    NativeGroup.Exchanged allToAll(NDArray[] sends, long[][] recvShapes, NDArray like);

    /** Runs this rank's lowered (or lifted) program's forward. */
    NativeGroup.RankOutput forward(long[] program, NDArray q, NDArray k, NDArray v, Float scale);

    /** Runs the backward of {@link #forward} with the program's return map. */
    NativeGroup.RankGradients backward(long[] program, long[] returnMap, NDArray dout, NDArray q, NDArray k, NDArray v,
            NDArray out, NDArray lse, Float scale);

    /** Rank {@code rank} of an in-process group. */
    static RankTransport of(NativeGroup group, int rank) {
        return new RankTransport() {
            @Override
            public NativeGroup.Exchanged allToAll(NDArray[] sends, long[][] recvShapes, NDArray like) {
                return group.allToAll(rank, sends, recvShapes, like);
            }

            @Override
            public NativeGroup.RankOutput forward(long[] program, NDArray q, NDArray k, NDArray v, Float scale) {
                return group.rankForward(rank, program, q, k, v, scale);
            }

            @Override
            public NativeGroup.RankGradients backward(long[] program, long[] returnMap, NDArray dout, NDArray q, NDArray k,
                    NDArray v, NDArray out, NDArray lse, Float scale) {
                return group.rankBackward(rank, program, returnMap, dout, q, k, v, out, lse, scale);
            }
        };
    }

    /** This process's rank of a TCP mesh or an NCCL communicator (every rank takes part in each call). */
    static RankTransport of(ProcessTransport transport) {
        return new RankTransport() {
            @Override
            public NativeGroup.Exchanged allToAll(NDArray[] sends, long[][] recvShapes, NDArray like) {
                return transport.allToAll(sends, recvShapes, like);
            }

            @Override
            public NativeGroup.RankOutput forward(long[] program, NDArray q, NDArray k, NDArray v, Float scale) {
                return transport.rankForward(program, q, k, v, scale);
            }

            @Override
            public NativeGroup.RankGradients backward(long[] program, long[] returnMap, NDArray dout, NDArray q, NDArray k,
                    NDArray v, NDArray out, NDArray lse, Float scale) {
                return transport.rankBackward(program, returnMap, dout, q, k, v, out, lse, scale);
            }
        };
    }

    /**
     * Runs one rank's {@code work} over {@code transport} for a group whose ranks are processes. A failure
     * raised outside the transport's own calls (heads that do not divide, a shape this rank cannot cut) goes
     * to the peers through {@code reject}, so they fail at once instead of waiting for this rank. A failure
     * of a transport call already reached every rank, and is not rejected again: a disagreement leaves the
     * TCP mesh usable for the next run, which a rejection would end.
     */
    static <T> T rejectingOwnFailures(RankTransport transport, Consumer<String> reject, Function<RankTransport, T> work) {
        boolean[] inTransport = new boolean[1];
        RankTransport watched = new RankTransport() {
            @Override
            public NativeGroup.Exchanged allToAll(NDArray[] sends, long[][] recvShapes, NDArray like) {
                inTransport[0] = true;
                NativeGroup.Exchanged r = transport.allToAll(sends, recvShapes, like);
                inTransport[0] = false;
                return r;
            }

            @Override
            public NativeGroup.RankOutput forward(long[] program, NDArray q, NDArray k, NDArray v, Float scale) {
                inTransport[0] = true;
                NativeGroup.RankOutput r = transport.forward(program, q, k, v, scale);
                inTransport[0] = false;
                return r;
            }

            @Override
            public NativeGroup.RankGradients backward(long[] program, long[] returnMap, NDArray dout, NDArray q, NDArray k,
                    NDArray v, NDArray out, NDArray lse, Float scale) {
                inTransport[0] = true;
                NativeGroup.RankGradients r = transport.backward(program, returnMap, dout, q, k, v, out, lse, scale);
                inTransport[0] = false;
                return r;
            }
        };
        try {
            return work.apply(watched);
        } catch (RuntimeException | Error e) {
            if (!inTransport[0]) {
                try {
                    reject.accept(String.valueOf(e.getMessage()));
                } catch (RuntimeException notDelivered) {
                    e.addSuppressed(notDelivered);
                }
            }
            throw e;
        }
    }
}
