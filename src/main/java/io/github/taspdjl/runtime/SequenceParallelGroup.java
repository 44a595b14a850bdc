package io.github.taspdjl.runtime;

import ai.djl.ndarray.NDArray;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.TaspNativeException;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.PlanValidator;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Link;
import io.github.taspdjl.topology.Topology;
import io.github.taspdjl.topology.TopologyDetector;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The ranks of one process that share a sequence: world size, topology, strategy, one thread per
 * rank, and the in-process transport (the native group). Plans are made per mask and lowered per
 * sequence length, once each, and checked by {@link PlanValidator} before they run.
 *
 * <p>What a group promises (docs/ARCHITECTURE.md, "What a group promises"):
 * <ul>
 *   <li>Thread safety: a group may be shared between threads. {@link #forwardAll}, {@link #runRanks}
 *       and {@code TaspAttention.forward(group, q, k, v, ...)} run one at a time (a second caller
 *       waits for the first); calling them from inside one of the group's own rank threads throws
 *       at once. The per-rank API ({@link #forwardRank}) must be called by exactly one thread per
 *       rank per collective; a rank entered twice at once fails the group at once.
 *   <li>Agreement: before any byte moves, the ranks of a run compare shapes, dtypes, device, mask,
 *       scale and the transfers of their programs; any difference fails every rank at once with an
 *       {@link IllegalArgumentException} naming the rank and what differs.
 *   <li>Timeouts: every wait on a peer gives up after {@code timeout} (builder, default 60 s) and
 *       fails every rank. {@link #runRanks} returns at most about one timeout after a rank stops
 *       making progress, even when that rank's own code hangs (its thread is interrupted).
 *   <li>After a failure the group is failed for good: every later call throws an {@link
 *       IllegalStateException} at once that says so and quotes the first failure; close it and
 *       build a new one. After {@link #close()} every call throws an {@link IllegalStateException}
 *       saying the group is closed.
 * </ul>
 */
public final class SequenceParallelGroup implements RankGroup, AutoCloseable {

    private static final Logger logger = LoggerFactory.getLogger(SequenceParallelGroup.class);
    private static final AtomicInteger GROUPS = new AtomicInteger();
    private static final long IDLE_THREAD_SECONDS = 30;

    private final Topology topology;
    private final PlanChoice choice;
    private final long timeoutMs;
    private final NativeGroup nativeGroup;
    private final ExecutorService rankThreads;
    private final Map<Boolean, Plan> plans = new ConcurrentHashMap<>();
    private final Map<String, long[][]> programs = new ConcurrentHashMap<>();
    /** The programs of the most recent packed sequence (each packing has its own, so only one is kept). */
    private final java.util.concurrent.atomic.AtomicReference<PackedPrograms> lastPacked =
            new java.util.concurrent.atomic.AtomicReference<>();
    private final Map<String, long[][]> returnMaps = new ConcurrentHashMap<>();
    private final NativeGroup.RankStats[] lastStats;
    /** Serializes the collective entry points (forwardAll, runRanks). */
    private final ReentrantLock collective = new ReentrantLock(true);
    private final Set<Thread> ownThreads;
    private volatile boolean closed;
    private volatile String failure;

    private SequenceParallelGroup(Builder b) {
        this.topology = b.topology != null ? b.topology
                : Topology.virtualCpu(b.worldSize > 0 ? b.worldSize : TopologyDetector.virtualRanks());
        this.choice = b.choice;
        this.timeoutMs = b.timeoutMs;
        int n = topology.deviceCount();
        this.nativeGroup = new NativeGroup(n, timeoutMs);
        double[][] linkRates = new double[n][n]; // bytes per second, 0: unlimited
        if (b.uniformGbps > 0) {
            for (Link l : topology.links()) {
                linkRates[l.from()][l.to()] = b.uniformGbps * 1e9;
            }
        } else if (b.emulateFabric) {
            for (Link l : topology.links()) {
                linkRates[l.from()][l.to()] = l.gbps() * 1e9 * b.fabricScale;
            }
        }
        for (double[] link : b.links) {
            linkRates[(int) link[0]][(int) link[1]] = link[2] * 1e9;
        }
        for (int from = 0; from < n; from++) {
            for (int to = 0; to < n; to++) {
                if (linkRates[from][to] > 0) {
                    nativeGroup.setLinkRate(from, to, linkRates[from][to]);
                }
            }
        }
        this.lastStats = new NativeGroup.RankStats[n];
        int id = GROUPS.incrementAndGet();
        AtomicInteger next = new AtomicInteger();
        // The factory must not capture this group: idle rank threads end after a while, so a group
        // that was never closed becomes unreachable and its native state is freed (NativeGroup's Cleaner).
        Set<Thread> own = ConcurrentHashMap.newKeySet();
        this.ownThreads = own;
        ThreadPoolExecutor pool = new ThreadPoolExecutor(n, n, IDLE_THREAD_SECONDS, TimeUnit.SECONDS,
                new LinkedBlockingQueue<>(), r -> {
                    Thread t = new Thread(() -> {
                        own.add(Thread.currentThread());
                        try {
                            r.run();
                        } finally {
                            own.remove(Thread.currentThread());
                        }
                    }, "tasp-group" + id + "-rank" + next.getAndIncrement());
                    t.setDaemon(true);
                    return t;
                });
        pool.allowCoreThreadTimeOut(true);
        this.rankThreads = pool;
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
        return choice.strategy();
    }

    /** The validated plan this group runs for the mask. */
    @Override
    public Plan plan(boolean causal) {
        return plans.computeIfAbsent(causal, c -> {
            Plan p = choice.plan(topology, c);
            logger.debug("group plan {} causal={}: {} steps, {} cycles, notes {}", p.strategy(), c,
                    p.steps().size(), p.cycles().size(), p.notes());
            return p;
        });
    }

    /**
     * The native program of each rank for a mask and sequence length; for a head-parallel plan, its inner plan's
     * lifted to world ranks ({@link RankProgram#liftAll}): a hybrid's inner attention runs on this group as one
     * run of every rank, with the emulated rates of the links between the ranks that share heads.
     */
    long[][] programs(boolean causal, long seqLen) {
        return programs.computeIfAbsent(causal + "/" + seqLen, key -> RankProgram.programsFor(plan(causal), seqLen, null));
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
        long[][] lowered = RankProgram.programsFor(plan(causal), seqLen, documents);
        lastPacked.set(new PackedPrograms(causal, documents, lowered));
        return lowered;
    }

    /** The backward's return map of each rank for a mask and sequence length. */
    long[][] returnMaps(boolean causal, long seqLen) {
        return returnMaps.computeIfAbsent(causal + "/" + seqLen, key -> RankProgram.returnMapsFor(plan(causal), seqLen));
    }

    /**
     * Runs every rank's backward on the group's own threads: each rank replays its forward's
     * transfers and runs the flash backward of each block it computed with its global output, LSE
     * and output gradient; key/value gradients go back to their owners. Arguments are per rank, as
     * the forward's shards and results; returns dq, dk, dv by rank.
     */
    public List<NativeGroup.RankGradients> backwardAll(List<NDArray> douts, List<NDArray> qs, List<NDArray> ks,
            List<NDArray> vs, List<NDArray> outs, List<NDArray> lses, boolean causal, Float scale, long seqLen) {
        int n = worldSize();
        for (List<NDArray> l : List.of(douts, qs, ks, vs, outs, lses)) {
            if (l.size() != n) {
                throw new IllegalArgumentException("need one array of each kind per rank (" + n + "), got " + l.size());
            }
        }
        programs(causal, seqLen); // lowered once, before the ranks start
        returnMaps(causal, seqLen);
        List<Future<NativeGroup.RankGradients>> futures = new ArrayList<>();
        for (int r = 0; r < n; r++) {
            final int rank = r;
            futures.add(rankThreads.submit(() -> {
                try {
                    NativeGroup.RankGradients g = runBackward(rank, douts.get(rank), qs.get(rank), ks.get(rank),
                            vs.get(rank), outs.get(rank), lses.get(rank), causal, scale, seqLen);
                    lastStats[rank] = g.stats();
                    return g;
                } catch (IllegalArgumentException e) {
                    nativeGroup.fail("rank " + rank + ": " + e.getMessage());
                    throw e;
                }
            }));
        }
        return collect(futures);
    }

    /** Test hook: makes a rank post no sends, like a peer that hangs. */
    public void makeSilent(int rank) {
        nativeGroup.setSilent(rank, true);
    }

    /** Test hook: makes a rank fail at the start of step {@code step} of its runs (-1: never). */
    public void injectFault(int rank, long step) {
        nativeGroup.setFault(rank, step);
    }

    /** The first failure of this group, or null while it has not failed. */
    public String failure() {
        String f = failure;
        if (f == null && !closed) {
            f = nativeGroup.failure();
        }
        return f;
    }

    /** Throws when the group cannot run: closed, or failed earlier. */
    private void ensureUsable() {
        if (closed) {
            throw new IllegalStateException("this sequence-parallel group is closed");
        }
        String f = failure();
        if (f != null) {
            throw new IllegalStateException("this sequence-parallel group failed earlier and cannot run again; close "
                    + "it and build a new one (its first failure: " + f + ")");
        }
    }

    private void recordFailure(Throwable t) {
        if (failure == null) {
            failure = String.valueOf(t.getMessage() != null ? t.getMessage() : t);
        }
    }

    /**
     * Runs rank {@code rank}'s part of a forward. Every rank must call this, each from its own thread,
     * with its shard (see {@link Sharding}); it returns when the whole group has finished. Any failure,
     * on this rank or a peer, fails the group and every rank throws.
     */
    @Override
    public NativeGroup.RankOutput forwardRank(int rank, NDArray q, NDArray k, NDArray v, boolean causal, Float scale,
            long seqLen, PackedSequence documents) {
        ensureUsable();
        try {
            NativeGroup.RankOutput out = runRank(rank, q, k, v, causal, scale, seqLen, documents);
            lastStats[rank] = out.stats();
            return out;
        } catch (RuntimeException | Error e) {
            rejectRank(rank, String.valueOf(e.getMessage()));
            throw e;
        }
    }

    /** Rank {@code rank}'s part of a backward; every rank calls it from its own thread. */
    @Override
    public NativeGroup.RankGradients backwardRank(int rank, NDArray dout, NDArray q, NDArray k, NDArray v,
            NDArray out, NDArray lse, boolean causal, Float scale, long seqLen) {
        ensureUsable();
        try {
            NativeGroup.RankGradients g = runBackward(rank, dout, q, k, v, out, lse, causal, scale, seqLen);
            lastStats[rank] = g.stats();
            return g;
        } catch (RuntimeException | Error e) {
            rejectRank(rank, String.valueOf(e.getMessage()));
            throw e;
        }
    }

    /** One rank's backward: its program's, or for a head-parallel plan the all-to-alls around its attention's. */
    private NativeGroup.RankGradients runBackward(int rank, NDArray dout, NDArray q, NDArray k, NDArray v, NDArray out,
            NDArray lse, boolean causal, Float scale, long seqLen) {
        Plan plan = plan(causal);
        if (plan.headParallel() == null) {
            return nativeGroup.rankBackward(rank, programs(causal, seqLen)[rank], returnMaps(causal, seqLen)[rank], dout, q, k,
                    v, out, lse, scale);
        }
        boolean hybrid = plan.headParallel().inner().worldSize() > 1;
        return HeadParallelBackward.backward(plan, RankTransport.of(nativeGroup, rank),
                hybrid ? programs(causal, seqLen)[rank] : null, hybrid ? returnMaps(causal, seqLen)[rank] : null, rank, dout,
                q, k, v, out, lse, causal, scale, seqLen);
    }

    /** One rank's forward: its program, or for a head-parallel plan the all-to-alls around its attention. */
    private NativeGroup.RankOutput runRank(int rank, NDArray q, NDArray k, NDArray v, boolean causal, Float scale,
            long seqLen, PackedSequence documents) {
        Plan plan = plan(causal);
        if (plan.headParallel() == null) {
            return nativeGroup.rankForward(rank, programs(causal, seqLen, documents)[rank], q, k, v, scale);
        }
        long[] inner = plan.headParallel().inner().worldSize() > 1 ? programs(causal, seqLen, documents)[rank] : null;
        return HeadParallelForward.forward(plan, RankTransport.of(nativeGroup, rank), inner, rank, q, k, v, causal, scale,
                seqLen, documents);
    }

    /** Fails the group, so that no peer waits for a rank that will not run. */
    @Override
    public void rejectRank(int rank, String why) {
        if (closed) {
            return;
        }
        try {
            nativeGroup.fail("rank " + rank + ": " + why);
        } catch (IllegalStateException closedMeanwhile) {
            // nothing is waiting on a closed group
        }
    }

    /** Each rank's stats of its most recent forward (null for a rank that has not run), by rank. */
    public List<NativeGroup.RankStats> lastStats() {
        return Arrays.asList(lastStats.clone());
    }

    /**
     * Runs every rank on the group's own threads and returns their outputs by rank. If any rank
     * fails, every rank fails (within the timeout) and this throws the first failure. Calls from
     * several threads run one at a time.
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
        return collective(() -> {
            programs(causal, seqLen, documents); // lowered once, before the ranks start
            return rank -> {
                NativeGroup.RankOutput o = runRank(rank, qs.get(rank), ks.get(rank), vs.get(rank), causal, scale, seqLen,
                        documents);
                lastStats[rank] = o.stats();
                return o;
            };
        });
    }

    /** Work for one rank, run inside its {@link RankContext}. */
    @FunctionalInterface
    public interface RankWork<T> {
        T run(int rank) throws Exception;
    }

    /**
     * Runs {@code work} on every rank's thread, each inside a {@link RankContext} for a sequence of
     * {@code seqLen} tokens sharded for the {@code causal} plan's layout, and returns the results by
     * rank. Any rank's failure fails the group; the first failure is thrown. Returns at most about
     * one timeout after the ranks stop making progress: once a rank failed, the others get a short
     * grace; once one finished, the others get one timeout; a rank still running then is interrupted
     * and reported. Calls from several threads run one at a time.
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
        return collective(() -> rank -> RankContext.run(this, rank, seqLen, causal,
                () -> PackedSequence.run(documents, () -> work.run(rank))));
    }

    /** Runs one collective: every rank's work on its thread, one collective at a time. */
    private <T> List<T> collective(Callable<RankWork<T>> prepare) {
        if (ownThreads.contains(Thread.currentThread())) {
            throw new IllegalStateException("a collective of this group was started from one of its own rank "
                    + "threads; inside runRanks use the per-rank API (TaspAttention.forward(group, rank, ...))");
        }
        ensureUsable();
        try {
            collective.lockInterruptibly();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for another collective of this group", e);
        }
        try {
            ensureUsable();
            RankWork<T> work;
            try {
                work = prepare.call();
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
            int n = worldSize();
            List<Future<T>> futures = new ArrayList<>();
            try {
                for (int r = 0; r < n; r++) {
                    final int rank = r;
                    futures.add(rankThreads.submit(() -> {
                        try {
                            return work.run(rank);
                        } catch (Exception | Error e) {
                            rejectRank(rank, String.valueOf(e.getMessage() != null ? e.getMessage() : e));
                            throw e;
                        }
                    }));
                }
            } catch (RejectedExecutionException e) {
                futures.forEach(f -> f.cancel(true));
                throw new IllegalStateException("this sequence-parallel group is closed");
            }
            return collect(futures);
        } finally {
            collective.unlock();
        }
    }

    private <T> List<T> collect(List<Future<T>> futures) {
        int n = futures.size();
        List<T> out = new ArrayList<>(java.util.Collections.nCopies(n, (T) null));
        boolean[] collected = new boolean[n];
        int remaining = n;
        RuntimeException first = null;
        List<Throwable> others = new ArrayList<>();
        long graceNs = TimeUnit.MILLISECONDS.toNanos(Math.min(timeoutMs, 1000));
        long deadline = Long.MAX_VALUE;
        while (remaining > 0) {
            for (int r = 0; r < n; r++) {
                Future<T> f = futures.get(r);
                if (collected[r] || !f.isDone()) {
                    continue;
                }
                collected[r] = true;
                remaining--;
                try {
                    out.set(r, f.get());
                    deadline = Math.min(deadline, System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs));
                } catch (ExecutionException | CancellationException e) {
                    Throwable c = e instanceof ExecutionException ? e.getCause() : e;
                    RuntimeException re = c instanceof RuntimeException
                            ? (RuntimeException) c : new TaspNativeException("rank " + r + " failed", c);
                    if (first == null) {
                        first = re;
                    } else {
                        others.add(re);
                    }
                    deadline = Math.min(deadline, System.nanoTime() + graceNs);
                } catch (InterruptedException e) {
                    throw interrupted(futures, e);
                }
            }
            if (remaining == 0) {
                break;
            }
            if (System.nanoTime() - deadline > 0) {
                // Ranks that did not return: interrupt them and report them; the group is failed.
                for (int r = 0; r < n; r++) {
                    if (collected[r]) {
                        continue;
                    }
                    futures.get(r).cancel(true);
                    String why = "rank " + r + " did not return within " + (first != null
                            ? TimeUnit.NANOSECONDS.toMillis(graceNs) + " ms after rank failures"
                            : timeoutMs + " ms after another rank finished") + "; its thread was interrupted";
                    TaspNativeException e = new TaspNativeException(TaspNativeException.GROUP, why);
                    rejectRank(r, why);
                    if (first == null) {
                        first = e;
                    } else {
                        others.add(e);
                    }
                }
                break;
            }
            Future<T> waitOn = null;
            for (int r = 0; r < n && waitOn == null; r++) {
                if (!collected[r]) {
                    waitOn = futures.get(r);
                }
            }
            try {
                long slice = Math.min(TimeUnit.MILLISECONDS.toNanos(20), Math.max(1, deadline - System.nanoTime()));
                waitOn.get(slice, TimeUnit.NANOSECONDS);
            } catch (TimeoutException | ExecutionException | CancellationException e) {
                // collected in the next pass
            } catch (InterruptedException e) {
                throw interrupted(futures, e);
            }
        }
        if (first != null) {
            others.forEach(first::addSuppressed);
            recordFailure(first);
            throw first;
        }
        return out;
    }

    private IllegalStateException interrupted(List<? extends Future<?>> futures, InterruptedException e) {
        Thread.currentThread().interrupt();
        rejectRank(-1, "the caller was interrupted");
        futures.forEach(f -> f.cancel(true));
        IllegalStateException ex = new IllegalStateException("interrupted while waiting for the ranks", e);
        recordFailure(ex);
        return ex;
    }

    /**
     * Fails ranks still running (they return at once), stops the rank threads and frees the native
     * group. Every later call throws an {@link IllegalStateException} saying the group is closed.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        nativeGroup.close();
        List<Thread> threads = new ArrayList<>(ownThreads);
        rankThreads.shutdownNow();
        try {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.min(timeoutMs, 2000));
            boolean ended = rankThreads.awaitTermination(Math.min(timeoutMs, 2000), TimeUnit.MILLISECONDS);
            for (Thread t : threads) { // the pool says terminated a moment before its threads end
                t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
                ended &= !t.isAlive();
            }
            if (!ended) {
                logger.warn("rank threads of a closed group are still running (user code that ignores interrupts)");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Builds a group. Without a topology: {@code worldSize} virtual CPU ranks, all-to-all; without a
     * world size either, {@code tasp.virtualRanks}, else {@code TASP_VIRTUAL_RANKS}, else 8.
     */
    public static final class Builder {
        private int worldSize; // 0: from TopologyDetector.virtualRanks()
        private Topology topology;
        private PlanChoice choice = PlanChoice.of(Strategy.TASP);
        private long timeoutMs = 60_000;
        private boolean emulateFabric;
        private double fabricScale = 1.0;
        private double uniformGbps;
        private final List<double[]> links = new ArrayList<>();

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
            this.choice = PlanChoice.of(s);
            return this;
        }

        /**
         * A {@link Strategy#HYBRID} of this Ulysses degree (ranks per all-to-all group; it must divide the world
         * size and lie in [2, n)) with {@code inner} over the n/degree ranks of each head subset. Sets the
         * strategy to HYBRID. Without it, HYBRID takes the degree the cost model predicts fastest.
         */
        public Builder hybrid(int degree, Strategy inner) {
            this.choice = PlanChoice.hybrid(degree, inner);
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

        /**
         * Limits the link from rank {@code from} to rank {@code to} of the in-process transport to
         * {@code gbps} GB/s (after {@link #emulateFabric} or {@link #emulateLinks}, which it overrides
         * for that link). Each transfer arrives when its own link's time has passed.
         */
        public Builder emulateLink(int from, int to, double gbps) {
            if (from < 0 || to < 0 || from == to) {
                throw new IllegalArgumentException("a link joins two different ranks, got " + from + " -> " + to);
            }
            if (!(gbps > 0)) {
                throw new IllegalArgumentException("link rate must be positive, got " + gbps);
            }
            links.add(new double[] {from, to, gbps});
            return this;
        }

        public SequenceParallelGroup build() {
            return new SequenceParallelGroup(this);
        }
    }
}
