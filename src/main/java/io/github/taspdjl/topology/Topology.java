package io.github.taspdjl.topology;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * The interconnect of the devices that take part in sequence parallelism: devices, directed links
 * between them, NICs, and the fabric class. Immutable. A cluster is several nodes joined by
 * {@link LinkKind#NET} links.
 */
public final class Topology {

    /** Bandwidth of one in-process copy stream between virtual CPU ranks, GB/s per direction. */
    public static final double HOST_MEMORY_GBPS = 10.0;

    private final List<Device> devices;
    private final List<Link> links;
    private final List<Nic> nics;
    private final FabricClass fabric;
    private final String source;
    private final Link[][] linkMatrix;

    public Topology(List<Device> devices, List<Link> links, List<Nic> nics, FabricClass fabric, String source) {
        this.devices = List.copyOf(devices);
        this.links = List.copyOf(links);
        this.nics = List.copyOf(nics);
        this.fabric = Objects.requireNonNull(fabric, "fabric");
        this.source = Objects.requireNonNull(source, "source");
        int n = this.devices.size();
        for (int i = 0; i < n; i++) {
            if (this.devices.get(i).index() != i) {
                throw new IllegalArgumentException(
                        "device at position " + i + " has index " + this.devices.get(i).index());
            }
        }
        linkMatrix = new Link[n][n];
        for (Link l : this.links) {
            if (l.from() < 0 || l.from() >= n || l.to() < 0 || l.to() >= n || l.from() == l.to()) {
                throw new IllegalArgumentException("link " + l + " does not join two of the " + n + " devices");
            }
            if (linkMatrix[l.from()][l.to()] != null) {
                throw new IllegalArgumentException("two links from " + l.from() + " to " + l.to());
            }
            linkMatrix[l.from()][l.to()] = l;
        }
    }

    /** A topology whose fabric class is decided by {@link FabricClassifier}. */
    public static Topology of(List<Device> devices, List<Link> links, List<Nic> nics, String source) {
        return new Topology(devices, links, nics, FabricClassifier.classify(devices, links), source);
    }

    /** The same topology with another {@link #source()}. */
    public Topology withSource(String newSource) {
        return new Topology(devices, links, nics, fabric, newSource);
    }

    /**
     * A cluster: {@code nodes} copies of a one-node topology, joined by {@link LinkKind#NET} links
     * over NIC rails. Device {@code i} of node {@code k} gets index {@code k * m + i} (m devices per
     * node). Rail-aligned: every GPU with a NIC (a NIC whose {@link Nic#nearestDevice()} is that
     * GPU) gets a NET link to the GPU of the same local index on every other node, with count =
     * its NICs and gbps = the smaller end's NIC bandwidth (NIC gbps, or {@code nicGbps} where a NIC's
     * is unknown). A node without NICs is given one per GPU ("nic0", "nic1", ...) of {@code
     * nicGbps}. GPUs without a NIC get no NET links: their traffic must go through a peer.
     *
     * @param node a one-node topology
     * @param nodes number of nodes, at least 1
     * @param nicGbps bandwidth of one NIC per direction, GB/s (400 Gb/s = 50)
     */
    public static Topology cluster(Topology node, int nodes, double nicGbps) {
        if (node.nodeCount() != 1) {
            throw new IllegalArgumentException("cluster needs a one-node topology, got " + node.nodeCount() + " nodes");
        }
        if (nodes < 1) {
            throw new IllegalArgumentException("cluster needs at least 1 node, got " + nodes);
        }
        if (!(nicGbps > 0)) {
            throw new IllegalArgumentException("NIC bandwidth must be positive, got " + nicGbps);
        }
        int m = node.deviceCount();
        List<Nic> nodeNics = new ArrayList<>(node.nics());
        if (nodeNics.isEmpty()) {
            for (int i = 0; i < m; i++) {
                nodeNics.add(new Nic("nic" + i, 0, i, nicGbps));
            }
        }
        int[] railCount = new int[m];
        double[] railGbps = new double[m];
        for (Nic nic : nodeNics) {
            Integer d = nic.nearestDevice();
            if (d != null) {
                railCount[d]++;
                railGbps[d] += nic.gbps() > 0 ? nic.gbps() : nicGbps;
            }
        }
        List<Device> devices = new ArrayList<>();
        List<Link> links = new ArrayList<>();
        List<Nic> nics = new ArrayList<>();
        for (int k = 0; k < nodes; k++) {
            int base = k * m;
            for (Device d : node.devices()) {
                devices.add(new Device(base + d.index(), d.name(), d.pciBusId(), d.numaNode(), d.memoryBytes(), k));
            }
            for (Link l : node.links()) {
                links.add(new Link(base + l.from(), base + l.to(), l.kind(), l.count(), l.gbps(), l.pcieLevel()));
            }
            for (Nic nic : nodeNics) {
                Integer d = nic.nearestDevice();
                nics.add(new Nic(nic.name(), k, d == null ? null : base + d, nic.gbps() > 0 ? nic.gbps() : nicGbps));
            }
        }
        for (int a = 0; a < nodes; a++) {
            for (int b = 0; b < nodes; b++) {
                if (a == b) {
                    continue;
                }
                for (int i = 0; i < m; i++) {
                    if (railCount[i] > 0) {
                        links.add(new Link(a * m + i, b * m + i, LinkKind.NET, railCount[i], railGbps[i], null));
                    }
                }
            }
        }
        String src = "cluster(" + nodes + "x " + node.source() + ")";
        return nodes == 1 ? new Topology(devices, links, nics, node.fabric(), src) : of(devices, links, nics, src);
    }

    /**
     * Most virtual CPU ranks: each is a thread of this JVM, and the all-to-all model holds n^2 links
     * (a million at this limit).
     */
    public static final int MAX_VIRTUAL_RANKS = 1024;

    /** N virtual ranks on the CPU, every pair joined by in-process copies: the default without GPUs. */
    public static Topology virtualCpu(int ranks) {
        if (ranks < 1 || ranks > MAX_VIRTUAL_RANKS) {
            throw new IllegalArgumentException("virtual rank count must be 1 to " + MAX_VIRTUAL_RANKS + ", got " + ranks);
        }
        List<Device> devices = new ArrayList<>();
        List<Link> links = new ArrayList<>();
        for (int i = 0; i < ranks; i++) {
            devices.add(new Device(i, "cpu", null, -1, 0, 0));
            for (int j = 0; j < ranks; j++) {
                if (i != j) {
                    links.add(new Link(i, j, LinkKind.HOST_MEMORY, 1, HOST_MEMORY_GBPS, null));
                }
            }
        }
        return new Topology(devices, links, List.of(), FabricClass.NONE, "virtual-cpu");
    }

    public int deviceCount() {
        return devices.size();
    }

    public List<Device> devices() {
        return devices;
    }

    public List<Link> links() {
        return links;
    }

    public List<Nic> nics() {
        return nics;
    }

    public FabricClass fabric() {
        return fabric;
    }

    /** Where this topology came from: "virtual-cpu", "json:FILE", "nvml", "nvidia-smi", ... */
    public String source() {
        return source;
    }

    /**
     * The part of this topology that joins {@code ranks} (distinct device indices): device {@code ranks[i]}
     * becomes device {@code i}, with the links among them; nodes are renumbered in order of first use and NICs
     * kept for the devices kept. Used for the plan over the ranks that share a head subset in a hybrid.
     */
    public Topology restrictedTo(int[] ranks) {
        int[] newIndex = new int[devices.size()];
        java.util.Arrays.fill(newIndex, -1);
        java.util.Map<Integer, Integer> nodes = new java.util.LinkedHashMap<>();
        List<Device> kept = new ArrayList<>();
        for (int i = 0; i < ranks.length; i++) {
            int r = ranks[i];
            if (r < 0 || r >= devices.size() || newIndex[r] >= 0) {
                throw new IllegalArgumentException("ranks " + java.util.Arrays.toString(ranks) + " must be distinct devices of "
                        + devices.size());
            }
            newIndex[r] = i;
            Device d = devices.get(r);
            int node = nodes.computeIfAbsent(d.node(), k -> nodes.size());
            kept.add(new Device(i, d.name(), d.pciBusId(), d.numaNode(), d.memoryBytes(), node));
        }
        List<Link> keptLinks = new ArrayList<>();
        for (Link l : links) {
            if (newIndex[l.from()] >= 0 && newIndex[l.to()] >= 0) {
                keptLinks.add(new Link(newIndex[l.from()], newIndex[l.to()], l.kind(), l.count(), l.gbps(), l.pcieLevel()));
            }
        }
        List<Nic> keptNics = new ArrayList<>();
        for (Nic n : nics) {
            if (n.nearestDevice() != null && newIndex[n.nearestDevice()] >= 0) {
                int d = newIndex[n.nearestDevice()];
                keptNics.add(new Nic(n.name(), kept.get(d).node(), d, n.gbps()));
            }
        }
        return Topology.of(kept, keptLinks, keptNics, source + " ranks " + java.util.Arrays.toString(ranks));
    }

    /** Number of nodes (machines). */
    public int nodeCount() {
        return devices.stream().mapToInt(Device::node).max().orElse(-1) + 1;
    }

    /** The link from one device to another, if they are directly connected. */
    public Optional<Link> link(int from, int to) {
        return Optional.ofNullable(linkMatrix[from][to]);
    }

    /** Links leaving a device. */
    public List<Link> linksFrom(int from) {
        List<Link> out = new ArrayList<>();
        for (Link l : linkMatrix[from]) {
            if (l != null) {
                out.add(l);
            }
        }
        return out;
    }

    /** Devices of one node, in index order. */
    public List<Device> devicesOnNode(int node) {
        return devices.stream().filter(d -> d.node() == node).toList();
    }

    /**
     * Upper bound on what a device can send per direction at once, GB/s, summed over all its
     * links. Links of one kind that share a port count once, at the fastest such link:
     * NVSWITCH (all peers behind one switch share the GPU's NVLinks), PCIE (one x16 port), NET
     * (one rail NIC set) and HOST_MEMORY. Direct NVLINK and XGMI links are separate wires and add
     * up. Example: 8x H100 NVSwitch: 450 GB/s, though each of the 7 links also says 450; DGX-1 V100:
     * 6 x 25 = 150 over NVLink plus 12 over PCIe.
     */
    public double egressGbps(int device) {
        return portSum(linksFrom(device));
    }

    /** Like {@link #egressGbps(int)} for what a device can receive at once. */
    public double ingressGbps(int device) {
        List<Link> in = new ArrayList<>();
        for (Link[] row : linkMatrix) {
            if (row[device] != null) {
                in.add(row[device]);
            }
        }
        return portSum(in);
    }

    private static double portSum(List<Link> ls) {
        double direct = 0;
        double[] shared = new double[LinkKind.values().length];
        for (Link l : ls) {
            switch (l.kind()) {
                case NVLINK, XGMI -> direct += l.gbps();
                default -> shared[l.kind().ordinal()] = Math.max(shared[l.kind().ordinal()], l.gbps());
            }
        }
        double sum = direct;
        for (double s : shared) {
            sum += s;
        }
        return sum;
    }

    /** Adjacency matrix: {@code [i][j]} is true when a link runs from i to j. */
    public boolean[][] adjacency() {
        int n = deviceCount();
        boolean[][] a = new boolean[n][n];
        for (Link l : links) {
            a[l.from()][l.to()] = true;
        }
        return a;
    }

    @Override
    public String toString() {
        return "Topology{" + deviceCount() + " devices, " + nodeCount() + " node(s), fabric " + fabric
                + ", source " + source + "}";
    }
}
