package io.github.taspdjl.runtime;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.NcclCommunicator;
import io.github.taspdjl.jni.TaspNativeException;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * One JVM over all GPUs of this node: rank r is GPU r, run by its own thread, and the ranks talk
 * over NCCL communicators made in this process (rank 0's unique id needs no launcher). This is how
 * a single process (the demo, a DJL Serving worker that owns the node's GPUs) spreads a long
 * sequence over the node; several nodes need one process per GPU ({@link ProcessGroup}).
 * Every rank's work runs on that rank's thread ({@link #runRanks}), so each thread keeps its GPU.
 */
public final class LocalGpuGroup implements RankGroup, AutoCloseable {

    private final long timeoutMs;
    private final List<NcclGroup> ranks;
    private final List<ExecutorService> threads;

    private LocalGpuGroup(long timeoutMs, List<NcclGroup> ranks, List<ExecutorService> threads) {
        this.timeoutMs = timeoutMs;
        this.ranks = ranks;
        this.threads = threads;
    }

    /**
     * Joins one NCCL rank per GPU of a one-node {@code topology} (GPU r = device r of DJL's engine).
     *
     * @throws IllegalArgumentException when the topology is not one node of GPUs
     * @throws IllegalStateException when this JVM sees fewer GPUs than the topology has
     * @throws TaspNativeException when NCCL cannot be loaded or a communicator cannot be made
     */
    public static LocalGpuGroup create(Topology topology, Strategy strategy, long timeoutMs) {
        return create(topology, strategy, timeoutMs, Engine.getEngine("PyTorch").getGpuCount());
    }

    /** As {@link #create(Topology, Strategy, long)}, with the number of GPUs DJL sees given (tests). */
    static LocalGpuGroup create(Topology topology, Strategy strategy, long timeoutMs, int visible) {
        int n = topology.deviceCount();
        if (topology.nodeCount() != 1) {
            throw new IllegalArgumentException("one JVM serves one node; this topology has " + topology.nodeCount()
                    + " nodes (start one process per GPU: ProcessGroup)");
        }
        if (timeoutMs < 1) {
            throw new IllegalArgumentException("timeout must be at least 1 ms, got " + timeoutMs);
        }
        if (visible < n) {
            throw new IllegalStateException("a group over this node's " + n + " GPU(s) needs them all, but DJL's "
                    + "PyTorch engine sees " + visible + " (a CUDA libtorch and CUDA_VISIBLE_DEVICES listing them)");
        }
        byte[] id = NcclCommunicator.uniqueId(); // loads NCCL; its absence is reported here
        List<ExecutorService> threads = new ArrayList<>();
        List<Future<NcclGroup>> joins = new ArrayList<>();
        for (int r = 0; r < n; r++) {
            final int rank = r;
            ExecutorService t = Executors.newSingleThreadExecutor(job -> {
                Thread th = new Thread(job, "tasp-gpu-rank-" + rank);
                th.setDaemon(true);
                return th;
            });
            threads.add(t);
            // ncclCommInitRank blocks until every rank joined: the joins must run concurrently.
            joins.add(t.submit(() -> NcclGroup.join(topology, strategy, rank, id, rank, timeoutMs)));
        }
        List<NcclGroup> ranks = new ArrayList<>();
        try {
            ranks.addAll(collect(joins, timeoutMs));
        } catch (RuntimeException e) {
            for (Future<NcclGroup> f : joins) {
                closeJoined(f);
            }
            threads.forEach(ExecutorService::shutdownNow);
            throw e;
        }
        return new LocalGpuGroup(timeoutMs, ranks, threads);
    }

    /** The DJL device of rank {@code rank}. */
    public Device device(int rank) {
        return Device.gpu(rank);
    }

    @Override
    public int worldSize() {
        return ranks.size();
    }

    @Override
    public Plan plan(boolean causal) {
        return ranks.get(0).plan(causal);
    }

    /** Rank {@code rank}'s part of the forward; call it from that rank's thread ({@link #runRanks}). */
    @Override
    public NativeGroup.RankOutput forwardRank(int rank, NDArray q, NDArray k, NDArray v, boolean causal, Float scale,
            long seqLen, PackedSequence documents) {
        if (rank < 0 || rank >= ranks.size()) {
            throw new IllegalArgumentException("rank " + rank + " outside a group of " + ranks.size());
        }
        return ranks.get(rank).forwardRank(rank, q, k, v, causal, scale, seqLen, documents);
    }

    /** Rank {@code rank}'s part of the backward; call it from that rank's thread. */
    @Override
    public NativeGroup.RankGradients backwardRank(int rank, NDArray dout, NDArray q, NDArray k, NDArray v,
            NDArray out, NDArray lse, boolean causal, Float scale, long seqLen) {
        if (rank < 0 || rank >= ranks.size()) {
            throw new IllegalArgumentException("rank " + rank + " outside a group of " + ranks.size());
        }
        return ranks.get(rank).backwardRank(rank, dout, q, k, v, out, lse, causal, scale, seqLen);
    }

    @Override
    public void rejectRank(int rank, String why) {
        if (rank < 0 || rank >= ranks.size()) {
            throw new IllegalArgumentException("rank " + rank + " outside a group of " + ranks.size());
        }
        ranks.get(rank).rejectRank(rank, why);
    }

    /**
     * Runs {@code work} on every rank's thread inside its {@link RankContext} and returns the results
     * by rank; the first failure is thrown (the others' NCCL waits end at the timeout).
     */
    public <T> List<T> runRanks(long seqLen, boolean causal, SequenceParallelGroup.RankWork<T> work) {
        List<Future<T>> futures = new ArrayList<>();
        for (int r = 0; r < ranks.size(); r++) {
            final int rank = r;
            futures.add(threads.get(r).submit(() -> RankContext.run(this, rank, seqLen, causal, () -> work.run(rank))));
        }
        return collect(futures, timeoutMs);
    }

    private static <T> List<T> collect(List<Future<T>> futures, long timeoutMs) {
        List<T> out = new ArrayList<>();
        RuntimeException first = null;
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs * (futures.size() + 2L) + 10_000);
        for (int r = 0; r < futures.size(); r++) {
            try {
                out.add(futures.get(r).get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS));
            } catch (ExecutionException e) {
                RuntimeException re = e.getCause() instanceof RuntimeException ? (RuntimeException) e.getCause()
                        : new TaspNativeException("GPU rank " + r + " failed", e.getCause());
                if (first == null) {
                    first = re;
                } else {
                    first.addSuppressed(re);
                }
            } catch (TimeoutException e) {
                if (first == null) {
                    first = new TaspNativeException(TaspNativeException.GROUP, "GPU rank " + r + " did not return in time");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for the GPU ranks", e);
            }
        }
        if (first != null) {
            throw first;
        }
        return out;
    }

    private static void closeJoined(Future<NcclGroup> f) {
        if (f.isDone() && !f.isCancelled()) {
            try {
                f.get().close();
            } catch (ExecutionException | InterruptedException | RuntimeException e) {
                // that rank never joined
            }
        } else {
            f.cancel(true);
        }
    }

    @Override
    public void close() {
        for (int r = 0; r < ranks.size(); r++) {
            NcclGroup g = ranks.get(r);
            try {
                threads.get(r).submit(g::close).get(timeoutMs, TimeUnit.MILLISECONDS);
            } catch (ExecutionException | TimeoutException e) {
                g.close();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                g.close();
            }
        }
        threads.forEach(ExecutorService::shutdownNow);
    }
}
