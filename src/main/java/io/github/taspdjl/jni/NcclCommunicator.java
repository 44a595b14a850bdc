package io.github.taspdjl.jni;

import ai.djl.ndarray.NDArray;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import java.lang.ref.Cleaner;
import java.lang.ref.Reference;

/**
 * One rank's NCCL communicator, for GPU ranks in this or other processes. NCCL is loaded only when
 * this class is used: {@code tasp.nccl.library} / {@code TASP_NCCL_LIBRARY} names the library
 * (default {@code libnccl.so.2}), and its absence is an error here and nowhere else.
 *
 * <p>The communicator is nonblocking: every wait polls NCCL against the timeout given at {@link
 * #join} (counted from the last progress) and aborts the communicator past it; an aborted
 * communicator fails every later call at once. One forward runs at a time; {@link #close()} during a
 * forward aborts it (the forward fails within milliseconds) and frees the communicator after it
 * returned. A communicator that becomes unreachable without being closed is freed by a {@link
 * Cleaner}.
 */
public final class NcclCommunicator implements ProcessTransport, AutoCloseable {

    private final int worldSize;
    private final int rank;
    private final State state;
    private final Cleaner.Cleanable cleanable;

    /** The native handle and its callers, apart from the communicator so the cleaner can free it. */
    private static final class State implements Runnable {
        private long handle;
        private int inFlight;
        private boolean destroyWhenIdle;

        @Override
        public synchronized void run() {
            if (handle == 0) {
                return;
            }
            if (inFlight > 0) {
                destroyWhenIdle = true; // the last caller to leave frees it
                return;
            }
            TaspLibrary.ncclCommDestroy(handle);
            handle = 0;
        }
    }

    /** A handle of 0 is a closed communicator (tests of the paths that need no NCCL use one). */
    NcclCommunicator(int worldSize, int rank, long handle) {
        this.worldSize = worldSize;
        this.rank = rank;
        this.state = new State();
        state.handle = handle;
        this.cleanable = NativeGroup.CLEANER.register(this, state);
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

    @Override
    public int worldSize() {
        return worldSize;
    }

    @Override
    public int rank() {
        return rank;
    }

    /** Runs this rank's lowered plan over NCCL; every rank must call it. */
    @Override
    public NativeGroup.RankOutput rankForward(long[] program, NDArray q, NDArray k, NDArray v, Float scale) {
        double[] stats = NativeGroup.RankStats.buffer(program);
        long h = enter();
        long[] r;
        try {
            r = TaspLibrary.ncclRankForward(h, program, ptHandle(q), ptHandle(k), ptHandle(v),
                    scale != null, scale == null ? 0 : scale, stats);
        } finally {
            exit();
            Reference.reachabilityFence(this); // the cleaner must not free the communicator during the call
        }
        PtNDManager manager = (PtNDManager) q.getManager();
        return new NativeGroup.RankOutput(new PtNDArray(manager, r[0]), new PtNDArray(manager, r[1]),
                NativeGroup.RankStats.of(stats));
    }

    /**
     * The backward of {@link #rankForward} over NCCL (the same program and its return map; see
     * {@code NativeGroup.rankBackward}); every rank must call it. Returns dq, dk, dv of this rank's shard.
     */
    @Override
    public NativeGroup.RankGradients rankBackward(long[] program, long[] returnMap, NDArray dout, NDArray q,
            NDArray k, NDArray v, NDArray out, NDArray lse, Float scale) {
        double[] stats = NativeGroup.RankStats.backwardBuffer(program);
        long h = enter();
        long[] r;
        try {
            r = TaspLibrary.ncclRankBackward(h, program, returnMap, ptHandle(dout), ptHandle(q), ptHandle(k),
                    ptHandle(v), ptHandle(out), ptHandle(lse), scale != null, scale == null ? 0 : scale, stats);
        } finally {
            exit();
            Reference.reachabilityFence(this); // the cleaner must not free the communicator during the call
        }
        return NativeGroup.RankGradients.wrap(q, r, stats);
    }

    /**
     * Sums each array over the ranks, in place ({@code ncclAllReduce}; fp32, contiguous, on this
     * rank's GPU); every rank passes the same number of arrays with the same element counts.
     */
    public void allReduceSum(java.util.List<NDArray> arrays) {
        long[] handles = new long[arrays.size()];
        for (int i = 0; i < handles.length; i++) {
            handles[i] = ptHandle(arrays.get(i));
        }
        long h = enter();
        try {
            TaspLibrary.allReduce(true, h, handles);
        } finally {
            exit();
            Reference.reachabilityFence(this);
        }
    }

    /**
     * This rank's part of a personalized all-to-all over NCCL, as {@link NativeGroup#allToAll} (the
     * transfer of head-parallel attention): {@code sends[p]} (null: nothing) goes to rank p, and from
     * each rank p whose {@code recvShapes[p]} is not null a tensor of that shape comes back, with {@code
     * like}'s dtype on this rank's GPU, in {@code like}'s manager. Every rank must call it. The ranks
     * agree on every piece's shape before anything moves: a disagreement, or a peer's {@link #reject},
     * fails every rank with an {@link IllegalArgumentException} and leaves the communicator usable. Bad
     * arguments on this rank (here or natively) are sent to the peers the same way, so they fail at once
     * too: callers do not {@link #reject} again for them. A timeout or an NCCL error aborts the communicator.
     */
    @Override
    public NativeGroup.Exchanged allToAll(NDArray[] sends, long[][] recvShapes, NDArray like) {
        boolean[] reachedNative = {false};
        try {
            return AllToAllCall.run(worldSize, sends, recvShapes, like, (pieces, sizes, ndim, likeHandle, stats) -> {
                reachedNative[0] = true;
                long h = enter();
                try {
                    return TaspLibrary.ncclAllToAll(h, pieces, sizes, ndim, likeHandle, stats);
                } finally {
                    exit();
                    Reference.reachabilityFence(this); // the cleaner must not free the communicator during the call
                }
            });
        } catch (IllegalArgumentException e) {
            if (!reachedNative[0]) {
                // Rejected before the native call: the peers are starting the exchange; tell them.
                try {
                    reject("rank " + rank + ": " + e.getMessage());
                } catch (RuntimeException notDelivered) {
                    e.addSuppressed(notDelivered);
                }
            }
            throw e;
        }
    }

    /**
     * This rank will not run the forward its peers are starting (its input was rejected before the
     * native call): tells them through the agreement exchange, so every rank fails at once.
     */
    public void reject(String why) {
        long h = enter();
        try {
            TaspLibrary.ncclReject(h, why);
        } finally {
            exit();
            Reference.reachabilityFence(this); // the cleaner must not free the communicator during the call
        }
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

    private long enter() {
        synchronized (state) {
            if (state.handle == 0) {
                throw new IllegalStateException("the NCCL communicator is closed");
            }
            state.inFlight++;
            return state.handle;
        }
    }

    private void exit() {
        synchronized (state) {
            state.inFlight--;
            state.notifyAll();
            if (state.inFlight == 0 && state.destroyWhenIdle) {
                state.run();
            }
        }
    }

    /**
     * Frees the communicator. A forward still running on it is aborted first (it fails at its next
     * poll) and waited for; freeing is bounded by the timeout even when a peer died.
     */
    @Override
    public void close() {
        synchronized (state) {
            if (state.handle == 0) {
                return;
            }
            if (state.inFlight > 0) {
                TaspLibrary.ncclCommAbort(state.handle);
                while (state.inFlight > 0) {
                    try {
                        state.wait();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return; // never free a communicator a forward still uses
                    }
                }
            }
        }
        cleanable.clean();
    }
}
