package io.github.taspdjl.jni;

/**
 * The native methods of {@code libtasp.so}, and nothing else (see {@link NativeOps} for the checked
 * Java-friendly wrappers and {@link NativeLoader} for loading). Tensors cross as the {@code long}
 * handles of DJL's PtNDArray ({@code torch::Tensor*}); returned handles are new and must be wrapped
 * exactly once so that an NDManager frees them.
 */
final class TaspLibrary {

    private TaspLibrary() {}

    /** Resolves the libtorch C shim from the loaded libtorch; {@code libtorchDir} is a fallback. */
    static native void init(String libtorchDir);

    /** "cpu" or "cuda". */
    static native String flavor();

    static native String version();

    /** Returns {out, lse, backend}. */
    static native long[] attentionForward(long q, long k, long v, boolean causal, boolean hasScale, double scale);

    /** Returns {dq, dk, dv}. */
    static native long[] attentionBackward(
            long dout, long q, long k, long v, long out, long lse, boolean causal, boolean hasScale, double scale);

    /** Attention recorded by libtorch's autograd (equal head counts); returns the output. */
    static native long attentionForwardRecorded(long q, long k, long v, boolean causal, boolean hasScale, double scale);

    /** Sets the calling thread's autograd grad mode; returns the previous one. */
    static native boolean setGradMode(boolean enabled);

    /** A contiguous copy in another dtype: 0 float32, 1 float16, 2 bfloat16, 3 float64. */
    static native long cast(long t, int dtype);

    /** The dtype code (as for {@link #cast}) of a tensor, -1 for other types. */
    static native int dtype(long t);

    /** A new in-process group; every wait on a peer gives up after {@code timeoutMs}. */
    static native long groupCreate(int worldSize, long timeoutMs);

    static native void groupSetLinkRate(long group, int src, int dst, double bytesPerSecond);

    static native void groupSetSilent(long group, int rank, boolean silent);

    /** Test hook: {@code rank} fails at the start of step {@code step} of its runs (-1: never). */
    static native void groupSetFault(long group, int rank, long step);

    static native void groupFail(long group, String message);

    /** The group's first failure, or null while it has not failed. */
    static native String groupFailure(long group);

    /** {groups, NCCL communicators} created and not yet destroyed in this process. */
    static native long[] liveObjects();

    /** Length of the stats array of a run of {@code steps} steps (TASP_STATS_LENGTH in tasp.h). */
    static native int statsLength(long steps);

    static native void groupDestroy(long group);

    /** Runs one rank's program; returns {out, lse}; fills stats (see {@link #statsLength}). */
    static native long[] rankForward(
            long group, int rank, long[] program, long q, long k, long v, boolean hasScale, double scale,
            double[] stats);

    /**
     * One rank's part of an all-to-all (in-process transport): sends[p] (0: nothing) goes to rank p;
     * from each rank p a tensor of recvSizes[p*ndim .. +ndim) comes back (first size -1: nothing), with
     * like's dtype and device. Returns one handle per rank (0 where nothing came); stats gets the totals.
     */
    static native long[] rankAllToAll(long group, int rank, long[] sends, long[] recvSizes, int ndim, long like,
            double[] stats);

    /** Runs one rank's backward (in-process transport); returns {dq, dk, dv}. */
    static native long[] rankBackward(long group, int rank, long[] program, long[] returnMap,
            long dout, long q, long k, long v, long out, long lse, boolean hasScale, double scale, double[] stats);

    /** Sums the tensors over the ranks of a TCP mesh or ({@code nccl}) an NCCL communicator, in place. */
    static native void allReduce(boolean nccl, long meshOrComm, long[] tensors);

    /** As {@link #rankBackward}, over a TCP mesh. */
    static native long[] tcpRankBackward(long mesh, long[] program, long[] returnMap,
            long dout, long q, long k, long v, long out, long lse, boolean hasScale, double scale, double[] stats);

    /** As {@link #rankBackward}, over NCCL. */
    static native long[] ncclRankBackward(long comm, long[] program, long[] returnMap,
            long dout, long q, long k, long v, long out, long lse, boolean hasScale, double scale, double[] stats);

    /** NCCL's version number; loads NCCL ({@code path} null: libnccl.so.2). */
    static native int ncclVersion(String path);

    /** 128 bytes naming a new NCCL communicator. */
    static native byte[] ncclUniqueId(String path);

    static native long ncclCommCreate(String path, int world, int rank, byte[] uniqueId, int device, long timeoutMs);

    static native void ncclCommDestroy(long comm);

    /** Aborts the communicator, or asks the forward running on it to (from any thread). */
    static native void ncclCommAbort(long comm);

    /** Takes part in the peers' agreement exchange with a reason this rank cannot run. */
    static native void ncclReject(long comm, String why);

    /**
     * As {@link #rankAllToAll}, over NCCL (the communicator's rank and world; pieces and like on its GPU).
     * Bad input found natively is sent to the peers through the agreement exchange.
     */
    static native long[] ncclAllToAll(long comm, long[] sends, long[] recvSizes, int ndim, long like, double[] stats);

    /** As {@link #rankForward}, over NCCL. */
    static native long[] ncclRankForward(
            long comm, long[] program, long q, long k, long v, boolean hasScale, double scale, double[] stats);

    /** In-place fp32 log-sum-exp merge of a partial result into an accumulator. */
    static native void mergePartial(long accOut, long accLse, long blockOut, long blockLse);

    /**
     * This process's rank of a TCP mesh, listening on {@code bindHost} (numeric); returns {mesh,
     * port}.
     */
    static native long[] tcpMeshCreate(int world, int rank, String bindHost, long timeoutMs);

    /** Connects to every peer; blocks until all are connected or the timeout passed. */
    static native void tcpMeshConnect(long mesh, String[] hosts, int[] ports, long token);

    static native void tcpMeshFail(long mesh, String message);

    static native void tcpMeshDestroy(long mesh);

    /** As {@link #rankForward}, over the TCP mesh. */
    static native long[] tcpRankForward(
            long mesh, long[] program, long q, long k, long v, boolean hasScale, double scale, double[] stats);

    /** As {@link #rankAllToAll}, over the TCP mesh (CPU tensors). */
    static native long[] tcpAllToAll(long mesh, long[] sends, long[] recvSizes, int ndim, long like, double[] stats);
}
