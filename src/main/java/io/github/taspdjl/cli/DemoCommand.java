package io.github.taspdjl.cli;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.attention.SequenceParallelBlock;
import io.github.taspdjl.attention.TaspTransformerLayer;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.plan.HeadParallel;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.plan.decompose.HamiltonianCycle;
import io.github.taspdjl.runtime.LaunchEnvironment;
import io.github.taspdjl.runtime.LocalGpuGroup;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.runtime.Sharding;
import io.github.taspdjl.topology.Topology;
import io.github.taspdjl.topology.TopologyDetector;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code tasp demo}, the main job: a small causal transformer (TaspTransformerLayer blocks) over a
 * long sequence, run on one device and then on N sequence-parallel ranks (each rank runs the whole
 * model on its shard of the sequence; attention goes over the TASP plan), by hand and in one call
 * through {@link SequenceParallelBlock}, and checked against each other. Prints the topology, the
 * plan, a per-step timeline of the last attention call, the largest error, the times and the memory
 * per rank against DJL's own attention block. Started by a launcher (torchrun, srun, mpirun, {@code
 * tasp launch}), it runs as one rank of a group of processes instead ({@link DemoRank}).
 */
@Command(name = "demo", mixinStandardHelpOptions = true, versionProvider = VersionCommand.Provider.class,
         description = "Run a small long-context transformer on one device and over TASP ranks, and compare.")
public final class DemoCommand implements Callable<Integer> {

    @Option(names = "--seq", defaultValue = "16384", description = "sequence length (default ${DEFAULT-VALUE})")
    int seq;

    @Option(names = "--ranks", description = "sequence-parallel ranks (default: the detected GPUs, or 8 virtual CPU ranks)")
    Integer ranks;

    @Option(names = "--layers", defaultValue = "2", description = "transformer layers (default ${DEFAULT-VALUE})")
    int layers;

    @Option(names = "--embedding", defaultValue = "64", description = "embedding size (default ${DEFAULT-VALUE})")
    int embedding;

    @Option(names = "--heads", defaultValue = "4", description = "attention heads (default ${DEFAULT-VALUE})")
    int heads;

    @Option(names = "--strategy", defaultValue = "tasp", description = "plan strategy (default ${DEFAULT-VALUE})")
    String strategy;

    @Option(names = "--full-mask", description = "bidirectional attention instead of causal")
    boolean fullMask;

    @Override
    public Integer call() throws Exception {
        checkOptions();
        Optional<LaunchEnvironment> launched = LaunchEnvironment.detect();
        if (launched.isPresent() && ranks == null) {
            return new DemoRank(this, launched.get()).call();
        }
        boolean causal = !fullMask;
        Engine engine = Engine.getEngine("PyTorch");
        engine.setRandomSeed(2026);
        Device device = engine.defaultDevice();
        TopologyDetector.Detection detection = TopologyDetector.standard().detect();
        // --ranks, else the detected GPUs, else tasp.virtualRanks / TASP_VIRTUAL_RANKS (default 8)
        int n = ranks != null ? ranks : detection.topology().deviceCount();
        Topology topology = detection.gpuFound() && detection.topology().deviceCount() == n
                ? detection.topology() : Topology.virtualCpu(n);
        step(1, "topology");
        if (detection.gpuFound()) {
            System.out.printf(Locale.ROOT, "  %d GPU(s) detected (%s, %s); DJL runs on %s%n",
                    detection.topology().deviceCount(), detection.topology().fabric(), detection.topology().source(),
                    device);
        } else {
            System.out.println("  no GPU found: " + n + " virtual CPU ranks in this JVM, all-to-all in-process links");
        }
        System.out.println("  " + topology);

        try (NDManager manager = NDManager.newBaseManager(device, "PyTorch");
                SequenceParallelGroup group = SequenceParallelGroup.builder().topology(topology)
                        .strategy(Strategy.fromName(strategy)).timeout(600_000).build();
                LocalGpuGroup gpus = localGpus(detection, device, topology, Strategy.fromName(strategy))) {
            Plan plan = group.plan(causal);
            if (seq < plan.layout().minimumLength()) {
                throw new IllegalArgumentException("--seq " + seq + " is shorter than the " + plan.layout().minimumLength()
                        + " tokens a " + plan.strategy().cliName() + " plan over " + n + " ranks needs");
            }
            step(2, "plan");
            System.out.printf(Locale.ROOT, "  %s over %d ranks, %s layout, %s%n", plan.strategy().cliName(),
                    n, plan.layout().kind().name().toLowerCase(Locale.ROOT), stepsText(plan));
            int c = 0;
            for (HamiltonianCycle cycle : plan.cycles()) {
                System.out.println("  cycle " + c++ + ": " + cycleText(cycle));
            }
            for (String note : plan.notes()) {
                System.out.println("  note: " + note);
            }

            SequentialBlock model = model(manager, causal);
            NDArray x = manager.randomNormal(new Shape(1, seq, embedding));
            ParameterStore ps = new ParameterStore(manager, false);

            step(3, String.format(Locale.ROOT, "%d-layer transformer (E=%d, %d heads) over %d tokens on one device",
                    layers, embedding, heads, seq));
            long rss0 = ProcessMemory.peakBytes();
            long t0 = System.nanoTime();
            NDArray single = model.forward(ps, new NDList(x), false).singletonOrThrow();
            single.toFloatArray(); // wait for the result
            double singleMs = (System.nanoTime() - t0) / 1e6;
            System.out.printf(Locale.ROOT, "  done in %.1f s%n", singleMs / 1e3);

            step(4, "the same model on " + n + " ranks, each on its shard of the sequence: by hand (runRanks), then "
                    + "in one call (SequenceParallelBlock)");
            List<NDArray> shards = Sharding.shardAll(x, plan.layout(), Sharding.TOKENS_AXIS);
            long t1 = System.nanoTime();
            List<NDArray> outs = gpus != null ? gpus.runRanks(seq, causal, rank -> {
                // Rank r on GPU r: its shard and its own copy of the weights there.
                NDArray shard = shards.get(rank).toDevice(gpus.device(rank), true);
                NDArray out = model.forward(new ParameterStore(manager, false), new NDList(shard), false)
                        .singletonOrThrow();
                out.toFloatArray();
                System.out.printf(Locale.ROOT, "  GPU rank %d finished after %.1f s%n", rank, (System.nanoTime() - t1) / 1e9);
                return out.toDevice(device, true);
            }) : group.runRanks(seq, causal, rank -> {
                NDArray out = model.forward(ps, new NDList(shards.get(rank)), false).singletonOrThrow();
                out.toFloatArray();
                System.out.printf(Locale.ROOT, "  rank %d finished after %.1f s%n", rank, (System.nanoTime() - t1) / 1e9);
                return out;
            });
            double taspMs = (System.nanoTime() - t1) / 1e6;
            NDArray gathered = Sharding.gather(outs, plan.layout(), seq, Sharding.TOKENS_AXIS);
            double maxError = gathered.sub(single).abs().max().getFloat();
            System.out.printf(Locale.ROOT, "  by hand: %.1f s; now in one call (expect about as long)%n", taspMs / 1e3);
            System.out.flush();
            SequenceParallelBlock oneCall = SequenceParallelBlock.wrap(model, group, causal);
            long t2 = System.nanoTime();
            NDArray whole = oneCall.forward(ps, new NDList(x), false).singletonOrThrow();
            whole.toFloatArray();
            double oneCallMs = (System.nanoTime() - t2) / 1e6;
            maxError = Math.max(maxError, whole.sub(single).abs().max().getFloat());
            System.out.printf(Locale.ROOT, "  one call: %.1f s%n", oneCallMs / 1e3);

            step(5, "results");
            List<NativeGroup.RankStats> stats = gpus != null ? List.of() : group.lastStats();
            printTimeline(stats);
            long djlBytes = 2L * heads * seq * (long) seq * Float.BYTES; // scores and probabilities, fp32
            long perRank = stats.stream().mapToLong(NativeGroup.RankStats::bufferBytes).max().orElse(0);
            System.out.printf(Locale.ROOT, "time: one device %.1f s, %d ranks by hand %.1f s, in one call %.1f s "
                    + "(one call / by hand = %.2f; ranks share this machine's cores)%n", singleMs / 1e3, n, taspMs / 1e3,
                    oneCallMs / 1e3, oneCallMs / taspMs);
            if (plan.headParallel() == null) {
                System.out.printf(Locale.ROOT, "memory per attention call: DJL's ScaledDotProductAttentionBlock would "
                        + "materialize %s of scores and probabilities; TASP's executor holds %s per rank%n",
                        human(djlBytes), human(perRank));
            } else {
                System.out.printf(Locale.ROOT, "memory per attention call: DJL's ScaledDotProductAttentionBlock would "
                        + "materialize %s of scores and probabilities; each %s rank runs flash attention on its heads "
                        + "(no score matrix)%n", human(djlBytes), plan.strategy().cliName());
            }
            long rss = ProcessMemory.peakBytes();
            if (rss > 0) {
                System.out.printf(Locale.ROOT, "process peak resident memory: %s (before the runs: %s)%n", human(rss),
                        human(rss0));
            }
            System.out.printf(Locale.ROOT, "max error = %.3e%n", maxError);
            return maxError <= 1e-4 ? 0 : 1;
        }
    }

    /**
     * On a machine whose GPUs DJL runs on, one JVM over all of them (one thread and one NCCL rank per
     * GPU); null, with the reason printed, where that cannot be had: then the ranks are virtual ranks
     * of this JVM on one device.
     */
    private static LocalGpuGroup localGpus(TopologyDetector.Detection detection, Device device, Topology topology,
            Strategy strategy) {
        if (!detection.gpuFound() || !device.isGpu()) {
            return null;
        }
        if (topology != detection.topology()) {
            System.out.println("  --ranks differs from the GPU count: virtual ranks on " + device);
            return null;
        }
        try {
            LocalGpuGroup g = LocalGpuGroup.create(topology, strategy, 600_000);
            System.out.println("  one JVM over " + g.worldSize() + " GPU(s): one thread and one NCCL rank per GPU");
            return g;
        } catch (RuntimeException e) {
            System.out.println("  NCCL ranks unavailable (" + e.getMessage() + "): virtual ranks on " + device);
            return null;
        }
    }

    /** The demo's model, initialized: {@code layers} causal (or bidirectional) transformer layers. */
    SequentialBlock model(NDManager manager, boolean causal) {
        SequentialBlock model = new SequentialBlock();
        for (int i = 0; i < layers; i++) {
            model.add(TaspTransformerLayer.builder().setEmbeddingSize(embedding).setHeadCount(heads)
                    .optCausal(causal).build());
        }
        model.initialize(manager, DataType.FLOAT32, new Shape(1, seq, embedding));
        return model;
    }

    /** Every option checked before any work, each error naming its option. */
    private void checkOptions() {
        if (ranks != null && ranks < 1) {
            throw new IllegalArgumentException("--ranks must be at least 1, got " + ranks);
        }
        if (seq < 1) {
            throw new IllegalArgumentException("--seq must be at least 1, got " + seq);
        }
        if (layers < 1) {
            throw new IllegalArgumentException("--layers must be at least 1, got " + layers);
        }
        if (heads < 1) {
            throw new IllegalArgumentException("--heads must be at least 1, got " + heads);
        }
        if (embedding < 1 || embedding % heads != 0) {
            throw new IllegalArgumentException("--embedding must be a positive multiple of --heads (" + heads
                    + "), got " + embedding);
        }
        Strategy.fromName(strategy);
    }

    private static void step(int i, String what) {
        System.out.printf(Locale.ROOT, "[%d/5] %s%n", i, what);
        System.out.flush();
    }

    private static String cycleText(HamiltonianCycle cycle) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < cycle.size(); i++) {
            sb.append(cycle.at(i)).append(" -> ");
        }
        return sb.append(cycle.at(0)).toString();
    }

    /**
     * "N steps" of a plan that moves key/value chunks; for Ulysses and hybrids (no steps of their own) the
     * all-to-alls and the inner plan's steps.
     */
    static String stepsText(Plan plan) {
        HeadParallel hp = plan.headParallel();
        if (hp == null) {
            return plan.steps().size() + " steps";
        }
        String exchanges = "all-to-alls over heads among " + hp.degree() + " ranks before and after attention";
        Plan inner = hp.inner();
        return inner.worldSize() == 1 ? exchanges : exchanges + ", between them " + inner.steps().size() + " steps of "
                + inner.strategy().cliName() + " over " + inner.worldSize() + " ranks";
    }

    private static void printTimeline(List<NativeGroup.RankStats> stats) {
        if (stats.stream().filter(s -> s != null).allMatch(s -> s.stepComputeMs().length == 0) && !stats.isEmpty()) {
            // Ulysses and hybrids report totals only (all-to-alls and any inner steps together)
            System.out.printf(Locale.ROOT, "last attention call (ms, mean over ranks, totals; head-parallel plans have no "
                    + "per-step timeline): compute %.2f, comm %.2f, wait %.2f%n", mean(stats, NativeGroup.RankStats::computeMs), mean(stats, NativeGroup.RankStats::commMs),
                    mean(stats, NativeGroup.RankStats::waitMs));
            return;
        }
        System.out.println("timeline of the last attention call (ms, mean over ranks; comm runs beside compute):");
        System.out.printf(Locale.ROOT, "  %-6s %10s %10s %10s%n", "step", "compute", "comm", "wait");
        int steps = stats.stream().filter(s -> s != null).mapToInt(s -> s.stepComputeMs().length).max().orElse(0);
        for (int t = 0; t < steps; t++) {
            final int step = t;
            double c = stats.stream().filter(s -> s != null).mapToDouble(s -> s.stepComputeMs()[step]).average().orElse(0);
            double m = stats.stream().filter(s -> s != null).mapToDouble(s -> s.stepCommMs()[step]).average().orElse(0);
            double w = stats.stream().filter(s -> s != null).mapToDouble(s -> s.stepWaitMs()[step]).average().orElse(0);
            System.out.printf(Locale.ROOT, "  %-6d %10.2f %10.2f %10.2f%n", t, c, m, w);
        }
    }

    private static double mean(List<NativeGroup.RankStats> stats,
            java.util.function.ToDoubleFunction<NativeGroup.RankStats> f) {
        return stats.stream().filter(s -> s != null).mapToDouble(f).average().orElse(0);
    }

    static String human(long bytes) {
        if (bytes >= 1L << 30) {
            return String.format(Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
        }
        return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }
}
