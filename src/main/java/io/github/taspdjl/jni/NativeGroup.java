package io.github.taspdjl.jni;

import ai.djl.ndarray.NDArray;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;

/**
 * The native side of an in-process sequence-parallel group: rendezvous state, receive buffers
 * published between rank threads, emulated link rates and the group-wide failure. Every wait on a
 * peer gives up after the timeout and fails all ranks. A failed group stays failed.
 */
public final class NativeGroup implements AutoCloseable {

    private final int worldSize;
    private long handle;
    private int inFlight;

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
        this.handle = TaspLibrary.groupCreate(worldSize, timeoutMs);
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

        /** A stats array for a program of {@code program[4]} steps. */
        static double[] buffer(long[] program) {
            long steps = program.length > 4 ? Math.max(0, Math.min(program[4], program.length)) : 0;
            return new double[6 + 3 * (int) steps];
        }
    }

    public int worldSize() {
        return worldSize;
    }

    /** Emulated fabric: transfers from src to dst take at least bytes / rate. 0 removes the limit. */
    public void setLinkRate(int src, int dst, double bytesPerSecond) {
        TaspLibrary.groupSetLinkRate(handle(), src, dst, bytesPerSecond);
    }

    /** Test hook: a silent rank posts no sends, as a hung or broken peer would. */
    public void setSilent(int rank, boolean silent) {
        TaspLibrary.groupSetSilent(handle(), rank, silent);
    }

    /** Fails the group: every rank waiting on a peer wakes and throws with this message. */
    public void fail(String message) {
        TaspLibrary.groupFail(handle(), message);
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
        }
        PtNDManager manager = (PtNDManager) q.getManager();
        return new RankOutput(new PtNDArray(manager, r[0]), new PtNDArray(manager, r[1]),
                RankStats.of(stats));
    }

    private static long handle(NDArray a, String name) {
        if (!(a instanceof PtNDArray)) {
            throw new IllegalArgumentException(name + " must be an NDArray of DJL's PyTorch engine, got "
                    + a.getClass().getName());
        }
        return ((PtNDArray) a).getHandle();
    }

    private synchronized long handle() {
        if (handle == 0) {
            throw new IllegalStateException("the group is closed");
        }
        return handle;
    }

    private synchronized long enter() {
        long h = handle();
        inFlight++;
        return h;
    }

    private synchronized void exit() {
        inFlight--;
        notifyAll();
    }

    /** Destroys the native group; ranks still running are failed first and waited for. */
    @Override
    public synchronized void close() {
        if (handle == 0) {
            return;
        }
        if (inFlight > 0) {
            TaspLibrary.groupFail(handle, "the group was closed while ranks were running");
            while (inFlight > 0) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return; // leave the native group alive rather than free it under running ranks
                }
            }
        }
        TaspLibrary.groupDestroy(handle);
        handle = 0;
    }
}
