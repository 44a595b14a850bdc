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

    /** N virtual ranks on the CPU, every pair joined by in-process copies: the default without GPUs. */
    public static Topology virtualCpu(int ranks) {
        if (ranks < 1) {
            throw new IllegalArgumentException("virtual rank count must be at least 1, got " + ranks);
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
