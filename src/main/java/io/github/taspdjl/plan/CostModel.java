package io.github.taspdjl.plan;

import io.github.taspdjl.topology.Device;
import io.github.taspdjl.topology.GpuGeneration;
import io.github.taspdjl.topology.Link;
import io.github.taspdjl.topology.LinkKind;
import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * Predicts how long a plan takes on a topology. A bottleneck model, per step:
 *
 * <ul>
 *   <li><b>Communication</b>: every transfer loads three resources: its <i>stream</i> (the arc, at
 *       {@code link.gbps * streamEfficiency(kind)}: what one peer-to-peer transfer of the communication
 *       library reaches), the sender's <i>egress port</i> and the receiver's <i>ingress port</i> for that
 *       link kind. Ports of shared kinds (NVSWITCH: one set of NVLinks into the switch; PCIE: one x16 slot;
 *       NET: the GPU's rail NIC; HOST_MEMORY) run at the fastest such link of the device times {@code
 *       portEfficiency(kind)} (what all peers at once reach); direct NVLINK and XGMI links are separate
 *       wires, but all of a device's links of one kind at once reach {@code portEfficiency} of their streams'
 *       sum. A stream's rate ramps up with its message size ({@code halfRateBytes}, see {@link
 *       #streamSeconds}): a ring's lone peer-to-peer message is slower per byte than each of TASP's. Comm
 *       time = the largest time over all resources, plus the per-step latency of the link kinds the step
 *       uses. An arc the topology lacks (a ring fallback) is routed: half the slowest link of the topology,
 *       as PCIe.
 *   <li><b>Compute</b>: per rank, its attention calls (tasks of one rank, step, query block, mask and
 *       buffer are one fused call). A call of {@code q} query and {@code kv} key tokens costs a launch plus
 *       {@code 4 b h q kv d} FLOPs (half on a CAUSAL diagonal) at the device's attention rate times two
 *       small-call efficiencies: {@code kv / (kv + kvOverheadTokens)} (each query tile's fixed work, loading
 *       Q and writing O, is worth that many key tokens) and wave quantization ({@code tiles / (waves x
 *       computeUnits)}, tiles = {@code b h ceil(q / queryTileRows)}). Each call's partial result is merged
 *       into fp32 accumulators: {@code mergeBytesPerElement} bytes of memory traffic per output element at
 *       the device's memory bandwidth. Step compute = the busiest rank.
 *   <li><b>Overlap</b>: a step's transfers run during its compute (which works on the previous step's
 *       chunks): step time = max(comm, compute) + a fixed per-step synchronisation cost.
 *   <li><b>Reference harness</b> ({@link Parameters#referenceHarness()}): the paper's Python harness, as its
 *       code runs: one host thread issues every eager operation itself ({@link
 *       Parameters#HARNESS_EAGER_OP_SECONDS} each; TASP indexes K and V out of each of its stacked chunks and
 *       concatenates them before one attention call every step), posts the step's transfers on a
 *       communication stream, issues the attention on the default stream, and then waits for the transfers
 *       ({@code hostSyncSeconds} to wake up). Attention overlaps the transfers, and lags behind the host when
 *       it is the longer; see {@code predictHarness}.
 * </ul>
 *
 * Every default is in {@link Parameters#defaults()}, with its source in docs/PERFORMANCE.md.
 */
public final class CostModel {

    /**
     * Per link kind figures.
     *
     * @param streamEfficiency fraction of a link's {@code gbps} that one peer-to-peer stream reaches
     * @param portEfficiency fraction of a shared port's bandwidth reachable with all peers at once
     * @param latencySeconds fixed time of a step's transfers over this kind (launch, handshake)
     * @param halfRateBytes message size up to which one peer-to-peer stream reaches only half its rate: a
     *     stream of {@code n} bytes takes {@code (n + min(n, halfRateBytes)) / rate} (see {@link #streamSeconds});
     *     NCCL gives a single peer few channels ("send/recv is optimized for alltoall"), so a lone stream
     *     reaches its plateau only for large messages; 0 for none
     */
    public record LinkParams(double streamEfficiency, double portEfficiency, double latencySeconds, double halfRateBytes) {

        public LinkParams {
            if (!(streamEfficiency > 0) || !(portEfficiency > 0) || latencySeconds < 0 || halfRateBytes < 0) {
                throw new IllegalArgumentException("link figures out of range: stream " + streamEfficiency + ", port "
                        + portEfficiency + ", latency " + latencySeconds + " s, half-rate size " + halfRateBytes + " B");
            }
        }

        /** Figures without a message-size ramp. */
        public LinkParams(double streamEfficiency, double portEfficiency, double latencySeconds) {
            this(streamEfficiency, portEfficiency, latencySeconds, 0);
        }
    }

    /**
     * Per device figures.
     *
     * @param attentionFlops attention FLOP/s of a large call (forward, bf16)
     * @param computeUnits streaming multiprocessors (NVIDIA) or compute units (AMD): tiles run in waves of this many
     * @param memoryBytesPerSecond memory bandwidth a streaming kernel reaches (not the data sheet's peak)
     * @param keyTileTokens key tokens per block of the attention kernel's inner loop: a call computes whole
     *     blocks, so its keys count rounded up to this (128 for FlashAttention-2 at head dimension 64, 64 for
     *     the composable-kernel flash attention of ROCm)
     */
    public record DeviceParams(double attentionFlops, int computeUnits, double memoryBytesPerSecond, int keyTileTokens) {

        public DeviceParams {
            if (!(attentionFlops > 0) || computeUnits < 1 || !(memoryBytesPerSecond > 0) || keyTileTokens < 1) {
                throw new IllegalArgumentException("device figures must be positive: " + attentionFlops + " FLOP/s, "
                        + computeUnits + " units, " + memoryBytesPerSecond + " B/s, key tile " + keyTileTokens);
            }
        }

        /** Figures of a device whose attention kernel works in FlashAttention-2's blocks of 128 keys. */
        public DeviceParams(double attentionFlops, int computeUnits, double memoryBytesPerSecond) {
            this(attentionFlops, computeUnits, memoryBytesPerSecond, 128);
        }

        DeviceParams withFlops(double flops) {
            return new DeviceParams(flops, computeUnits, memoryBytesPerSecond, keyTileTokens);
        }
    }

    /**
     * All model parameters.
     *
     * @param links per link kind figures
     * @param devices per GPU generation figures
     * @param cpu figures of a virtual CPU rank
     * @param attentionCallSeconds launch cost of one attention call (and of one merge)
     * @param stepSeconds fixed synchronisation cost per step (events between streams, group start/end)
     * @param kvOverheadTokens fixed work of one query tile, in key tokens (small-call efficiency)
     * @param queryTileRows query rows per tile of the attention kernel
     * @param mergeBytesPerElement memory traffic of merging one output element into the fp32 accumulators
     * @param hostSyncSeconds 0 for this project's executor; otherwise the reference harness's host
     *     synchronization per step, which also turns on its concatenation of received chunks
     */
    public record Parameters(Map<LinkKind, LinkParams> links, Map<GpuGeneration, DeviceParams> devices, DeviceParams cpu,
            double attentionCallSeconds, double stepSeconds, double kvOverheadTokens, int queryTileRows,
            double mergeBytesPerElement, double hostSyncSeconds) {

        public Parameters {
            links = Map.copyOf(links);
            devices = Map.copyOf(devices);
            for (LinkKind k : LinkKind.values()) {
                if (!links.containsKey(k)) {
                    throw new IllegalArgumentException("no link parameters for " + k);
                }
            }
            for (GpuGeneration g : GpuGeneration.values()) {
                if (!devices.containsKey(g)) {
                    throw new IllegalArgumentException("no device parameters for " + g);
                }
            }
            if (attentionCallSeconds < 0 || stepSeconds < 0 || kvOverheadTokens < 0 || queryTileRows < 1
                    || mergeBytesPerElement < 0 || hostSyncSeconds < 0) {
                throw new IllegalArgumentException("cost model figures must not be negative");
            }
        }

        /** Host synchronization of the paper's reference harness per step (see {@link #referenceHarness()}). */
        public static final double HARNESS_HOST_SYNC_SECONDS = 25e-6;

        /**
         * Host time of one eager PyTorch operation in the harness's Python loop (an indexing view, a tensor
         * allocation, a concatenation, a kernel launch, an event record): PyTorch's operator micro-benchmark
         * measures 3.3 us for an eager {@code split} on CUDA (pytorch/pytorch#32194); see docs/PERFORMANCE.md.
         */
        public static final double HARNESS_EAGER_OP_SECONDS = 3.3e-6;

        /** The defaults; docs/PERFORMANCE.md gives the source of each. */
        public static Parameters defaults() {
            Map<LinkKind, LinkParams> l = new EnumMap<>(LinkKind.class);
            // NVSwitch: one NCCL send/recv pair plateaus at 180 of 450 GB/s and reaches 80 GB/s at 32 MB, a half-rate
            // size of 32 x (180 / 80 - 1) = 40 MB; all peers at once reach 370 GB/s (NCCL's effective NVLink rate)
            l.put(LinkKind.NVSWITCH, new LinkParams(0.40, 370.0 / 450, 10e-6, 40e6));
            l.put(LinkKind.NVLINK, new LinkParams(0.85, 1.0, 10e-6));
            // xGMI: 48 of 64 GB/s per link (CRC and protocol); all seven links at once 94% of that (RCCL all-reduce
            // bus bandwidth 316.8 of 7 x 48 GB/s); RCCL's small operations take about 1.8 times NCCL's
            l.put(LinkKind.XGMI, new LinkParams(0.75, 316.8 / 336, 18e-6));
            l.put(LinkKind.PCIE, new LinkParams(0.80, 1.0, 10e-6));
            l.put(LinkKind.NET, new LinkParams(0.90, 0.95, 15e-6));
            l.put(LinkKind.HOST_MEMORY, new LinkParams(1.0, 1.0, 1e-6));
            Map<GpuGeneration, DeviceParams> d = new EnumMap<>(GpuGeneration.class);
            d.put(GpuGeneration.P100, new DeviceParams(15e12, 56, 0.65e12));
            d.put(GpuGeneration.V100, new DeviceParams(60e12, 80, 0.8e12));
            d.put(GpuGeneration.A100, new DeviceParams(190e12, 108, 1.8e12));
            d.put(GpuGeneration.H100, new DeviceParams(350e12, 132, 2.90e12));
            d.put(GpuGeneration.H200, new DeviceParams(350e12, 132, 4.3e12));
            d.put(GpuGeneration.B200, new DeviceParams(700e12, 148, 7.2e12));
            // ROCm's flash attention (composable kernel) runs 128 query rows by 64 keys at head dimension 64
            d.put(GpuGeneration.MI300X, new DeviceParams(328.6e12, 304, 4.11e12, 64));
            d.put(GpuGeneration.UNKNOWN, new DeviceParams(100e12, 100, 1.0e12));
            return new Parameters(l, d, new DeviceParams(0.1e12, 1, 10e9), 5e-6, 10e-6, 64, 128, 10, 0);
        }

        /**
         * These figures as the paper's reference harness runs (HamiltonAttention's profiling forwards): the
         * host waits for every step's transfers before it posts the next ones
         * ({@value #HARNESS_HOST_SYNC_SECONDS} s each to wake up), issues each eager operation itself
         * ({@value #HARNESS_EAGER_OP_SECONDS} s each), and the received chunks are concatenated before one
         * attention call.
         */
        public Parameters referenceHarness() {
            return new Parameters(links, devices, cpu, attentionCallSeconds, 0, kvOverheadTokens, queryTileRows,
                    mergeBytesPerElement, HARNESS_HOST_SYNC_SECONDS);
        }

        /** Whether these are the reference harness's figures. */
        public boolean harness() {
            return hostSyncSeconds > 0;
        }

        /** A copy with another attention rate for one generation (for "what if compute were faster"). */
        public Parameters withAttentionFlops(GpuGeneration g, double flops) {
            Map<GpuGeneration, DeviceParams> m = new EnumMap<>(devices);
            m.put(g, devices.get(g).withFlops(flops));
            return new Parameters(links, m, cpu, attentionCallSeconds, stepSeconds, kvOverheadTokens, queryTileRows,
                    mergeBytesPerElement, hostSyncSeconds);
        }

        /** A copy with other figures for one link kind. */
        public Parameters withLink(LinkKind kind, LinkParams p) {
            Map<LinkKind, LinkParams> m = new EnumMap<>(links);
            m.put(kind, p);
            return new Parameters(m, devices, cpu, attentionCallSeconds, stepSeconds, kvOverheadTokens, queryTileRows,
                    mergeBytesPerElement, hostSyncSeconds);
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
    private final DeviceParams[] device;
    private final double routedGbps;
    /** ports[device][kind][0 = out, 1 = in]: fastest link of that kind at the device, GB/s. */
    private final double[][][] ports;
    /** wires[device][kind][0 = out, 1 = in]: sum of the device's links of that kind, GB/s (direct kinds). */
    private final double[][][] wires;

    public CostModel(Topology topology, Parameters params) {
        this.topology = Objects.requireNonNull(topology, "topology");
        this.params = Objects.requireNonNull(params, "params");
        this.device = new DeviceParams[topology.deviceCount()];
        for (Device d : topology.devices()) {
            device[d.index()] = "cpu".equalsIgnoreCase(d.name()) ? params.cpu()
                    : params.devices().get(GpuGeneration.fromName(d.name()));
        }
        this.ports = new double[topology.deviceCount()][LinkKind.values().length][2];
        this.wires = new double[topology.deviceCount()][LinkKind.values().length][2];
        for (Link l : topology.links()) {
            double[] out = ports[l.from()][l.kind().ordinal()];
            double[] in = ports[l.to()][l.kind().ordinal()];
            out[0] = Math.max(out[0], l.gbps());
            in[1] = Math.max(in[1], l.gbps());
            wires[l.from()][l.kind().ordinal()][0] += l.gbps();
            wires[l.to()][l.kind().ordinal()][1] += l.gbps();
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
        if (plan.headParallel() != null) {
            return HeadParallelCost.predict(this, plan, problem);
        }
        SequenceLayout layout = plan.layout();
        if (problem.seqLen() < layout.minimumLength()) {
            throw new IllegalArgumentException("sequence length " + problem.seqLen() + " is shorter than the "
                    + layout.minimumLength() + " tokens plan " + plan + " needs");
        }
        double blockTokens = (double) problem.seqLen() / layout.blockCount();
        double chunkBytes = blockTokens / layout.chunksPerRank() * layout.blocksPerRank() * problem.kvBytesPerToken();
        if (params.harness()) {
            return predictHarness(plan, problem, layout, blockTokens, chunkBytes);
        }
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

    /**
     * The reference harness's timeline (HamiltonAttention's {@code *_profile} forwards): one host thread and two
     * streams. Each step the host first issues its eager operations up to the transfers (indexing K and V out of
     * every stacked received chunk, the receive buffers, the collective and its wait on the communication
     * stream, the two timing events), then the attention's operations on the default stream (concatenation of
     * the chunks, one flash-attention call, the merge, two events), then blocks until the transfers are done
     * ({@code stream_comm.synchronize()}, {@link Parameters#hostSyncSeconds} to wake up). Attention waits for
     * nothing on the GPU but for the host to issue it and for the previous step's attention: it overlaps the
     * transfers of its own step and, when it runs longer, those of the next steps. The timed span runs from an
     * event recorded before the first step to one recorded after the last step's attention. A step's
     * {@link StepCost#seconds} is how far it moves the later of the attention stream's end and the host.
     */
    private Prediction predictHarness(Plan plan, ProblemSize problem, SequenceLayout layout, double blockTokens,
            double chunkBytes) {
        double op = Parameters.HARNESS_EAGER_OP_SECONDS;
        double host = 0;
        double attentionEnd = 0;
        double frontier = 0;
        List<StepCost> out = new ArrayList<>();
        List<Step> steps = plan.steps();
        for (int i = 0; i < steps.size(); i++) {
            Step step = steps.get(i);
            double comm = comm(step, chunkBytes);
            double compute = compute(step, layout, blockTokens, problem);
            int chunks = chunksPerCall(step);
            boolean transfers = !step.transfers().isEmpty();
            // K and V of every stacked chunk indexed out (lists of views), then the comm events and, when it
            // sends, two receive buffers, the collective and its wait
            int before = (chunks > 1 ? 2 * chunks : 0) + 2 + (transfers ? HARNESS_TRANSFER_OPS : 0);
            // the attention's events, its concatenation of K and of V, one flash call, the merge
            int attention = 2 + (chunks > 1 ? 2 : 0) + 2;
            double posted = host + before * op;
            double commEnd = posted + (transfers ? comm : 0);
            attentionEnd = Math.max(attentionEnd, posted + op) + compute;
            double issued = posted + attention * op;
            host = transfers ? Math.max(commEnd, issued) + params.hostSyncSeconds() : issued + op;
            // the last step's host time is the end event's record after its attention is issued
            double next = Math.max(attentionEnd, host);
            out.add(new StepCost(step.index(), comm, compute, next - frontier));
            frontier = next;
        }
        return new Prediction(plan, problem, out, frontier);
    }

    /** Eager operations the harness issues to post one step's transfers: two receive buffers, the collective, its wait. */
    static final int HARNESS_TRANSFER_OPS = 4;

    /** The most tasks one attention call of the step fuses (the chunks the harness concatenates), at least 1. */
    private static int chunksPerCall(Step step) {
        Map<List<Integer>, Integer> calls = new HashMap<>();
        int most = 1;
        for (AttentionTask task : step.compute()) {
            List<Integer> key = List.of(task.rank(), task.queryBlock(), task.mask().ordinal(), task.slot().buffer());
            most = Math.max(most, calls.merge(key, 1, Integer::sum));
        }
        return most;
    }

    private double comm(Step step, double chunkBytes) {
        List<int[]> arcs = new ArrayList<>(step.transfers().size());
        for (Transfer t : step.transfers()) {
            arcs.add(new int[] {t.src(), t.dst()});
        }
        double[] bytes = new double[arcs.size()];
        java.util.Arrays.fill(bytes, chunkBytes);
        return transferSeconds(arcs, bytes);
    }

    /**
     * Time of transfers that start together: arc {@code arcs[i]} = {src, dst} moves {@code bytes[i]}; the
     * slowest resource (stream, egress port, ingress port) plus the latency of the link kinds used.
     */
    double transferSeconds(List<int[]> arcs, double[] bytes) {
        if (arcs.isEmpty()) {
            return 0;
        }
        Map<String, double[]> load = new HashMap<>();
        double latency = 0;
        for (int i = 0; i < arcs.size(); i++) {
            int src = arcs.get(i)[0];
            int dst = arcs.get(i)[1];
            double b = bytes[i];
            Link link = topology.link(src, dst).orElse(null);
            LinkKind kind = link == null ? LinkKind.PCIE : link.kind();
            LinkParams lp = params.links().get(kind);
            double gbps = link == null ? routedGbps : link.gbps();
            latency = Math.max(latency, lp.latencySeconds());
            // everything one stream carries this step is one message to its peer: one ramp
            add(load, "stream " + src + "->" + dst, b, gbps * 1e9 * lp.streamEfficiency(),
                    lp.halfRateBytes());
            double rate = lp.portEfficiency() * 1e9;
            if (shared(kind)) {
                add(load, "out " + src + " " + kind, b, rate * port(src, kind, true, gbps), 0);
                add(load, "in " + dst + " " + kind, b, rate * port(dst, kind, false, gbps), 0);
            } else if (link != null) {
                // separate wires, but all of them at once reach only portEfficiency of their streams' sum
                double wired = rate * lp.streamEfficiency();
                add(load, "out " + src + " " + kind, b, wired * wires[src][kind.ordinal()][0], 0);
                add(load, "in " + dst + " " + kind, b, wired * wires[dst][kind.ordinal()][1], 0);
            }
        }
        double worst = 0;
        for (double[] v : load.values()) {
            worst = Math.max(worst, streamSeconds(v[0], v[1], v[2]));
        }
        return worst + latency;
    }

    /** load: resource -> {bytes, bytes per second, half-rate size}. */
    private static void add(Map<String, double[]> load, String key, double bytes, double rate, double halfRateBytes) {
        load.computeIfAbsent(key, k -> new double[] {0, rate, halfRateBytes})[0] += bytes;
    }

    /**
     * Time of a message of {@code bytes} over a resource of {@code rate} bytes per second whose rate ramps up
     * with message size: above {@code halfRateBytes} it moves at {@code rate * n / (n + halfRateBytes)} (a
     * half-rate size, as fitted to a bandwidth-against-size curve), below it at half the rate. The floor keeps a
     * small message's time in proportion to its size, as small operations measure (about 10 us), instead of
     * charging every message the ramp's full {@code halfRateBytes / rate}.
     */
    static double streamSeconds(double bytes, double rate, double halfRateBytes) {
        return (bytes + Math.min(bytes, halfRateBytes)) / rate;
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
        // one fused call per (rank, query block, mask, buffer): its key tokens and whether it is causal
        Map<List<Integer>, double[]> calls = new HashMap<>();
        for (AttentionTask task : step.compute()) {
            double kvTokens = task.chunk().isWhole() ? blockTokens : blockTokens / layout.chunksPerRank();
            List<Integer> key = List.of(task.rank(), task.queryBlock(), task.mask().ordinal(), task.slot().buffer());
            double[] call = calls.computeIfAbsent(key, k -> new double[3]);
            call[0] += kvTokens;
            call[1] = task.mask() == Mask.CAUSAL ? 1 : 0;
            call[2]++;
        }
        for (Map.Entry<List<Integer>, double[]> e : calls.entrySet()) {
            int rank = e.getKey().get(0);
            double[] call = e.getValue();
            work[rank] += callSeconds(device[rank], p, blockTokens, call[0], call[1] > 0);
            if (params.harness() && call[2] > 1) {
                // the harness concatenates the received keys and values first: read and write each once
                work[rank] += 2 * call[0] * p.kvBytesPerToken() / device[rank].memoryBytesPerSecond();
            }
        }
        double worst = 0;
        for (double w : work) {
            worst = Math.max(worst, w);
        }
        return worst;
    }

    /**
     * One attention call of {@code q} query and {@code kv} key tokens and the merge of its partial result:
     * launches, FLOPs at the device's rate times the two small-call efficiencies, and the merge's memory
     * traffic.
     */
    double callSeconds(DeviceParams d, ProblemSize p, double q, double kv, boolean causal) {
        double merge = params.mergeBytesPerElement() * p.batch() * p.heads() * q * p.headDim() / d.memoryBytesPerSecond();
        return attentionSeconds(d, p, q, kv, causal) + params.attentionCallSeconds() + merge;
    }

    /** One attention call that writes its output directly (no merge): a launch and the FLOPs. */
    double attentionSeconds(DeviceParams d, ProblemSize p, double q, double kv, boolean causal) {
        // the kernel computes whole tiles: a last, partial tile of queries or block of keys costs a full one
        double rows = Math.ceil(q / params.queryTileRows()) * params.queryTileRows();
        double keys = Math.ceil(kv / d.keyTileTokens()) * d.keyTileTokens();
        double flops = 4.0 * p.batch() * p.heads() * rows * keys * p.headDim() * (causal ? 0.5 : 1.0);
        double kvEfficiency = keys / (keys + params.kvOverheadTokens());
        double tiles = (double) p.batch() * p.heads() * Math.ceil(q / params.queryTileRows());
        double waves = Math.ceil(tiles / d.computeUnits());
        double waveEfficiency = tiles / (waves * d.computeUnits());
        return params.attentionCallSeconds() + flops / (d.attentionFlops() * kvEfficiency * waveEfficiency);
    }

    /** Figures of a device of the topology. */
    DeviceParams device(int index) {
        return device[index];
    }

    /** One line summary of a prediction, for logs and the CLI. */
    public static String summary(Prediction p) {
        return String.format(Locale.ROOT, "%s: %.3f ms (comm %.3f ms, compute %.3f ms)", p.plan().strategy().cliName(),
                p.totalSeconds() * 1e3, p.commSeconds() * 1e3, p.computeSeconds() * 1e3);
    }
}
