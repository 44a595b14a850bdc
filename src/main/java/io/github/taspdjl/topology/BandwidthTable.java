package io.github.taspdjl.topology;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;

/**
 * Estimated link bandwidth, in gigabytes per second per direction, by link kind, link count and GPU
 * generation. These are nominal figures from vendor data sheets (see docs/TOPOLOGY.md for each
 * source); measured throughput is lower, and the plan's cost model may scale them.
 *
 * <p>Defaults (per direction):
 *
 * <ul>
 *   <li>NVLink: 20 GB/s per link on P100 (4 links), 25 GB/s per link on V100 (6), A100 (12), H100
 *       and H200 (18), 50 GB/s per link on B200 (18).
 *   <li>xGMI: 64 GB/s per link on MI300X (7 links to peers); 50 GB/s for unknown AMD parts.
 *   <li>PCIe x16, effective: Gen3 12, Gen4 25, Gen5 50 GB/s; the generation follows the GPU.
 *   <li>NET: 50 GB/s, a 400 Gb/s NIC.
 *   <li>HOST_MEMORY: {@link Topology#HOST_MEMORY_GBPS}.
 * </ul>
 *
 * <p>Override: point the system property {@code tasp.bandwidth} or the environment variable {@code
 * TASP_BANDWIDTH} at a properties file. Keys are {@code GENERATION.field} with the fields {@code
 * nvlinkLinks}, {@code nvlinkGbpsPerLink}, {@code xgmiLinks}, {@code xgmiGbpsPerLink}, {@code
 * pcieGbps}, plus {@code net.nicGbps} and {@code hostMemory.gbps}; for example {@code
 * H100.pcieGbps=40}. Unknown keys and bad numbers are errors, not silently ignored.
 */
public final class BandwidthTable {

    /** System property naming a bandwidth override file. */
    public static final String PROPERTY = "tasp.bandwidth";
    /** Environment variable naming a bandwidth override file. */
    public static final String ENV = "TASP_BANDWIDTH";

    /**
     * The interconnect figures of one GPU generation.
     *
     * @param nvlinkLinks NVLink links per GPU (0 when it has none)
     * @param nvlinkGbpsPerLink GB/s per NVLink link per direction
     * @param xgmiLinks xGMI links per GPU to peers (0 when it has none)
     * @param xgmiGbpsPerLink GB/s per xGMI link per direction
     * @param pcieGbps effective GB/s per direction of the GPU's x16 PCIe port
     */
    public record Entry(
            int nvlinkLinks, double nvlinkGbpsPerLink, int xgmiLinks, double xgmiGbpsPerLink, double pcieGbps) {

        /** Aggregate NVLink bandwidth of one GPU per direction: all links together. */
        public double nvlinkAggregateGbps() {
            return nvlinkLinks * nvlinkGbpsPerLink;
        }
    }

    private static final double PCIE_GEN3 = 12.0;
    private static final double PCIE_GEN4 = 25.0;
    private static final double PCIE_GEN5 = 50.0;

    private final Map<GpuGeneration, Entry> entries;
    private final double nicGbps;
    private final double hostMemoryGbps;

    private BandwidthTable(Map<GpuGeneration, Entry> entries, double nicGbps, double hostMemoryGbps) {
        this.entries = new EnumMap<>(entries);
        this.nicGbps = nicGbps;
        this.hostMemoryGbps = hostMemoryGbps;
    }

    /** The built-in table, without any override. */
    public static BandwidthTable defaults() {
        Map<GpuGeneration, Entry> m = new EnumMap<>(GpuGeneration.class);
        m.put(GpuGeneration.P100, new Entry(4, 20.0, 0, 0, PCIE_GEN3));
        m.put(GpuGeneration.V100, new Entry(6, 25.0, 0, 0, PCIE_GEN3));
        m.put(GpuGeneration.A100, new Entry(12, 25.0, 0, 0, PCIE_GEN4));
        m.put(GpuGeneration.H100, new Entry(18, 25.0, 0, 0, PCIE_GEN5));
        m.put(GpuGeneration.H200, new Entry(18, 25.0, 0, 0, PCIE_GEN5));
        m.put(GpuGeneration.B200, new Entry(18, 50.0, 0, 0, PCIE_GEN5));
        m.put(GpuGeneration.MI300X, new Entry(0, 0, 7, 64.0, PCIE_GEN5));
        // Unknown parts: the largest NVLink count known (18) so that the switch test never calls
        // direct links a switch, NVLink 2-4's 25 GB/s per link, MI200-class xGMI, PCIe Gen4.
        m.put(GpuGeneration.UNKNOWN, new Entry(18, 25.0, 8, 50.0, PCIE_GEN4));
        return new BandwidthTable(m, 50.0, Topology.HOST_MEMORY_GBPS);
    }

    /**
     * The table this process uses: the defaults with the override file named by {@value #PROPERTY}
     * or {@value #ENV} applied, when one is set.
     *
     * @throws IllegalArgumentException when the override file cannot be read or holds a bad entry
     */
    public static BandwidthTable load() {
        String file = System.getProperty(PROPERTY);
        if (file == null || file.isBlank()) {
            file = System.getenv(ENV);
        }
        if (file == null || file.isBlank()) {
            return defaults();
        }
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(Path.of(file), StandardCharsets.UTF_8)) {
            p.load(r);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read bandwidth override file " + file + ": " + e.getMessage(), e);
        }
        return defaults().withOverrides(p);
    }

    /** This table with the given properties applied (format in the class comment). */
    public BandwidthTable withOverrides(Properties p) {
        Map<GpuGeneration, Entry> m = new EnumMap<>(entries);
        double nic = nicGbps;
        double host = hostMemoryGbps;
        for (String key : p.stringPropertyNames()) {
            String value = p.getProperty(key).trim();
            double v;
            try {
                v = Double.parseDouble(value);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("bandwidth override " + key + "=" + value + " is not a number", e);
            }
            if (v < 0 || Double.isNaN(v) || Double.isInfinite(v)) {
                throw new IllegalArgumentException("bandwidth override " + key + "=" + value + " must be >= 0");
            }
            if (key.equals("net.nicGbps")) {
                nic = v;
                continue;
            }
            if (key.equals("hostMemory.gbps")) {
                host = v;
                continue;
            }
            int dot = key.indexOf('.');
            GpuGeneration g;
            try {
                g = dot < 0 ? null : GpuGeneration.valueOf(key.substring(0, dot).toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                g = null;
            }
            if (g == null) {
                throw new IllegalArgumentException("unknown bandwidth override key " + key);
            }
            Entry e = m.get(g);
            String field = key.substring(dot + 1);
            e = switch (field) {
                case "nvlinkLinks" -> new Entry((int) v, e.nvlinkGbpsPerLink(), e.xgmiLinks(), e.xgmiGbpsPerLink(), e.pcieGbps());
                case "nvlinkGbpsPerLink" -> new Entry(e.nvlinkLinks(), v, e.xgmiLinks(), e.xgmiGbpsPerLink(), e.pcieGbps());
                case "xgmiLinks" -> new Entry(e.nvlinkLinks(), e.nvlinkGbpsPerLink(), (int) v, e.xgmiGbpsPerLink(), e.pcieGbps());
                case "xgmiGbpsPerLink" -> new Entry(e.nvlinkLinks(), e.nvlinkGbpsPerLink(), e.xgmiLinks(), v, e.pcieGbps());
                case "pcieGbps" -> new Entry(e.nvlinkLinks(), e.nvlinkGbpsPerLink(), e.xgmiLinks(), e.xgmiGbpsPerLink(), v);
                default -> throw new IllegalArgumentException("unknown bandwidth override key " + key);
            };
            m.put(g, e);
        }
        return new BandwidthTable(m, nic, host);
    }

    /** The figures of one generation. */
    public Entry entry(GpuGeneration generation) {
        return entries.get(Objects.requireNonNull(generation, "generation"));
    }

    /** Bandwidth of one NIC per direction, used when a NIC's own speed is unknown. */
    public double nicGbps() {
        return nicGbps;
    }

    /** Bandwidth of in-process copies between virtual ranks. */
    public double hostMemoryGbps() {
        return hostMemoryGbps;
    }

    /**
     * Estimated bandwidth per direction of a link from a GPU of generation {@code from} to one of
     * generation {@code to}.
     *
     * <ul>
     *   <li>NVLINK: count x per-link figure of the sender.
     *   <li>NVSWITCH: count x per-link figure, where count is the sender's links into the switch
     *       (nvidia-smi's NV#): the GPU's aggregate. It cannot send that much to every peer at once;
     *       {@link Topology#egressGbps(int)} gives the limit.
     *   <li>XGMI: count x per-link figure.
     *   <li>PCIE: the slower of the two ports (the level does not change the estimate; it is kept
     *       on the link for the cost model).
     *   <li>NET: {@link #nicGbps()} x count. HOST_MEMORY: {@link #hostMemoryGbps()}.
     * </ul>
     */
    public double gbps(LinkKind kind, int count, GpuGeneration from, GpuGeneration to) {
        if (count < 1) {
            throw new IllegalArgumentException("link count must be at least 1, got " + count + " for " + kind);
        }
        Entry f = entry(from);
        Entry t = entry(to);
        return switch (kind) {
            case NVLINK, NVSWITCH -> count * f.nvlinkGbpsPerLink();
            case XGMI -> count * f.xgmiGbpsPerLink();
            case PCIE -> Math.min(f.pcieGbps(), t.pcieGbps());
            case NET -> count * nicGbps;
            case HOST_MEMORY -> hostMemoryGbps;
        };
    }
}
