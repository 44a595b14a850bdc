package io.github.taspdjl.plan;

import io.github.taspdjl.topology.Device;
import io.github.taspdjl.topology.GpuGeneration;
import io.github.taspdjl.topology.Link;
import io.github.taspdjl.topology.LinkKind;
import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Predicts how long a plan takes on a topology. A bottleneck model, per step:
 *
 * <ul>
 *   <li><b>Communication</b>: every transfer loads three resources: its <i>stream</i> (the arc, at
 *       {@code link.gbps * streamEfficiency(kind)}), the sender's <i>egress port</i> and the receiver's
 *       <i>ingress port</i> for that link kind. Ports of shared kinds (NVSWITCH: one set of NVLinks into
 *       the switch; PCIE: one x16 slot; NET: the GPU's rail NIC; HOST_MEMORY) run at the fastest such link
 *       of the device times {@code portEfficiency(kind)}; direct NVLINK and XGMI links are separate wires,
 *       so their stream is their only limit. Comm time = the largest bytes/rate over all resources, plus
 *       the largest latency of the link kinds the step uses. An arc the topology lacks (a ring fallback) is
 *       routed: half the slowest link of the topology, as PCIe.
 *   <li><b>Compute</b>: each rank's attention FLOPs ({@code 4 b h q k d} per FULL block pair, half that on
 *       a CAUSAL diagonal) at the device's attention rate, plus a launch cost per attention call (tasks of
 *       one rank, step, query block, mask and buffer are one call). Step compute = the busiest rank.
 *   <li><b>Overlap</b>: a step's transfers run during its compute (which works on the previous step's
 *       chunks): step time = max(comm, compute) + a fixed per-step synchronisation cost.
 * </ul>
 *
 * Every default is in {@link Parameters#defaults()}, with its source, and in docs/PLANS.md.
 */
public final class CostModel {

    /**
     * Per link kind figures.
     *
     * @param streamEfficiency fraction of a link's {@code gbps} that one peer-to-peer stream reaches
     * @param portEfficiency fraction of a shared port's bandwidth reachable with all peers at once
     * @param latencySeconds time to start a transfer over this kind
     */
    public record LinkParams(double streamEfficiency, double portEfficiency, double latencySeconds) {}

    /**
     * All model parameters.
     *
     * @param links per link kind figures
     * @param attentionFlops attention FLOP/s per GPU generation (forward, bf16)
     * @param cpuAttentionFlops attention FLOP/s of a virtual CPU rank
     * @param attentionCallSeconds launch cost of one attention call
     * @param stepSeconds fixed synchronisation cost per step (events between streams, group start/end)
     */
    public record Parameters(Map<LinkKind, LinkParams> links, Map<GpuGeneration, Double> attentionFlops,
            double cpuAttentionFlops, double attentionCallSeconds, double stepSeconds) {

        public Parameters {
            links = Map.copyOf(links);
            attentionFlops = Map.copyOf(attentionFlops);
            for (LinkKind k : LinkKind.values()) {
                if (!links.containsKey(k)) {
                    throw new IllegalArgumentException("no link parameters for " + k);
                }
            }
            for (GpuGeneration g : GpuGeneration.values()) {
                if (!(attentionFlops.getOrDefault(g, 0.0) > 0)) {
                    throw new IllegalArgumentException("no positive attention rate for " + g);
                }
            }
        }

        /** The defaults; docs/PLANS.md gives the source of each. */
        public static Parameters defaults() {
            Map<LinkKind, LinkParams> l = new EnumMap<>(LinkKind.class);
            l.put(LinkKind.NVSWITCH, new LinkParams(0.70, 0.90, 3e-6));
            l.put(LinkKind.NVLINK, new LinkParams(0.85, 1.0, 3e-6));
            l.put(LinkKind.XGMI, new LinkParams(0.80, 1.0, 4e-6));
            l.put(LinkKind.PCIE, new LinkParams(0.80, 1.0, 5e-6));
            l.put(LinkKind.NET, new LinkParams(0.90, 0.95, 10e-6));
            l.put(LinkKind.HOST_MEMORY, new LinkParams(1.0, 1.0, 1e-6));
            Map<GpuGeneration, Double> f = new EnumMap<>(GpuGeneration.class);
            f.put(GpuGeneration.P100, 15e12);
            f.put(GpuGeneration.V100, 60e12);
            f.put(GpuGeneration.A100, 190e12);
            f.put(GpuGeneration.H100, 350e12);
            f.put(GpuGeneration.H200, 350e12);
            f.put(GpuGeneration.B200, 700e12);
            f.put(GpuGeneration.MI300X, 400e12);
            f.put(GpuGeneration.UNKNOWN, 100e12);
            return new Parameters(l, f, 0.1e12, 5e-6, 10e-6);
        }

        /** A copy with another attention rate for one generation (for "what if compute were faster"). */
        public Parameters withAttentionFlops(GpuGeneration g, double flops) {
            Map<GpuGeneration, Double> f = new EnumMap<>(attentionFlops);
            f.put(g, flops);
            return new Parameters(links, f, cpuAttentionFlops, attentionCallSeconds, stepSeconds);
        }

        /** A copy with other figures for one link kind. */
        public Parameters withLink(LinkKind kind, LinkParams p) {
            Map<LinkKind, LinkParams> m = new EnumMap<>(links);
            m.put(kind, p);
            return new Parameters(m, attentionFlops, cpuAttentionFlops, attentionCallSeconds, stepSeconds);
        }
    }

    /**
     * Predicted cost of one step.
     *
     * @param step step index
     * @param commSeconds transfer time including latency
     * @param computeSeconds attention time of the busiest rank
     * @param seconds step time with overlap
     */
    public record StepCost(int step, double commSeconds, double computeSeconds, double seconds) {}

    /**
     * Predicted cost of a plan.
     *
     * @param plan the plan
     * @param problem the problem size
     * @param steps per step costs
     * @param totalSeconds sum of the step times
     */
    public record Prediction(Plan plan, ProblemSize problem, List<StepCost> steps, double totalSeconds) {

        public Prediction {
            steps = List.copyOf(steps);
        }

        /** Sum of the steps' transfer times (what a plan without overlap would add). */
        public double commSeconds() {
            return steps.stream().mapToDouble(StepCost::commSeconds).sum();
        }

        /** Sum of the steps' compute times. */
        public double computeSeconds() {
            return steps.stream().mapToDouble(StepCost::computeSeconds).sum();
        }

        /** Largest transfer time of any step. */
        public double maxStepCommSeconds() {
            return steps.stream().mapToDouble(StepCost::commSeconds).max().orElse(0);
        }
    }

    private final Topology topology;
    private final Parameters params;
    private final double[] flops;
    private final double routedGbps;
    /** ports[device][kind][0 = out, 1 = in]: fastest link of that kind at the device, GB/s. */
    private final double[][][] ports;

    public CostModel(Topology topology, Parameters params) {
        this.topology = Objects.requireNonNull(topology, "topology");
        this.params = Objects.requireNonNull(params, "params");
        this.flops = new double[topology.deviceCount()];
        for (Device d : topology.devices()) {
            flops[d.index()] = "cpu".equalsIgnoreCase(d.name()) ? params.cpuAttentionFlops()
                    : params.attentionFlops().get(GpuGeneration.fromName(d.name()));
        }
        this.ports = new double[topology.deviceCount()][LinkKind.values().length][2];
        for (Link l : topology.links()) {
            double[] out = ports[l.from()][l.kind().ordinal()];
            double[] in = ports[l.to()][l.kind().ordinal()];
            out[0] = Math.max(out[0], l.gbps());
            in[1] = Math.max(in[1], l.gbps());
        }
        this.routedGbps = topology.links().stream().mapToDouble(Link::gbps).min().orElse(Topology.HOST_MEMORY_GBPS) / 2;
    }

    /** The model with default parameters. */
    public static CostModel of(Topology topology) {
        return new CostModel(topology, Parameters.defaults());
    }

    public Topology topology() {
        return topology;
    }

    public Parameters parameters() {
        return params;
    }

    /** Predicts the plan's time for a problem. */
    public Prediction predict(Plan plan, ProblemSize problem) {
        if (plan.worldSize() != topology.deviceCount()) {
            throw new IllegalArgumentException("plan for " + plan.worldSize() + " ranks on a topology of "
                    + topology.deviceCount() + " devices");
        }
        SequenceLayout layout = plan.layout();
        if (problem.seqLen() < layout.minimumLength()) {
            throw new IllegalArgumentException("sequence length " + problem.seqLen() + " is shorter than the "
                    + layout.minimumLength() + " tokens plan " + plan + " needs");
        }
        double blockTokens = (double) problem.seqLen() / layout.blockCount();
        double chunkBytes = blockTokens / layout.chunksPerRank() * layout.blocksPerRank() * problem.kvBytesPerToken();
        List<StepCost> out = new ArrayList<>();
        double total = 0;
        for (Step step : plan.steps()) {
            double comm = comm(step, chunkBytes);
            double compute = compute(step, layout, blockTokens, problem);
            double seconds = Math.max(comm, compute) + params.stepSeconds();
            out.add(new StepCost(step.index(), comm, compute, seconds));
            total += seconds;
        }
        return new Prediction(plan, problem, out, total);
    }

    private double comm(Step step, double chunkBytes) {
        if (step.transfers().isEmpty()) {
            return 0;
        }
        Map<String, double[]> load = new HashMap<>(); // resource -> {bytes, bytes per second}
        double latency = 0;
        for (Transfer t : step.transfers()) {
            Link link = topology.link(t.src(), t.dst()).orElse(null);
            LinkKind kind = link == null ? LinkKind.PCIE : link.kind();
            LinkParams lp = params.links().get(kind);
            double gbps = link == null ? routedGbps : link.gbps();
            latency = Math.max(latency, lp.latencySeconds());
            add(load, "stream " + t.src() + "->" + t.dst(), chunkBytes, gbps * 1e9 * lp.streamEfficiency());
            if (shared(kind)) {
                double rate = lp.portEfficiency() * 1e9;
                add(load, "out " + t.src() + " " + kind, chunkBytes, rate * port(t.src(), kind, true, gbps));
                add(load, "in " + t.dst() + " " + kind, chunkBytes, rate * port(t.dst(), kind, false, gbps));
            }
        }
        double worst = 0;
        for (double[] v : load.values()) {
            worst = Math.max(worst, v[0] / v[1]);
        }
        return worst + latency;
    }

    private static void add(Map<String, double[]> load, String key, double bytes, double rate) {
        load.computeIfAbsent(key, k -> new double[] {0, rate})[0] += bytes;
    }

    private static boolean shared(LinkKind kind) {
        return kind != LinkKind.NVLINK && kind != LinkKind.XGMI;
    }

    /** A shared port's bandwidth: the fastest link of that kind at the device (GB/s). */
    private double port(int device, LinkKind kind, boolean out, double fallback) {
        double best = ports[device][kind.ordinal()][out ? 0 : 1];
        return best > 0 ? best : fallback;
    }

    private double compute(Step step, SequenceLayout layout, double blockTokens, ProblemSize p) {
        double[] work = new double[topology.deviceCount()];
        Set<String> calls = new HashSet<>();
        for (AttentionTask task : step.compute()) {
            double kvTokens = task.chunk().isWhole() ? blockTokens : blockTokens / layout.chunksPerRank();
            double f = 4.0 * p.batch() * p.heads() * blockTokens * kvTokens * p.headDim();
            if (task.mask() == Mask.CAUSAL) {
                f *= 0.5;
            }
            work[task.rank()] += f / flops[task.rank()];
            if (calls.add(task.rank() + " " + task.queryBlock() + " " + task.mask() + " " + task.slot().buffer())) {
                work[task.rank()] += params.attentionCallSeconds();
            }
        }
        double worst = 0;
        for (double w : work) {
            worst = Math.max(worst, w);
        }
        return worst;
    }

    /** One line summary of a prediction, for logs and the CLI. */
    public static String summary(Prediction p) {
        return String.format(Locale.ROOT, "%s: %.3f ms (comm %.3f ms, compute %.3f ms)", p.plan().strategy().cliName(),
                p.totalSeconds() * 1e3, p.commSeconds() * 1e3, p.computeSeconds() * 1e3);
    }
}
