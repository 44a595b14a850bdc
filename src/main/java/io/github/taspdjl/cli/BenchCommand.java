package io.github.taspdjl.cli;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.FlashAttention;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Planner;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code tasp bench}: runs the distributed forward on virtual ranks in this process over an emulated
 * all-to-all fabric (every link limited to the same rate, transfers on different links in
 * parallel) and reports, per strategy, the median and spread over several repetitions of the measured
 * communication time, compute time and total, then which of ring and TASP was faster and whether the
 * spreads leave that in doubt.
 *
 * <p>Ulysses and hybrids run their all-to-alls over the same emulated links (no overlap with attention);
 * their comm is the sum over their all-to-alls (and, for hybrids, the inner plan's sends).
 *
 * <p>Repetitions are interleaved (ring, zigzag, tasp, direct, ulysses, ring, ...) so that a change in the machine's
 * load during the run falls on every strategy alike; each strategy has its own group, warmed up once
 * before the timed runs. Progress with an estimate of the time left goes to standard error.
 *
 * <p>The default link rate is low (0.01 GB/s) on purpose: on a 2-core machine the copies of eight
 * virtual ranks compete with their attention for the same cores, and the emulated link time has to
 * dominate that CPU cost for the measurement to show the fabric rather than the scheduler.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure ring, zigzag, TASP, direct and Ulysses (and any other strategy) on virtual ranks over an emulated fabric: medians and spreads of"
                + " several interleaved repetitions.")
public final class BenchCommand implements Callable<Integer> {

    @Option(names = "--gpus", defaultValue = "8", description = "ranks (virtual, in process) (default ${DEFAULT-VALUE})")
    int ranks;

    @Option(names = "--seq", defaultValue = "4096", description = "sequence length (default ${DEFAULT-VALUE})")
    long seq;

    @Option(names = "--heads", defaultValue = "8", description = "query heads (default ${DEFAULT-VALUE})")
    int heads;

    @Option(names = "--kv-heads", defaultValue = "8", description = "key/value heads (default ${DEFAULT-VALUE})")
    int kvHeads;

    @Option(names = "--head-dim", defaultValue = "64", description = "head dimension (default ${DEFAULT-VALUE})")
    int headDim;

    @Option(names = "--batch", defaultValue = "1", description = "batch size (default ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--causal", description = "causal mask (zigzag layouts)")
    boolean causal;

    @Option(names = "--link-gbps", defaultValue = "0.01",
            description = "emulated rate of every link, GB/s per direction; 0 for no emulation (default ${DEFAULT-VALUE})")
    double linkGbps;

    @Option(names = "--single", description = "also time single-device flash attention on the whole sequence (one device,"
            + " same cores), interleaved with the others, and print each strategy's total against it")
    boolean single;

    @Option(names = "--repeats", defaultValue = "5",
            description = "timed runs per strategy, interleaved; the median and spread are reported (default ${DEFAULT-VALUE})")
    int repeats;

    @Option(names = "--backward", description = "time forward plus backward (the distributed backward replays the"
            + " forward's transfers); comm, compute and wait are then the backward's")
    boolean backward;

    @Option(names = "--strategies", split = ",", defaultValue = "ring,zigzag,tasp,direct,ulysses",
            description = "strategies to run (default ${DEFAULT-VALUE})")
    List<String> strategies;

    /** What one strategy measured, one entry per timed repetition. */
    static final class Series {
        final Strategy requested; // null: one device
        SequenceParallelGroup group;
        Plan plan;
        final List<double[]> runs = new ArrayList<>(); // {comm, compute, wait, total, process CPU} ms

        Series(Strategy requested) {
            this.requested = requested;
        }

        double[] column(int i) {
            return runs.stream().mapToDouble(r -> r[i]).toArray();
        }

        String name() {
            return plan == null ? "one device" : Planner.label(requested, plan);
        }

        /** Cycles and steps of the plan; for Ulysses and hybrids, those of the inner plan plus the two all-to-alls. */
        int cycles() {
            return plan.headParallel() != null ? plan.headParallel().inner().cycles().size() : plan.cycles().size();
        }

        int steps() {
            return plan.headParallel() != null ? plan.headParallel().inner().steps().size() + 2 : plan.steps().size();
        }
    }

    @Override
    public Integer call() {
        if (ranks < 2) {
            throw new IllegalArgumentException("--gpus must be at least 2 to compare strategies, got " + ranks);
        }
        if (repeats < 1) {
            throw new IllegalArgumentException("--repeats must be at least 1, got " + repeats);
        }
        if (!(linkGbps >= 0)) {
            throw new IllegalArgumentException("--link-gbps must be 0 (no emulation) or positive, got " + linkGbps);
        }
        List<Series> series = new ArrayList<>();
        if (single) {
            series.add(new Series(null));
        }
        for (String name : strategies) {
            series.add(new Series(Strategy.fromName(name)));
        }
        PrintStream out = System.out;
        Engine engine = Engine.getEngine("PyTorch");
        engine.setRandomSeed(1);
        out.printf(Locale.ROOT, "%d virtual ranks in process, %s; q (%d, %d, %d, %d), k/v %d heads, float32, %s;"
                + " %d interleaved repetitions%n", ranks, linkGbps > 0 ? String.format(Locale.ROOT,
                        "emulated all-to-all fabric at %.3f GB/s per link and direction", linkGbps) : "no link emulation",
                batch, heads, seq, headDim, kvHeads, causal ? "causal" : "full mask", repeats);
        Progress progress = new Progress(System.err, series.size() * (repeats + 1));
        double loadBefore = loadAverage();
        try (NDManager m = NDManager.newBaseManager("PyTorch")) {
            NDArray q = m.randomNormal(new Shape(batch, heads, seq, headDim));
            NDArray k = m.randomNormal(new Shape(batch, kvHeads, seq, headDim));
            NDArray v = m.randomNormal(new Shape(batch, kvHeads, seq, headDim));
            for (Series s : List.copyOf(series)) {
                if (s.requested != null) {
                    SequenceParallelGroup.Builder b = SequenceParallelGroup.builder().worldSize(ranks).strategy(s.requested)
                            .timeout(600_000);
                    s.group = (linkGbps > 0 ? b.emulateLinks(linkGbps) : b).build();
                    s.plan = s.group.plan(causal);
                    if (s.plan.headParallel() != null && !s.plan.headParallel().applies(heads, kvHeads)) {
                        out.printf("skipped %s: %d query heads do not divide among its Ulysses degree %d (%s)%n", s.name(),
                                heads, s.plan.headParallel().degree(), s.plan.headParallel().constraint());
                        s.group.close();
                        series.remove(s);
                        progress.skip(repeats + 1);
                        continue;
                    }
                }
                progress.start(s.name() + " warm-up");
                run(s, q, k, v);
                progress.done();
            }
            for (int r = 0; r < repeats; r++) {
                for (Series s : series) {
                    progress.start(s.name() + " " + (r + 1) + "/" + repeats);
                    s.runs.add(run(s, q, k, v));
                    progress.done();
                }
            }
        } finally {
            for (Series s : series) {
                if (s.group != null) {
                    s.group.close();
                }
            }
            progress.finish();
        }
        out.printf(Locale.ROOT, "%-14s %6s %5s %21s %21s %21s %21s%n", "strategy", "cycles", "steps", "comm ms", "compute ms",
                "wait ms", "total ms");
        for (Series s : series) {
            if (s.plan == null) {
                out.printf(Locale.ROOT, "%-14s %6s %5s %21s %21s %21s %21s%n", s.name(), "-", "-", "-", cell(s.column(1)), "-",
                        cell(s.column(3)));
            } else {
                out.printf(Locale.ROOT, "%-14s %6d %5d %21s %21s %21s %21s%n", s.name(), s.cycles(),
                        s.steps(), cell(s.column(0)), cell(s.column(1)), cell(s.column(2)), cell(s.column(3)));
            }
        }
        out.println("each cell: median [min-max] over the repetitions. comm: mean per rank of the time its sends took (copies"
                + " plus emulated link time); compute: attention and merge; wait: waiting on peers; total: wall time of the "
                + (backward ? "forward plus backward (comm, compute, wait: the backward's)." : "forward."));
        if (single) {
            double one = median(series.get(0).column(3));
            double oneCpu = median(series.get(0).column(4));
            for (Series s : series.subList(1, series.size())) {
                // The process CPU clock ticks in milliseconds or coarser: tiny runs read 0.
                String cpuRatio = oneCpu > 0 ? String.format(Locale.ROOT, "%.2fx", median(s.column(4)) / oneCpu)
                        : "not measurable";
                out.printf(Locale.ROOT, "%s on %d ranks / one device = %.2fx (median totals; the same %d cores run both);"
                        + " process CPU time %s (median %.1f against %.1f ms)%n", s.name(), ranks,
                        median(s.column(3)) / one, Runtime.getRuntime().availableProcessors(), cpuRatio,
                        median(s.column(4)), oneCpu);
            }
            // Wall time on shared cores depends on what else runs: other processes take a share of the cores
            // that grows with their thread count, so say how busy the machine was.
            out.printf(Locale.ROOT, "load average (1 min) %.1f before, %.1f after; process CPU time counts only this"
                    + " process, so it varies less with other load than wall time%n", loadBefore, loadAverage());
        }
        Series ring = find(series, Strategy.RING, Strategy.ZIGZAG_RING);
        Series tasp = find(series, Strategy.TASP, Strategy.TASP_CAUSAL);
        if (ring != null && tasp != null) {
            out.printf(Locale.ROOT, "%scomm ratio tasp/ring = %.3f (medians; ideal 1/%d = %.3f)%n", backward ? "backward " : "",
                    median(tasp.column(0)) / median(ring.column(0)), ranks - 1, 1.0 / (ranks - 1));
            out.println(verdict(ring.plan.strategy().cliName(), ring.column(3), tasp.plan.strategy().cliName(), tasp.column(3)));
        }
        return 0;
    }

    /**
     * Which of two strategies was faster by median total time, and whether their ranges overlap (then the
     * order may change from one run of the bench to the next).
     */
    static String verdict(String aName, double[] a, String bName, double[] b) {
        double ma = median(a);
        double mb = median(b);
        boolean aFaster = ma < mb;
        String faster = aFaster ? aName : bName;
        String slower = aFaster ? bName : aName;
        double[] f = aFaster ? a : b;
        double[] s = aFaster ? b : a;
        boolean separate = max(f) < min(s);
        return String.format(Locale.ROOT, "faster: %s (median total %.1f ms against %s's %.1f ms, %.2fx)%s", faster,
                Math.min(ma, mb), slower, Math.max(ma, mb), Math.max(ma, mb) / Math.min(ma, mb),
                separate ? "; every repetition of " + faster + " beat every repetition of " + slower
                        : "; the ranges overlap, so another run may order them differently");
    }

    /**
     * One timed forward: {comm, compute, wait, total, process CPU} ms (one device: compute = total, no comm or
     * wait).
     */
    private double[] run(Series s, NDArray q, NDArray k, NDArray v) {
        long c0 = processCpuNanos();
        long t0 = System.nanoTime();
        if (s.group == null) {
            FlashAttention.Result r = FlashAttention.forward(q, k, v, causal);
            double total = (System.nanoTime() - t0) / 1e6;
            double cpu = (processCpuNanos() - c0) / 1e6;
            r.output().close();
            r.lse().close();
            return new double[] {0, total, 0, total, cpu};
        }
        TaspAttention.Result r = TaspAttention.forward(s.group, q, k, v, causal, null);
        List<NativeGroup.RankStats> stats = r.stats();
        if (backward) {
            try (NDArray ones = r.output().onesLike()) {
                TaspAttention.Gradients g = TaspAttention.backward(s.group, ones, q, k, v, r.output(), r.lse(), causal, null);
                stats = g.stats();
                g.dq().close();
                g.dk().close();
                g.dv().close();
            }
        }
        double total = (System.nanoTime() - t0) / 1e6;
        double cpu = (processCpuNanos() - c0) / 1e6;
        r.output().close();
        r.lse().close();
        return new double[] {mean(stats, NativeGroup.RankStats::commMs), mean(stats, NativeGroup.RankStats::computeMs),
            mean(stats, NativeGroup.RankStats::waitMs), total, cpu};
    }

    /** CPU time of every thread of this process so far (-1 where the JVM cannot say). */
    private static long processCpuNanos() {
        java.lang.management.OperatingSystemMXBean os = ManagementFactory.getOperatingSystemMXBean();
        return os instanceof com.sun.management.OperatingSystemMXBean sun ? sun.getProcessCpuTime() : -1;
    }

    private static double loadAverage() {
        return ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
    }

    private static Series find(List<Series> series, Strategy... any) {
        for (Series s : series) {
            for (Strategy st : any) {
                if (s.plan != null && s.plan.strategy() == st) {
                    return s;
                }
            }
        }
        return null;
    }

    static String cell(double[] values) {
        return String.format(Locale.ROOT, "%.1f [%.1f-%.1f]", median(values), min(values), max(values));
    }

    static double median(double[] values) {
        double[] v = values.clone();
        Arrays.sort(v);
        int n = v.length;
        return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }

    private static double min(double[] v) {
        return Arrays.stream(v).min().orElse(Double.NaN);
    }

    private static double max(double[] v) {
        return Arrays.stream(v).max().orElse(Double.NaN);
    }

    private static double mean(List<NativeGroup.RankStats> stats,
            java.util.function.ToDoubleFunction<NativeGroup.RankStats> f) {
        return stats.stream().mapToDouble(f).average().orElse(0);
    }

    /**
     * One progress line, rewritten in place: runs done, what runs now, and the time left estimated from the
     * mean time of the runs so far.
     */
    static final class Progress {
        private final PrintStream err;
        private int total;
        private final long started = System.nanoTime();
        private int done;

        Progress(PrintStream err, int total) {
            this.err = err;
            this.total = total;
        }

        void start(String what) {
            String left = done == 0 ? "estimating time left"
                    : String.format(Locale.ROOT, "about %.0f s left", (System.nanoTime() - started) / 1e9 / done * (total - done));
            err.printf(Locale.ROOT, "\rbench: run %d of %d (%s), %s   ", done + 1, total, what, left);
            err.flush();
        }

        void done() {
            done++;
        }

        /** Runs that will not happen (a strategy left out). */
        void skip(int runs) {
            total -= runs;
        }

        void finish() {
            err.printf(Locale.ROOT, "\rbench: %d runs in %.1f s%-40s%n", done, (System.nanoTime() - started) / 1e9, "");
            err.flush();
        }
    }
}
