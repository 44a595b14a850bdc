package io.github.taspdjl.cli;

import io.github.taspdjl.plan.CostModel;
import io.github.taspdjl.plan.ProblemSize;
import io.github.taspdjl.plan.Simulation;
import io.github.taspdjl.plan.SpeedupChart;
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
 * the speedups over the ring, and optionally charts speedup against sequence length.
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

    @ArgGroup(exclusive = true, multiplicity = "1")
    Source source;

    @Option(names = "--seq", required = true, description = "Sequence length in tokens (whole sequence).")
    long seq;

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
            Topology topology = source.preset != null ? TopologyPresets.get(source.preset)
                    : TopologyJson.read(source.file, BandwidthTable.defaults());
            ProblemSize problem = new ProblemSize(batch, seq, heads, kvHeads == null ? heads : kvHeads, headDim, dtypeBytes);
            Simulation sim = new Simulation(topology, causal, CostModel.Parameters.defaults());
            print(out, sim, problem);
            if (chart != null) {
                int lo = Math.max(10, 64 - Long.numberOfLeadingZeros(sim.minimumLength() - 1));
                long[] lens = SpeedupChart.powersOfTwo(lo, Math.max(lo + 1, 20));
                SpeedupChart.write(chart, title(topology, problem, causal), lens, sim.speedupCurves(problem, lens));
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

    static String title(Topology topology, ProblemSize p, boolean causal) {
        return String.format(Locale.ROOT, "%s, %s, %d/%d heads, d=%d, batch %d", topology.source(),
                causal ? "causal" : "full mask", p.heads(), p.kvHeads(), p.headDim(), p.batch());
    }

    static void print(PrintWriter out, Simulation sim, ProblemSize p) {
        out.printf("topology: %s%n", sim.topology());
        out.printf(Locale.ROOT, "problem: batch %d, seq %d, heads %d, kv heads %d, head dim %d, %d-byte kv, %s%n", p.batch(),
                p.seqLen(), p.heads(), p.kvHeads(), p.headDim(), p.dtypeBytes(), sim.causal() ? "causal" : "full mask");
        List<Simulation.Row> rows = sim.compare(p);
        out.printf("%-22s %7s %6s %12s %12s %12s %9s%n", "strategy", "cycles", "steps", "comm ms", "compute ms", "total ms",
                "speedup");
        for (Simulation.Row r : rows) {
            CostModel.Prediction pr = r.prediction();
            out.printf(Locale.ROOT, "%-22s %7d %6d %12.3f %12.3f %12.3f %8.2fx%n", r.label(), r.plan().cycles().size(),
                    r.plan().steps().size(), pr.commSeconds() * 1e3, pr.computeSeconds() * 1e3, pr.totalSeconds() * 1e3,
                    r.speedup());
        }
        for (Simulation.Row r : rows) {
            for (String note : r.plan().notes()) {
                out.printf("note (%s): %s%n", r.label(), note);
            }
        }
        Simulation.Row best = sim.best(p);
        out.printf(Locale.ROOT, "auto picks: %s (%.2fx over %s)%n", best.label(), best.speedup(), rows.get(0).label());
    }
}
