package io.github.taspdjl.cli;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code tasp bench}: runs the distributed forward on virtual ranks in this process over an emulated
 * all-to-all fabric (every link limited to the same rate, transfers on different links in
 * parallel) and reports, per strategy, the measured communication time, compute time and total,
 * and last the ratio of TASP's communication time to the ring's, measured in the same run.
 *
 * <p>The default link rate is low (0.02 GB/s) on purpose: on a 2-core machine the copies of eight
 * virtual ranks compete with their attention for the same cores, and the emulated link time has to
 * dominate that CPU cost for the measurement to show the fabric rather than the scheduler.
 */
@Command(name = "bench", description = "Measure ring, zigzag and TASP on virtual ranks over an emulated fabric.")
public final class BenchCommand implements Callable<Integer> {

    @Option(names = "--gpus", defaultValue = "8", description = "ranks (virtual, in process) (default ${DEFAULT-VALUE})")
    int ranks;

    @Option(names = "--seq", defaultValue = "8192", description = "sequence length (default ${DEFAULT-VALUE})")
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

    @Option(names = "--link-gbps", defaultValue = "0.02",
            description = "emulated rate of every link, GB/s per direction (default ${DEFAULT-VALUE})")
    double linkGbps;

    @Option(names = "--repeats", defaultValue = "2", description = "timed runs per strategy (default ${DEFAULT-VALUE})")
    int repeats;

    @Option(names = "--backward", description = "time forward plus backward (the distributed backward replays the"
            + " forward's transfers); comm is then the backward's")
    boolean backward;

    @Option(names = "--strategies", split = ",", defaultValue = "ring,zigzag,tasp,direct",
            description = "strategies to run (default ${DEFAULT-VALUE})")
    List<String> strategies;

    @Override
    public Integer call() {
        if (ranks < 2) {
            throw new IllegalArgumentException("--gpus must be at least 2 to compare strategies, got " + ranks);
        }
        if (repeats < 1) {
            throw new IllegalArgumentException("--repeats must be at least 1, got " + repeats);
        }
        Engine engine = Engine.getEngine("PyTorch");
        engine.setRandomSeed(1);
        System.out.printf(Locale.ROOT, "%d virtual ranks in process, emulated all-to-all fabric at %.2f GB/s per link"
                + " and direction; q (%d, %d, %d, %d), k/v %d heads, float32, %s%n", ranks, linkGbps, batch, heads,
                seq, headDim, kvHeads, causal ? "causal" : "full mask");
        System.out.printf(Locale.ROOT, "%-12s %7s %7s %12s %12s %12s %12s%n", "strategy", "cycles", "steps",
                "comm ms", "compute ms", "wait ms", "total ms");
        Map<Strategy, double[]> results = new LinkedHashMap<>();
        try (NDManager m = NDManager.newBaseManager("PyTorch")) {
            NDArray q = m.randomNormal(new Shape(batch, heads, seq, headDim));
            NDArray k = m.randomNormal(new Shape(batch, kvHeads, seq, headDim));
            NDArray v = m.randomNormal(new Shape(batch, kvHeads, seq, headDim));
            for (String name : strategies) {
                Strategy s = Strategy.fromName(name);
                try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(ranks).strategy(s)
                        .emulateLinks(linkGbps).timeout(600_000).build()) {
                    Plan plan = group.plan(causal);
                    run(group, q, k, v); // warm-up
                    double[] sums = new double[4];
                    for (int i = 0; i < repeats; i++) {
                        long t0 = System.nanoTime();
                        List<NativeGroup.RankStats> stats = run(group, q, k, v);
                        sums[3] += (System.nanoTime() - t0) / 1e6;
                        sums[0] += mean(stats, NativeGroup.RankStats::commMs);
                        sums[1] += mean(stats, NativeGroup.RankStats::computeMs);
                        sums[2] += mean(stats, NativeGroup.RankStats::waitMs);
                    }
                    double[] avg = new double[4];
                    for (int i = 0; i < 4; i++) {
                        avg[i] = sums[i] / repeats;
                    }
                    results.put(plan.strategy(), avg);
                    System.out.printf(Locale.ROOT, "%-12s %7d %7d %12.2f %12.2f %12.2f %12.2f%n",
                            plan.strategy().cliName(), plan.cycles().size(), plan.steps().size(), avg[0], avg[1],
                            avg[2], avg[3]);
                }
            }
        }
        System.out.println("comm: mean per rank of the time its sends took (copies plus emulated link time);"
                + " compute: attention and merge; wait: waiting on peers; total: wall time of the "
                + (backward ? "forward plus backward (comm, compute, wait: the backward's)." : "forward."));
        double[] ring = results.getOrDefault(Strategy.RING, results.get(Strategy.ZIGZAG_RING));
        double[] tasp = results.getOrDefault(Strategy.TASP, results.get(Strategy.TASP_CAUSAL));
        if (ring != null && tasp != null) {
            System.out.printf(Locale.ROOT, "%scomm ratio tasp/ring = %.3f (ideal 1/%d = %.3f)%n",
                    backward ? "backward " : "", tasp[0] / ring[0], ranks - 1, 1.0 / (ranks - 1));
        }
        return 0;
    }

    /** One timed run: the forward, or the forward then the backward (whose stats are returned). */
    private List<NativeGroup.RankStats> run(SequenceParallelGroup group, NDArray q, NDArray k, NDArray v) {
        TaspAttention.Result f = TaspAttention.forward(group, q, k, v, causal, null);
        if (!backward) {
            return f.stats();
        }
        return TaspAttention.backward(group, f.output().onesLike(), q, k, v, f.output(), f.lse(), causal, null)
                .stats();
    }

    private static double mean(List<NativeGroup.RankStats> stats,
            java.util.function.ToDoubleFunction<NativeGroup.RankStats> f) {
        return stats.stream().mapToDouble(f).average().orElse(0);
    }
}
