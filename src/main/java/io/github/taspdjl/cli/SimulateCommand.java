package io.github.taspdjl.cli;

import io.github.taspdjl.plan.CostModel;
import io.github.taspdjl.plan.ProblemSize;
import io.github.taspdjl.plan.Simulation;
import io.github.taspdjl.plan.ReferenceGrid;
import io.github.taspdjl.topology.BandwidthTable;
import io.github.taspdjl.topology.Topology;
import io.github.taspdjl.topology.TopologyJson;
import io.github.taspdjl.topology.TopologyPresets;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code tasp simulate}: predicts with the {@link CostModel} the time of each candidate plan (ring or
 * zigzag ring, TASP, direct, hierarchical TASP on several nodes) for a topology and problem size, prints
 * the speedups over the baseline (the ring; the zigzag ring for causal masks), says when the problem is
 * compute-bound (then every strategy ties), and optionally charts speedup against sequence length. With
 * {@code --paper-grid} it runs the TASP paper's reference-harness grid on the single-node presets instead
 * and prints the average and largest speedups next to the paper's.
 */
@Command(name = "simulate", mixinStandardHelpOptions = true,
        description = "Predict each strategy's attention time on a topology and print the speedups over the ring.")
public final class SimulateCommand implements Callable<Integer> {

    @Spec CommandSpec spec;

    static final class Source {
        @Option(names = "--topology", description = "Topology JSON file (see docs/TOPOLOGY.md).")
        Path file;

        @Option(names = "--preset", description = "Named topology: ${COMPLETION-CANDIDATES}.", completionCandidates = PresetNames.class)
        String preset;
    }

    @ArgGroup(exclusive = true, multiplicity = "0..1")
    Source source;

    @Option(names = "--seq", description = "Sequence length in tokens (whole sequence); required unless --paper-grid.")
    Long seq;

    @Option(names = "--paper-grid", description = "Run the TASP paper's reference-harness grid (8 GPUs, bf16, head dim 64,"
            + " 4/12/20 heads, seq k*3360, batch*seq <= 10M, full mask, forward, vs ring) on every single-node preset"
            + " (or the given topology) as the harness runs it (see --harness), and print average and"
            + " largest speedups next to the paper's.")
    boolean paperGrid;

    @Option(names = "--harness", description = "Predict as the paper's reference harness runs (host waits for every step's"
            + " transfers, issues each eager operation itself, received chunks concatenated) instead of this project's executor.")
    boolean harness;

    @Option(names = "--heads", defaultValue = "32", description = "Query heads (default: ${DEFAULT-VALUE}).")
    int heads;

    @Option(names = "--kv-heads", description = "Key/value heads (default: same as --heads).")
    Integer kvHeads;

    @Option(names = "--head-dim", defaultValue = "128", description = "Head dimension (default: ${DEFAULT-VALUE}).")
    int headDim;

    @Option(names = "--batch", defaultValue = "1", description = "Batch size (default: ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--dtype-bytes", defaultValue = "2", description = "Bytes per key/value element (default: ${DEFAULT-VALUE}, bf16).")
    int dtypeBytes;

    @Option(names = "--causal", description = "Causal mask.")
    boolean causal;

    @Option(names = "--chart", description = "Write speedup against sequence length (1k, or the shortest length every plan can cut, to 1M tokens) to this .png or .svg file.")
    Path chart;

    /** Preset names for help and completion. */
    static final class PresetNames implements Iterable<String> {
        @Override
        public Iterator<String> iterator() {
            return TopologyPresets.names().iterator();
        }
    }

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try {
            CostModel.Parameters params = CostModel.Parameters.defaults();
            if (paperGrid) {
                paperGrid(out, source == null ? null : topology());
                out.flush();
                return 0;
            }
            if (source == null || seq == null) {
                throw new IllegalArgumentException("give --preset or --topology, and --seq (or use --paper-grid)");
            }
            Topology topology = topology();
            ProblemSize problem = new ProblemSize(batch, seq, heads, kvHeads == null ? heads : kvHeads, headDim, dtypeBytes);
            Simulation sim = new Simulation(topology, causal, harness ? params.referenceHarness() : params);
            print(out, sim, problem);
            if (chart != null) {
                int lo = Math.max(10, 64 - Long.numberOfLeadingZeros(sim.minimumLength() - 1));
                long[] lens = SpeedupChart.powersOfTwo(lo, Math.max(lo + 1, 20));
                SpeedupChart.write(chart, title(topology, problem, causal), sim.baseline().cliName(), lens,
                        sim.speedupCurves(problem, lens));
                out.printf("chart: %s%n", chart);
            }
            out.flush();
            return 0;
        } catch (IllegalArgumentException | IllegalStateException | UncheckedIOException e) {
            err.println("tasp simulate: " + e.getMessage());
            err.flush();
            return 2;
        }
    }

    private Topology topology() {
        return source.preset != null ? TopologyPresets.get(source.preset) : TopologyJson.read(source.file, BandwidthTable.defaults());
    }

    /** The reference grid on one topology, or on every single-node 8-device preset. */
    static void paperGrid(PrintWriter out, Topology only) {
        List<Topology> machines = new java.util.ArrayList<>();
        if (only != null) {
            machines.add(only);
        } else {
            for (String name : TopologyPresets.names()) {
                Topology t = TopologyPresets.get(name);
                if (t.nodeCount() == 1 && t.deviceCount() == ReferenceGrid.GPUS) {
                    machines.add(t);
                }
            }
        }
        CostModel.Parameters harnessParams = CostModel.Parameters.defaults().referenceHarness();
        out.printf(Locale.ROOT, "reference grid: %d problems (%d GPUs, bf16, head dim %d, heads %s, seq k*%d for k in %s,"
                + " batch from the same list with batch*seq <= %,d tokens, full mask, forward), tasp against ring,"
                + " predicted as the harness runs: host waits for every step's transfers (%.0f us to wake up), %.1f us"
                + " per eager operation it issues, attention overlapping the transfers%n", ReferenceGrid.problems().size(),
                ReferenceGrid.GPUS, ReferenceGrid.HEAD_DIM, ReferenceGrid.HEADS, ReferenceGrid.SEQUENCE_UNIT,
                ReferenceGrid.MULTIPLES, ReferenceGrid.MAX_TOKENS, harnessParams.hostSyncSeconds() * 1e6,
                CostModel.Parameters.HARNESS_EAGER_OP_SECONDS * 1e6);
        for (Topology t : machines) {
            ReferenceGrid.Summary s = ReferenceGrid.run(t, harnessParams);
            var paper = ReferenceGrid.paper(t);
            ProblemSize m = s.atMaximum();
            out.printf(Locale.ROOT, "%s: average %.2fx%s, maximum %.2fx%s (batch %d, seq %d, %d heads), minimum %.2fx;"
                    + " ring transfer-bound at %d of %d problems%n", t.source().replace("preset:", ""), s.average(),
                    paper.map(f -> String.format(Locale.ROOT, " (paper %.2fx)", f.average())).orElse(" (paper: none)"),
                    s.maximum(), paper.map(f -> String.format(Locale.ROOT, " (paper %.2fx)", f.maximum())).orElse(""),
                    m.batch(), m.seqLen(), m.heads(), s.minimum(), s.commBound(), s.points());
        }
        out.println("constants and how well they match: docs/PERFORMANCE.md (simulator)");
    }

    static String title(Topology topology, ProblemSize p, boolean causal) {
        return String.format(Locale.ROOT, "%s, %s, %d/%d heads, d=%d, batch %d", topology.source(),
                causal ? "causal" : "full mask", p.heads(), p.kvHeads(), p.headDim(), p.batch());
    }

    static void print(PrintWriter out, Simulation sim, ProblemSize p) {
        out.printf("topology: %s%n", sim.topology());
        out.printf(Locale.ROOT, "problem: batch %d, seq %d, heads %d, kv heads %d, head dim %d, %d-byte kv, %s%s%n", p.batch(),
                p.seqLen(), p.heads(), p.kvHeads(), p.headDim(), p.dtypeBytes(), sim.causal() ? "causal" : "full mask",
                sim.parameters().harness() ? ", timed as the reference harness runs" : "");
        List<Simulation.Row> rows = sim.compare(p);
        String baseline = rows.get(0).label();
        out.printf("%-22s %7s %6s %12s %12s %12s %9s%n", "strategy", "cycles", "steps", "comm ms", "compute ms", "total ms",
                "vs " + baseline);
        for (Simulation.Row r : rows) {
            CostModel.Prediction pr = r.prediction();
            out.printf(Locale.ROOT, "%-22s %7d %6d %12.3f %12.3f %12.3f %8.2fx%n", r.label(), r.plan().cycles().size(),
                    pr.steps().size(), pr.commSeconds() * 1e3, pr.computeSeconds() * 1e3, pr.totalSeconds() * 1e3,
                    r.speedup());
        }
        for (Simulation.Row r : rows) {
            for (String note : r.plan().notes()) {
                out.printf("note (%s): %s%n", r.label(), note);
            }
        }
        CostModel.Prediction base = rows.get(0).prediction();
        if (base.steps().size() > 1) {
            CostModel.StepCost step = base.steps().get(1);
            if (step.commSeconds() <= step.computeSeconds()) {
                out.printf(Locale.ROOT, "compute-bound: a %s step's transfers (%.3f ms) finish while its attention runs (%.3f ms),"
                        + " so moving keys and values faster cannot shorten it; strategies differ only in per-step costs"
                        + " and how their attention calls are cut%n", baseline, step.commSeconds() * 1e3,
                        step.computeSeconds() * 1e3);
            } else {
                out.printf(Locale.ROOT, "transfer-bound: a %s step's transfers (%.3f ms) outlast its attention (%.3f ms);"
                        + " strategies that use more links at once gain up to that ratio (%.2fx)%n", baseline,
                        step.commSeconds() * 1e3, step.computeSeconds() * 1e3, step.commSeconds() / step.computeSeconds());
            }
        }
        Simulation.Row best = sim.best(p);
        out.printf(Locale.ROOT, "auto picks: %s (%.2fx over %s)%n", best.label(), best.speedup(), baseline);
    }
}
