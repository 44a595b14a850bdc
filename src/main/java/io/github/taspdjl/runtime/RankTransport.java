package io.github.taspdjl.runtime;

import ai.djl.ndarray.NDArray;
import io.github.taspdjl.jni.NativeGroup;

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
}
