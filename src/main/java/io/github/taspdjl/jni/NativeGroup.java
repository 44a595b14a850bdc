package io.github.taspdjl.jni;

import ai.djl.ndarray.NDArray;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The native side of an in-process sequence-parallel group: rendezvous state, receive buffers
 * published between rank threads, emulated link rates and the group-wide failure. Every wait on a
 * peer gives up after the timeout and fails all ranks. A failed group stays failed.
 *
 * <p>Closing waits for ranks still inside the native group (after failing them, so they return at
 * once); a group that becomes unreachable without being closed is freed by a {@link Cleaner}.
 */
public final class NativeGroup implements AutoCloseable {

    private static final Logger logger = LoggerFactory.getLogger(NativeGroup.class);
    static final Cleaner CLEANER = Cleaner.create(r -> {
        Thread t = new Thread(r, "tasp-native-cleaner");
        t.setDaemon(true);
        return t;
    });

    private final int worldSize;
    private final State state;
    private final Cleaner.Cleanable cleanable;

    /** The native handle and its callers, apart from the group object so the cleaner can free it. */
    private static final class State implements Runnable {
        private long handle;
        private int inFlight;
        private boolean closed;
        private boolean destroyWhenIdle;

        @Override
        public synchronized void run() {
            if (handle == 0) {
                return;
            }
            if (!closed) {
                logger.warn("a sequence-parallel group was never closed; freeing its native state");
            }
            if (inFlight > 0) {
                destroyWhenIdle = true; // the last caller to leave frees it
                return;
            }
            TaspLibrary.groupDestroy(handle);
            handle = 0;
        }
    }

    /** Creates a group of {@code worldSize} ranks of this process. */
    public NativeGroup(int worldSize, long timeoutMs) {
        if (worldSize < 1) {
            throw new IllegalArgumentException("world size must be at least 1, got " + worldSize);
        }
        if (timeoutMs < 1) {
            throw new IllegalArgumentException("timeout must be at least 1 ms, got " + timeoutMs);
        }
        NativeLoader.load();
        this.worldSize = worldSize;
        this.state = new State();
        state.handle = TaspLibrary.groupCreate(worldSize, timeoutMs);
        this.cleanable = CLEANER.register(this, state);
    }

    /** What one rank's run produced: output (input dtype), fp32 LSE, and timings. */
    public record RankOutput(NDArray output, NDArray lse, RankStats stats) {}

    /**
     * Per-rank timings of one run in milliseconds, bytes sent, bytes of buffers the executor allocated
     * for the rank (staging, receive buffers, accumulators, output), and per step the compute, comm
     * and wait times.
     */
    public record RankStats(double computeMs, double commMs, double waitMs, double totalMs, long bytesSent,
            long bufferBytes, double[] stepComputeMs, double[] stepCommMs, double[] stepWaitMs) {

        /** Reads the stats array the native executor fills (see native/include/tasp.h). */
        static RankStats of(double[] s) {
            int steps = (s.length - 6) / 3;
            double[] c = new double[steps];
            double[] m = new double[steps];
            double[] w = new double[steps];
            for (int i = 0; i < steps; i++) {
                c[i] = s[6 + 3 * i];
                m[i] = s[7 + 3 * i];
                w[i] = s[8 + 3 * i];
            }
            return new RankStats(s[0], s[1], s[2], s[3], (long) s[4], (long) s[5], c, m, w);
        }

        /** A stats array for a program of {@code program[4]} steps (its size is defined in tasp.h). */
        static double[] buffer(long[] program) {
            long steps = program.length > 4 ? Math.max(0, Math.min(program[4], program.length)) : 0;
            return new double[TaspLibrary.statsLength(steps)];
        }

        /** A stats array for the backward of that program: one step more (the last returns). */
        static double[] backwardBuffer(long[] program) {
            long steps = program.length > 4 ? Math.max(0, Math.min(program[4], program.length)) : 0;
            return new double[TaspLibrary.statsLength(steps + 1)];
        }
    }

    public int worldSize() {
        return worldSize;
    }

    /** Emulated fabric: transfers from src to dst take at least bytes / rate. 0 removes the limit. */
    public void setLinkRate(int src, int dst, double bytesPerSecond) {
        withHandle(h -> TaspLibrary.groupSetLinkRate(h, src, dst, bytesPerSecond));
    }

    /** Test hook: a silent rank posts no sends, as a hung or broken peer would. */
    public void setSilent(int rank, boolean silent) {
        withHandle(h -> TaspLibrary.groupSetSilent(h, rank, silent));
    }

    /** Test hook: {@code rank} fails at the start of step {@code step} of its runs (-1: never). */
    public void setFault(int rank, long step) {
        withHandle(h -> TaspLibrary.groupSetFault(h, rank, step));
    }

    /** Fails the group: every rank waiting on a peer wakes and throws with this message. */
    public void fail(String message) {
        withHandle(h -> TaspLibrary.groupFail(h, message));
    }

    /** The group's first failure, or null while it has not failed (or once it is closed). */
    public String failure() {
        synchronized (state) {
            return state.handle == 0 ? null : TaspLibrary.groupFailure(state.handle);
        }
    }

    /** Groups and NCCL communicators created and not yet freed in this process: {groups, comms}. */
    public static long[] liveNativeObjects() {
        NativeLoader.load();
        return TaspLibrary.liveObjects();
    }

    /**
     * Runs one rank's lowered plan. Blocks until every rank of the group has run its part (each rank
     * calls this from its own thread), or until the group fails.
     */
    public RankOutput rankForward(int rank, long[] program, NDArray q, NDArray k, NDArray v, Float scale) {
        double[] stats = RankStats.buffer(program);
        long g = enter();
        long[] r;
        try {
            r = TaspLibrary.rankForward(g, rank, program, handle(q, "q"), handle(k, "k"), handle(v, "v"),
                    scale != null, scale == null ? 0 : scale, stats);
        } finally {
            exit();
            Reference.reachabilityFence(this); // the cleaner must not free the group during the call
        }
        PtNDManager manager = (PtNDManager) q.getManager();
        return new RankOutput(new PtNDArray(manager, r[0]), new PtNDArray(manager, r[1]),
                RankStats.of(stats));
    }

    /** What one rank received in an all-to-all (null where nothing came from a rank) and its timings. */
    public record Exchanged(NDArray[] received, RankStats stats) {}

    /**
     * Rank {@code rank}'s part of an all-to-all: {@code sends[p]} (null: nothing) goes to rank p, and from
     * each rank p whose {@code recvShapes[p]} is not null a tensor of that shape comes back, with
     * {@code like}'s dtype and device, in {@code like}'s manager. Every rank of the group must call this,
     * each from its own thread; a disagreement on a piece's shape fails every rank at once, naming the pair.
     */
    public Exchanged allToAll(int rank, NDArray[] sends, long[][] recvShapes, NDArray like) {
        return AllToAllCall.run(worldSize(), sends, recvShapes, like, (pieces, sizes, ndim, likeHandle, stats) -> {
            long g = enter();
            try {
                return TaspLibrary.rankAllToAll(g, rank, pieces, sizes, ndim, likeHandle, stats);
            } finally {
                exit();
                Reference.reachabilityFence(this);
            }
        });
    }

    /** What one rank's backward produced: dq, dk, dv of its shard (input dtype) and timings. */
    public record RankGradients(NDArray dq, NDArray dk, NDArray dv, RankStats stats) {

        /** Wraps the native {dq, dk, dv} handles in q's manager. */
        static RankGradients wrap(NDArray q, long[] handles, double[] stats) {
            PtNDManager manager = (PtNDManager) q.getManager();
            return new RankGradients(new PtNDArray(manager, handles[0]), new PtNDArray(manager, handles[1]),
                    new PtNDArray(manager, handles[2]), RankStats.of(stats));
        }
    }

    /**
     * Runs one rank's part of the backward of {@link #rankForward}: the same program, its return map
     * ({@code RankProgram.returnMapsAll}), the rank's shard, its forward output and LSE and the output
     * gradient. Key/value gradients of received keys go back to their owners through the transport.
     * Blocks until every rank has run its part, or until the group fails.
     */
    public RankGradients rankBackward(int rank, long[] program, long[] returnMap, NDArray dout,
            NDArray q, NDArray k, NDArray v, NDArray out, NDArray lse, Float scale) {
        double[] stats = RankStats.backwardBuffer(program);
        long g = enter();
        long[] r;
        try {
            r = TaspLibrary.rankBackward(g, rank, program, returnMap, handle(dout, "dout"),
                    handle(q, "q"), handle(k, "k"), handle(v, "v"), handle(out, "out"), handle(lse, "lse"),
                    scale != null, scale == null ? 0 : scale, stats);
        } finally {
            exit();
            Reference.reachabilityFence(this);
        }
        return RankGradients.wrap(q, r, stats);
    }

    private static long handle(NDArray a, String name) {
        if (!(a instanceof PtNDArray)) {
            throw new IllegalArgumentException(name + " must be an NDArray of DJL's PyTorch engine, got "
                    + a.getClass().getName());
        }
        return ((PtNDArray) a).getHandle();
    }

    /** Runs a short native call on the live handle; close() cannot free it meanwhile. */
    private void withHandle(java.util.function.LongConsumer call) {
        synchronized (state) {
            call.accept(handle());
        }
    }

    private long handle() {
        synchronized (state) {
            if (state.handle == 0) {
                throw new IllegalStateException("the sequence-parallel group is closed");
            }
            return state.handle;
        }
    }

    private long enter() {
        synchronized (state) {
            long h = handle();
            state.inFlight++;
            return h;
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

    /** Destroys the native group; ranks still running are failed first and waited for. */
    @Override
    public void close() {
        synchronized (state) {
            if (state.handle == 0) {
                return;
            }
            if (state.inFlight > 0) {
                TaspLibrary.groupFail(state.handle, "the group was closed while ranks were running");
                while (state.inFlight > 0) {
                    try {
                        state.wait();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return; // leave the native group alive rather than free it under running ranks
                    }
                }
            }
            state.closed = true;
        }
        cleanable.clean();
    }
}
