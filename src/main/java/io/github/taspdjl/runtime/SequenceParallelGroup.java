package io.github.taspdjl.runtime;

import ai.djl.ndarray.NDArray;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.TaspNativeException;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.PlanValidator;
import io.github.taspdjl.plan.Planner;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Link;
import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The ranks of one process that share a sequence: world size, topology, strategy, one thread per
 * rank, and the in-process transport (the native group). Plans are made per mask and lowered per
 * sequence length, once each, and checked by {@link PlanValidator} before they run.
 *
 * <p>Every rank's run waits on its peers at most {@code timeout}; past it the whole group fails and
 * every rank throws. A failed group cannot run again: close it and build a new one.
 */
public final class SequenceParallelGroup implements RankGroup, AutoCloseable {

    private static final Logger logger = LoggerFactory.getLogger(SequenceParallelGroup.class);
    private static final AtomicInteger GROUPS = new AtomicInteger();

    private final Topology topology;
    private final Strategy strategy;
    private final long timeoutMs;
    private final NativeGroup nativeGroup;
    private final ExecutorService rankThreads;
    private final Map<Boolean, Plan> plans = new ConcurrentHashMap<>();
    private final Map<String, long[][]> programs = new ConcurrentHashMap<>();
    /** The programs of the most recent packed sequence (each packing has its own, so only one is kept). */
    private final java.util.concurrent.atomic.AtomicReference<PackedPrograms> lastPacked =
            new java.util.concurrent.atomic.AtomicReference<>();
    private final NativeGroup.RankStats[] lastStats;

    private SequenceParallelGroup(Builder b) {
        this.topology = b.topology != null ? b.topology : Topology.virtualCpu(b.worldSize);
        this.strategy = b.strategy;
        this.timeoutMs = b.timeoutMs;
        int n = topology.deviceCount();
        this.nativeGroup = new NativeGroup(n, timeoutMs);
        if (b.uniformGbps > 0) {
            for (Link l : topology.links()) {
                nativeGroup.setLinkRate(l.from(), l.to(), b.uniformGbps * 1e9);
            }
        } else if (b.emulateFabric) {
            for (Link l : topology.links()) {
                nativeGroup.setLinkRate(l.from(), l.to(), l.gbps() * 1e9 * b.fabricScale);
            }
        }
        this.lastStats = new NativeGroup.RankStats[n];
        int id = GROUPS.incrementAndGet();
        AtomicInteger next = new AtomicInteger();
        this.rankThreads = Executors.newFixedThreadPool(n, r -> {
            Thread t = new Thread(r, "tasp-group" + id + "-rank" + next.getAndIncrement());
            t.setDaemon(true);
            return t;
        });
    }

    public static Builder builder() {
        return new Builder();
    }

    @Override
    public int worldSize() {
        return topology.deviceCount();
    }

    public Topology topology() {
        return topology;
    }

    public Strategy strategy() {
        return strategy;
    }

    /** The validated plan this group runs for the mask. */
    @Override
    public Plan plan(boolean causal) {
        return plans.computeIfAbsent(causal, c -> {
            Plan p = Planner.plan(topology, strategy, c); // validated by the planner
            logger.debug("group plan {} causal={}: {} steps, {} cycles, notes {}", p.strategy(), c,
                    p.steps().size(), p.cycles().size(), p.notes());
            return p;
        });
    }

    /** The native program of each rank for a mask and sequence length. */
    long[][] programs(boolean causal, long seqLen) {
        return programs.computeIfAbsent(causal + "/" + seqLen, key -> RankProgram.lowerAll(plan(causal), seqLen));
    }

    private record PackedPrograms(boolean causal, PackedSequence documents, long[][] programs) {}

    /** Programs for a mask, length and packing (null documents: one sequence). */
    long[][] programs(boolean causal, long seqLen, PackedSequence documents) {
        if (documents == null) {
            return programs(causal, seqLen);
        }
        documents.requireLength(seqLen);
        PackedPrograms last = lastPacked.get();
        if (last != null && last.causal() == causal && last.documents().equals(documents)) {
            return last.programs();
        }
        long[][] lowered = RankProgram.lowerAll(plan(causal), seqLen, documents);
        lastPacked.set(new PackedPrograms(causal, documents, lowered));
        return lowered;
    }

    /** Test hook: makes a rank post no sends, like a peer that hangs. */
    public void makeSilent(int rank) {
        nativeGroup.setSilent(rank, true);
    }

    /**
     * Runs rank {@code rank}'s part of a forward. Every rank must call this, each from its own thread,
     * with its shard (see {@link Sharding}); it returns when the whole group has finished.
     */
    @Override
    public NativeGroup.RankOutput forwardRank(int rank, NDArray q, NDArray k, NDArray v, boolean causal, Float scale,
            long seqLen, PackedSequence documents) {
        NativeGroup.RankOutput out =
                nativeGroup.rankForward(rank, programs(causal, seqLen, documents)[rank], q, k, v, scale);
        lastStats[rank] = out.stats();
        return out;
    }

    /** Each rank's stats of its most recent forward (null for a rank that has not run), by rank. */
    public List<NativeGroup.RankStats> lastStats() {
        return java.util.Arrays.asList(lastStats.clone());
    }

    /**
     * Runs every rank on the group's own threads and returns their outputs by rank. If any rank
     * fails, every rank fails within the timeout and this throws the first failure.
     */
    public List<NativeGroup.RankOutput> forwardAll(
            List<NDArray> qs, List<NDArray> ks, List<NDArray> vs, boolean causal, Float scale, long seqLen) {
        return forwardAll(qs, ks, vs, causal, scale, seqLen, null);
    }

    /** {@link #forwardAll} over a packed sequence: attention stays inside each document. */
    public List<NativeGroup.RankOutput> forwardAll(List<NDArray> qs, List<NDArray> ks, List<NDArray> vs,
            boolean causal, Float scale, long seqLen, PackedSequence documents) {
        int n = worldSize();
        if (qs.size() != n || ks.size() != n || vs.size() != n) {
            throw new IllegalArgumentException("need one q, k and v per rank (" + n + "), got " + qs.size() + ", "
                    + ks.size() + ", " + vs.size());
        }
        long[][] progs = programs(causal, seqLen, documents);
        List<Future<NativeGroup.RankOutput>> futures = new ArrayList<>();
        for (int r = 0; r < n; r++) {
            final int rank = r;
            futures.add(rankThreads.submit(() -> {
                try {
                    NativeGroup.RankOutput o =
                            nativeGroup.rankForward(rank, progs[rank], qs.get(rank), ks.get(rank), vs.get(rank), scale);
                    lastStats[rank] = o.stats();
                    return o;
                } catch (IllegalArgumentException e) {
                    nativeGroup.fail("rank " + rank + ": " + e.getMessage()); // the others stop waiting for it
                    throw e;
                }
            }));
        }
        return collect(futures);
    }

    /** Work for one rank, run inside its {@link RankContext}. */
    @FunctionalInterface
    public interface RankWork<T> {
        T run(int rank) throws Exception;
    }

    /**
     * Runs {@code work} on every rank's thread, each inside a {@link RankContext} for a sequence of
     * {@code seqLen} tokens sharded for the {@code causal} plan's layout, and returns the results by
     * rank. Any rank's failure fails the group; the first failure is thrown.
     */
    public <T> List<T> runRanks(long seqLen, boolean causal, RankWork<T> work) {
        return runRanks(seqLen, causal, null, work);
    }

    /**
     * {@link #runRanks(long, boolean, RankWork)} over a packed sequence: each rank's work also runs
     * inside {@link PackedSequence#run}, so attention stays inside each document and positions
     * restart per document.
     */
    public <T> List<T> runRanks(long seqLen, boolean causal, PackedSequence documents, RankWork<T> work) {
        if (documents != null) {
            documents.requireLength(seqLen);
        }
        int n = worldSize();
        List<Future<T>> futures = new ArrayList<>();
        for (int r = 0; r < n; r++) {
            final int rank = r;
            futures.add(rankThreads.submit(() -> {
                try {
                    return RankContext.run(this, rank, seqLen, causal,
                            () -> PackedSequence.run(documents, () -> work.run(rank)));
                } catch (RuntimeException e) {
                    nativeGroup.fail("rank " + rank + ": " + e);
                    throw e;
                }
            }));
        }
        return collect(futures);
    }

    private <T> List<T> collect(List<Future<T>> futures) {
        int n = futures.size();
        List<T> out = new ArrayList<>();
        RuntimeException first = null;
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs * (n + 2L) + 10_000);
        for (int r = 0; r < n; r++) {
            try {
                out.add(futures.get(r).get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS));
            } catch (ExecutionException e) {
                Throwable c = e.getCause();
                RuntimeException re = c instanceof RuntimeException
                        ? (RuntimeException) c : new TaspNativeException("rank " + r + " failed", c);
                if (first == null) {
                    first = re;
                } else {
                    first.addSuppressed(re);
                }
            } catch (TimeoutException e) {
                nativeGroup.fail("rank " + r + " did not return in time");
                if (first == null) {
                    first = new TaspNativeException(TaspNativeException.GROUP, "rank " + r + " did not return in time");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                nativeGroup.fail("interrupted");
                throw new IllegalStateException("interrupted while waiting for the ranks", e);
            }
        }
        if (first != null) {
            throw first;
        }
        return out;
    }

    /** Stops the rank threads and frees the native group (running ranks are failed first). */
    @Override
    public void close() {
        nativeGroup.close();
        rankThreads.shutdownNow();
        try {
            if (!rankThreads.awaitTermination(timeoutMs + 5000, TimeUnit.MILLISECONDS)) {
                logger.warn("rank threads of a closed group are still running");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Builds a group. Without a topology: {@code worldSize} virtual CPU ranks, all-to-all. */
    public static final class Builder {
        private int worldSize = 8;
        private Topology topology;
        private Strategy strategy = Strategy.TASP;
        private long timeoutMs = 60_000;
        private boolean emulateFabric;
        private double fabricScale = 1.0;
        private double uniformGbps;

        public Builder worldSize(int n) {
            if (n < 1 || n > Topology.MAX_VIRTUAL_RANKS) {
                throw new IllegalArgumentException("world size must be 1 to " + Topology.MAX_VIRTUAL_RANKS
                        + " (the in-process group's limit: one thread per rank), got " + n);
            }
            this.worldSize = n;
            return this;
        }

        public Builder topology(Topology t) {
            this.topology = t;
            return this;
        }

        public Builder strategy(Strategy s) {
            this.strategy = s;
            return this;
        }

        /** How long any rank waits for a peer before the whole group fails (default 60 s). */
        public Builder timeout(long millis) {
            if (millis < 1) {
                throw new IllegalArgumentException("timeout must be at least 1 ms, got " + millis);
            }
            this.timeoutMs = millis;
            return this;
        }

        /**
         * Limits each link of the in-process transport to the topology's bandwidth times {@code
         * scale} (an emulated fabric, for measuring plans on one machine).
         */
        public Builder emulateFabric(double scale) {
            if (!(scale > 0)) {
                throw new IllegalArgumentException("fabric scale must be positive, got " + scale);
            }
            this.emulateFabric = true;
            this.fabricScale = scale;
            return this;
        }

        /** Limits every link of the in-process transport to {@code gbps} GB/s (an emulated fabric). */
        public Builder emulateLinks(double gbps) {
            if (!(gbps > 0)) {
                throw new IllegalArgumentException("link rate must be positive, got " + gbps);
            }
            this.uniformGbps = gbps;
            return this;
        }

        public SequenceParallelGroup build() {
            return new SequenceParallelGroup(this);
        }
    }
}
