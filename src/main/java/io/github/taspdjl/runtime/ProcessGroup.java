package io.github.taspdjl.runtime;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.NativeLoader;
import io.github.taspdjl.jni.NativeOps;
import io.github.taspdjl.jni.NcclCommunicator;
import io.github.taspdjl.jni.TcpMesh;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.PlanCodec;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import io.github.taspdjl.topology.TopologyDetector;
import io.github.taspdjl.topology.TopologyJson;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;

/**
 * This process's rank of a group whose ranks are processes (one per GPU, or one per CPU process),
 * started by a launcher (torchrun, srun, mpirun, {@code tasp launch}; see {@link
 * LaunchEnvironment}). Joining runs the {@link Rendezvous}: every rank brings what it believes about
 * the job (library versions, transport, cluster topology, plan, problem) and rank 0 refuses to start
 * unless all agree. Then the transport connects: NCCL on GPUs (rank 0's unique id travels in the
 * rendezvous; device = local rank) or, on the CPU, a TCP mesh ({@link TcpMesh}). A model runs its
 * shard inside {@code RankContext.run(group, group.rank(), seqLen, causal, ...)}; its
 * TaspAttentionBlocks then run over the transport.
 */
public final class ProcessGroup implements RankGroup, AutoCloseable {

    /** Seconds to wait for every rank at the rendezvous (default 300). */
    public static final String PROPERTY_RENDEZVOUS_TIMEOUT = "tasp.rendezvous.timeout";

    public static final String ENV_RENDEZVOUS_TIMEOUT = "TASP_RENDEZVOUS_TIMEOUT";

    private final LaunchEnvironment env;
    private final Topology topology;
    private final PlanChoice choice;
    private final TcpMesh mesh;
    private final NcclGroup nccl;
    private final List<Rendezvous.Card> cards;
    private final Map<Boolean, Plan> plans = new ConcurrentHashMap<>();
    /** This rank's programs and runs over the TCP mesh (null on NCCL, which has its own). */
    private final ProcessRank tcpRank;

    private ProcessGroup(LaunchEnvironment env, Topology topology, PlanChoice choice, TcpMesh mesh, NcclGroup nccl,
            List<Rendezvous.Card> cards) {
        this.env = env;
        this.topology = topology;
        this.choice = choice;
        this.mesh = mesh;
        this.nccl = nccl;
        this.cards = cards;
        this.tcpRank = mesh == null ? null
                : new ProcessRank(env.rank(), this::plan, RankTransport.of(mesh), why -> rejectRank(env.rank(), why));
    }

    public static Builder builder() {
        return new Builder();
    }

    public int rank() {
        return env.rank();
    }

    public LaunchEnvironment environment() {
        return env;
    }

    @Override
    public int worldSize() {
        return env.worldSize();
    }

    public Topology topology() {
        return topology;
    }

    /** "nccl" or "tcp". */
    public String transport() {
        return nccl != null ? "nccl" : "tcp";
    }

    /** Every rank's card from the rendezvous, in rank order. */
    public List<Rendezvous.Card> cards() {
        return cards;
    }

    @Override
    public Plan plan(boolean causal) {
        return plans.computeIfAbsent(causal, c -> choice.plan(topology, c));
    }

    /** This rank's part of the forward (its shard, see {@link Sharding}); every rank must call it. */
    @Override
    public NativeGroup.RankOutput forwardRank(int rank, NDArray q, NDArray k, NDArray v, boolean causal, Float scale,
            long seqLen, PackedSequence documents) {
        if (rank != env.rank()) {
            throw new IllegalArgumentException("this process is rank " + env.rank() + ", not rank " + rank);
        }
        if (nccl != null) {
            return nccl.forwardRank(rank, q, k, v, causal, scale, seqLen, documents);
        }
        return tcpRank.forward(q, k, v, causal, scale, seqLen, documents);
    }

    /** This rank's part of the backward of {@link #forwardRank}; every rank must call it. */
    @Override
    public NativeGroup.RankGradients backwardRank(int rank, NDArray dout, NDArray q, NDArray k, NDArray v,
            NDArray out, NDArray lse, boolean causal, Float scale, long seqLen) {
        if (rank != env.rank()) {
            throw new IllegalArgumentException("this process is rank " + env.rank() + ", not rank " + rank);
        }
        if (nccl != null) {
            return nccl.backwardRank(rank, dout, q, k, v, out, lse, causal, scale, seqLen);
        }
        return tcpRank.backward(dout, q, k, v, out, lse, causal, scale, seqLen);
    }

    /** Sums each array over the processes, in place (TCP: CPU arrays; NCCL: arrays on this rank's GPU). */
    @Override
    public void allReduceSum(List<NDArray> arrays) {
        if (nccl != null) {
            nccl.allReduceSum(arrays);
        } else {
            mesh.allReduceSum(arrays);
        }
    }

    /** This rank will not run the collective its peers are starting: they fail at once, told why. */
    @Override
    public void rejectRank(int rank, String why) {
        if (rank != env.rank()) {
            throw new IllegalArgumentException("this process is rank " + env.rank() + ", not rank " + rank);
        }
        if (nccl != null) {
            nccl.rejectRank(rank, why);
        } else {
            mesh.fail("rank " + rank + " rejected its input: " + why);
        }
    }

    /** Fails every rank's current and later runs with {@code message} (CPU transport). */
    public void fail(String message) {
        if (mesh != null) {
            mesh.fail(message);
        }
    }

    @Override
    public void close() {
        if (mesh != null) {
            mesh.close();
        }
        if (nccl != null) {
            nccl.close();
        }
    }


    /** Options of a process group; {@link #join()} blocks until every rank joined. */
    public static final class Builder {
        private LaunchEnvironment env;
        private PlanChoice choice = PlanChoice.of(Strategy.TASP);
        private String problem = "";
        private Boolean gpu;
        private Topology nodeTopology;
        private long timeoutMs = 300_000;
        private Duration rendezvousTimeout;
        private double nicGbps = 50;
        private Integer cudaDevice;

        private Builder() {}

        /** Where this process stands (default: {@link LaunchEnvironment#detect()}). */
        public Builder environment(LaunchEnvironment e) {
            this.env = e;
            return this;
        }

        /**
         * The strategy (default tasp). Ulysses and hybrids move heads: the query heads must divide by the
         * Ulysses degree (checked on every run; a run whose heads do not fails every rank, saying so).
         */
        public Builder strategy(Strategy s) {
            this.choice = PlanChoice.of(s);
            return this;
        }

        /**
         * A {@link Strategy#HYBRID} of this Ulysses degree (ranks per all-to-all group; it must divide the world
         * size and lie in [2, n)) with {@code inner} over the n/degree ranks of each head subset. Without it,
         * HYBRID takes the degree the cost model predicts fastest for the default problem. Every rank must ask
         * for the same (the rendezvous compares the plans).
         */
        public Builder hybrid(int degree, Strategy inner) {
            this.choice = PlanChoice.hybrid(degree, inner);
            return this;
        }

        /**
         * A description of the work that every rank must agree on (sizes, seeds, checksums of the
         * inputs and weights): a rank that describes it differently stops the group before it starts.
         */
        public Builder problem(String description) {
            this.problem = description;
            return this;
        }

        /** GPU ranks over NCCL (true) or CPU ranks over TCP (false); default: DJL's default device. */
        public Builder gpu(boolean onGpu) {
            this.gpu = onGpu;
            return this;
        }

        /** The CUDA device of this rank (default: its local rank modulo the GPUs this process sees). */
        public Builder cudaDevice(int device) {
            this.cudaDevice = device;
            return this;
        }

        /** This node's topology (default: detected; GPU ranks only). */
        public Builder nodeTopology(Topology t) {
            this.nodeTopology = t;
            return this;
        }

        /** How long any transport wait on a peer may take before every rank fails (default 300 s). */
        public Builder timeout(long millis) {
            if (millis < 1) {
                throw new IllegalArgumentException("timeout must be at least 1 ms, got " + millis);
            }
            this.timeoutMs = millis;
            return this;
        }

        /**
         * How long rank 0 waits for every rank to join (default: {@value #PROPERTY_RENDEZVOUS_TIMEOUT}
         * / {@value #ENV_RENDEZVOUS_TIMEOUT} seconds, else 300 s).
         */
        public Builder rendezvousTimeout(Duration d) {
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException("the rendezvous timeout must be positive, got " + d);
            }
            this.rendezvousTimeout = d;
            return this;
        }

        /** Bandwidth of one NIC between nodes, GB/s per direction (default 50, 400 Gb/s). */
        public Builder nicGbps(double gbps) {
            this.nicGbps = gbps;
            return this;
        }

        /** Joins: rendezvous, agreement checks, then the transport. Blocks until all ranks joined. */
        public ProcessGroup join() {
            LaunchEnvironment e = env != null ? env : LaunchEnvironment.detect().orElseThrow(() ->
                    new IllegalArgumentException("no launch environment: start this process under torchrun, srun, "
                            + "mpirun or tasp launch (or set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)"));
            boolean onGpu = gpu != null ? gpu : Engine.getEngine("PyTorch").defaultDevice().isGpu();
            Topology topology = clusterTopology(e, onGpu);
            Plan causalPlan = choice.plan(topology, true);
            Plan fullPlan = choice.plan(topology, false);
            NativeLoader.LoadedLibrary lib = NativeOps.loaded();
            Map<String, String> agreement = new LinkedHashMap<>();
            agreement.put("library", "tasp-djl " + libraryVersion() + ", libtasp " + lib.nativeVersion() + " ("
                    + lib.flavor() + "), DJL " + Engine.getDjlVersion() + ", libtorch " + lib.libtorchVersion());
            agreement.put("transport", onGpu ? "nccl" : "tcp");
            agreement.put("world", e.worldSize() + " ranks, " + e.localWorldSize() + " per node");
            agreement.put("topology", topology.deviceCount() + " devices, " + topology.fabric() + ", "
                    + digest(TopologyJson.write(topology).getBytes(StandardCharsets.UTF_8)));
            agreement.put("plan", planLabel(choice.strategy(), causalPlan) + " causal " + planDigest(causalPlan) + ", full "
                    + planDigest(fullPlan));
            agreement.put("problem", problem);
            String node = hostName();
            AtomicReference<TcpMesh> mesh = new AtomicReference<>();
            try {
                Rendezvous.Result result = Rendezvous.join(e, local -> {
                    String host = local.getHostAddress();
                    int port = 0;
                    if (!onGpu) {
                        mesh.set(TcpMesh.listen(e.worldSize(), e.rank(), host, timeoutMs));
                        port = mesh.get().port();
                    }
                    return new Rendezvous.Card(e.rank(), host, port, node, agreement);
                }, () -> onGpu ? NcclCommunicator.uniqueId() : new byte[0], rendezvousTimeout());
                checkNodes(e, result.cards());
                if (onGpu) {
                    int dev = cudaDevice != null ? cudaDevice
                            : e.localRank() % Math.max(1, Engine.getEngine("PyTorch").getGpuCount());
                    NcclGroup g = NcclGroup.join(topology, choice, e.rank(), result.payload(), dev, timeoutMs);
                    return new ProcessGroup(e, topology, choice, null, g, result.cards());
                }
                List<String> hosts = new ArrayList<>();
                int[] ports = new int[e.worldSize()];
                for (Rendezvous.Card c : result.cards()) {
                    hosts.add(c.host());
                    ports[c.rank()] = c.port();
                }
                mesh.get().connect(hosts, ports, result.token());
                return new ProcessGroup(e, topology, choice, mesh.get(), null, result.cards());
            } catch (RuntimeException ex) {
                if (mesh.get() != null) {
                    mesh.get().close();
                }
                throw ex;
            }
        }

        private Topology clusterTopology(LaunchEnvironment e, boolean onGpu) {
            if (!onGpu) {
                return Topology.virtualCpu(e.worldSize());
            }
            Topology node = nodeTopology != null ? nodeTopology : TopologyDetector.detectGpu().orElseThrow(() ->
                    new IllegalStateException("rank " + e.rank() + ": no GPU topology detected on this node"));
            if (node.deviceCount() != e.localWorldSize()) {
                throw new IllegalArgumentException("rank " + e.rank() + ": this node has " + node.deviceCount()
                        + " GPUs but " + e.localWorldSize() + " ranks per node; start one rank per GPU (or set "
                        + "CUDA_VISIBLE_DEVICES, or TASP_TOPOLOGY to a file describing the GPUs used)");
            }
            return e.nodes() == 1 ? node : Topology.cluster(node, e.nodes(), nicGbps);
        }

        private Duration rendezvousTimeout() {
            if (rendezvousTimeout != null) {
                return rendezvousTimeout;
            }
            String v = System.getProperty(PROPERTY_RENDEZVOUS_TIMEOUT);
            if (v == null || v.isBlank()) {
                v = System.getenv(ENV_RENDEZVOUS_TIMEOUT);
            }
            if (v == null || v.isBlank()) {
                return Duration.ofSeconds(300);
            }
            try {
                double seconds = Double.parseDouble(v.trim());
                if (seconds > 0) {
                    return Duration.ofMillis((long) (seconds * 1000));
                }
            } catch (NumberFormatException ex) {
                // fall through to the message below
            }
            throw new IllegalArgumentException(ENV_RENDEZVOUS_TIMEOUT + " / " + PROPERTY_RENDEZVOUS_TIMEOUT + " must be "
                    + "a positive number of seconds, got '" + v + "'");
        }
    }

    /** Every node must hold the number of ranks the launcher announced (the plan assumes it). */
    static void checkNodes(LaunchEnvironment e, List<Rendezvous.Card> cards) {
        Map<String, List<Integer>> byNode = new TreeMap<>();
        for (Rendezvous.Card c : cards) {
            byNode.computeIfAbsent(c.node(), n -> new ArrayList<>()).add(c.rank());
        }
        for (Map.Entry<String, List<Integer>> n : byNode.entrySet()) {
            if (n.getValue().size() != e.localWorldSize()) {
                throw new IllegalArgumentException("node " + n.getKey() + " runs ranks " + n.getValue() + ", but every "
                        + "node must run " + e.localWorldSize() + " (LOCAL_WORLD_SIZE)");
            }
        }
    }

    private static String libraryVersion() {
        String v = ProcessGroup.class.getPackage().getImplementationVersion();
        return v == null ? "dev" : v;
    }

    /** The strategy asked for, or for a head-parallel plan its degree and inner strategy ("hybrid 2xring"). */
    private static String planLabel(Strategy strategy, Plan plan) {
        return plan.headParallel() != null ? plan.headParallel().label() : strategy.cliName();
    }

    /** A digest of the plan's flat form; a head-parallel plan's is its inner plan's (the label names the rest). */
    private static String planDigest(Plan plan) {
        int[] flat = PlanCodec.toFlat(plan.headParallel() != null ? plan.headParallel().inner() : plan);
        ByteBuffer b = ByteBuffer.allocate(flat.length * Integer.BYTES);
        b.asIntBuffer().put(flat);
        return digest(b.array());
    }

    private static String digest(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes), 0, 8);
        } catch (NoSuchAlgorithmException ex) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", ex);
        }
    }

    private static String hostName() {
        try {
            return Files.readString(Path.of("/proc/sys/kernel/hostname")).trim();
        } catch (IOException | RuntimeException ex) {
            try {
                return InetAddress.getLocalHost().getHostName();
            } catch (IOException e2) {
                return "localhost";
            }
        }
    }
}
