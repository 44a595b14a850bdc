package io.github.taspdjl.jni;

import ai.djl.ndarray.NDArray;

/**
 * A transport whose ranks are processes, one rank per object: the TCP mesh ({@link TcpMesh}) and NCCL
 * communicators ({@link NcclCommunicator}). Every rank of the world takes part in each call, in the same
 * order; a failure fails every rank. What the runtime layer runs its plans over.
 */
public interface ProcessTransport {

    int rank();

    int worldSize();

    /**
     * This rank's part of an all-to-all over the world: {@code sends[p]} (null: nothing) goes to rank p, and
     * from each rank p whose {@code recvShapes[p]} is not null a tensor of that shape comes back with {@code
     * like}'s dtype and device (see {@link NativeGroup#allToAll}).
     */
    NativeGroup.Exchanged allToAll(NDArray[] sends, long[][] recvShapes, NDArray like);

    /** Runs this rank's lowered program (its shard q, k, v) over the transport. */
    NativeGroup.RankOutput rankForward(long[] program, NDArray q, NDArray k, NDArray v, Float scale);

    /** The backward of {@link #rankForward} with the program's return map. */
    NativeGroup.RankGradients rankBackward(long[] program, long[] returnMap, NDArray dout, NDArray q, NDArray k,
            NDArray v, NDArray out, NDArray lse, Float scale);
}
