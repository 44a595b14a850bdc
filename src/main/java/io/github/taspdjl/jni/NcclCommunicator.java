package io.github.taspdjl.jni;

import ai.djl.ndarray.NDArray;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;

/**
 * One rank's NCCL communicator, for GPU ranks in this or other processes. NCCL is loaded only when
 * this class is used: {@code tasp.nccl.library} / {@code TASP_NCCL_LIBRARY} names the library
 * (default {@code libnccl.so.2}), and its absence is an error here and nowhere else.
 */
public final class NcclCommunicator implements AutoCloseable {

    private final int worldSize;
    private final int rank;
    private long handle;

    private NcclCommunicator(int worldSize, int rank, long handle) {
        this.worldSize = worldSize;
        this.rank = rank;
        this.handle = handle;
    }

    /** The NCCL version number (e.g. 22809 for 2.28.9). Throws when NCCL cannot be loaded. */
    public static int version() {
        NativeLoader.load();
        return TaspLibrary.ncclVersion(libraryPath());
    }

    /** A new communicator's 128-byte id: rank 0 makes it and hands it to the other ranks. */
    public static byte[] uniqueId() {
        NativeLoader.load();
        return TaspLibrary.ncclUniqueId(libraryPath());
    }

    /**
     * Joins rank {@code rank} of {@code worldSize} on CUDA device {@code device}; blocks until all
     * ranks joined or {@code timeoutMs} passed.
     */
    public static NcclCommunicator join(int worldSize, int rank, byte[] uniqueId, int device, long timeoutMs) {
        if (worldSize < 1 || rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("rank " + rank + " outside a world of " + worldSize);
        }
        if (uniqueId == null || uniqueId.length != 128) {
            throw new IllegalArgumentException("an NCCL unique id has 128 bytes");
        }
        if (timeoutMs < 1) {
            throw new IllegalArgumentException("timeout must be at least 1 ms, got " + timeoutMs);
        }
        NativeLoader.load();
        long h = TaspLibrary.ncclCommCreate(libraryPath(), worldSize, rank, uniqueId, device, timeoutMs);
        return new NcclCommunicator(worldSize, rank, h);
    }

    public int worldSize() {
        return worldSize;
    }

    public int rank() {
        return rank;
    }

    /** Runs this rank's lowered plan over NCCL; every rank must call it. */
    public NativeGroup.RankOutput rankForward(long[] program, NDArray q, NDArray k, NDArray v, Float scale) {
        double[] stats = NativeGroup.RankStats.buffer(program);
        long[] r = TaspLibrary.ncclRankForward(handle(), program, ptHandle(q), ptHandle(k), ptHandle(v),
                scale != null, scale == null ? 0 : scale, stats);
        PtNDManager manager = (PtNDManager) q.getManager();
        return new NativeGroup.RankOutput(new PtNDArray(manager, r[0]), new PtNDArray(manager, r[1]),
                NativeGroup.RankStats.of(stats));
    }

    private static long ptHandle(NDArray a) {
        if (!(a instanceof PtNDArray)) {
            throw new IllegalArgumentException("expected a PyTorch engine NDArray, got " + a.getClass().getName());
        }
        return ((PtNDArray) a).getHandle();
    }

    static String libraryPath() {
        return NativeLoader.setting("tasp.nccl.library", "TASP_NCCL_LIBRARY", null);
    }

    private synchronized long handle() {
        if (handle == 0) {
            throw new IllegalStateException("the NCCL communicator is closed");
        }
        return handle;
    }

    @Override
    public synchronized void close() {
        if (handle != 0) {
            TaspLibrary.ncclCommDestroy(handle);
            handle = 0;
        }
    }
}
