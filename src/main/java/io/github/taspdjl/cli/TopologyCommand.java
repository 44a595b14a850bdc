package io.github.taspdjl.cli;

import io.github.taspdjl.topology.BandwidthTable;
import io.github.taspdjl.topology.Device;
import io.github.taspdjl.topology.GpuInfo;
import io.github.taspdjl.topology.Link;
import io.github.taspdjl.topology.Nic;
import io.github.taspdjl.topology.AmdSmiTopoParser;
import io.github.taspdjl.topology.NvidiaSmiTopoParser;
import io.github.taspdjl.topology.Topology;
import io.github.taspdjl.topology.TopologyDetector;
import io.github.taspdjl.topology.TopologyJson;
import io.github.taspdjl.topology.TopologyPresets;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.function.Supplier;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code tasp topology}: prints the GPU interconnect of this machine (detected), of a saved tool
 * output, of a JSON file or of a preset, as a readable summary or as JSON.
 */
@Command(
        name = "topology",
        mixinStandardHelpOptions = true,
        description = {
            "Show the GPU interconnect: devices, a link matrix, the fabric class, NICs.",
            "Without a source option it detects this machine (file setting, NVML, nvidia-smi, rocm-smi, amd-smi, JCuda);",
            "with no GPU it shows the CPU default of virtual ranks."
        })
public final class TopologyCommand implements Callable<Integer> {

    /** Where the topology comes from; at most one. */
    static final class From {
        @Option(names = "--from-nvidia-smi", paramLabel = "FILE", description = "Saved output of `nvidia-smi topo -m`.")
        Path nvidiaSmi;

        @Option(names = "--from-rocm-smi", paramLabel = "FILE", description = "Saved output of `rocm-smi --showtopo`.")
        Path rocmSmi;

        @Option(names = "--from-amd-smi", paramLabel = "FILE", description = "Saved output of `amd-smi topology`.")
        Path amdSmi;

        @Option(names = "--from-json", paramLabel = "FILE", description = "A topology JSON file (as --json writes it).")
        Path json;

        @Option(names = "--preset", paramLabel = "NAME", description = "A named preset: ${COMPLETION-CANDIDATES}.",
                completionCandidates = PresetNames.class)
        String preset;
    }

    /** Preset names for the help text. */
    static final class PresetNames extends ArrayList<String> {
        PresetNames() {
            super(TopologyPresets.names());
        }
    }

    @ArgGroup(exclusive = true, multiplicity = "0..1")
    From from;

    @Option(names = "--json", description = "Print the topology as JSON.")
    boolean json;

    @Option(names = "--gpu-name", paramLabel = "NAME",
            description = "Product name of the GPUs in a saved output that has none (e.g. \"NVIDIA H100 80GB HBM3\"); "
                    + "it selects the bandwidth figures.")
    String gpuName;

    @Option(names = "--nodes", paramLabel = "N", defaultValue = "1",
            description = "Show a cluster of N copies of the topology joined rail-aligned by NET links (default: ${DEFAULT-VALUE}).")
    int nodes;

    @Option(names = "--nic-gbps", paramLabel = "GB/s", defaultValue = "50",
            description = "NIC bandwidth per direction for --nodes, GB/s (400 Gb/s = 50; default: ${DEFAULT-VALUE}).")
    double nicGbps;

    @Spec CommandLine.Model.CommandSpec spec;

    /** Detection, replaceable in tests. */
    Supplier<TopologyDetector.Detection> detector = () -> TopologyDetector.standard().detect();

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        Topology t;
        TopologyDetector.Detection detection = null;
        try {
            BandwidthTable table = BandwidthTable.load();
            if (from == null) {
                detection = detector.get();
                t = detection.topology();
            } else if (from.preset != null) {
                t = TopologyPresets.get(from.preset);
            } else if (from.json != null) {
                t = TopologyJson.read(from.json, table);
            } else if (from.nvidiaSmi != null) {
                t = NvidiaSmiTopoParser.parse(read(from.nvidiaSmi), names(64), table)
                        .withSource("nvidia-smi:" + from.nvidiaSmi);
            } else if (from.rocmSmi != null) {
                t = AmdSmiTopoParser.parseRocmSmi(read(from.rocmSmi), names(64), table).withSource("rocm-smi:" + from.rocmSmi);
            } else {
                t = AmdSmiTopoParser.parseAmdSmi(read(from.amdSmi), names(64), table).withSource("amd-smi:" + from.amdSmi);
            }
            if (nodes != 1) {
                t = Topology.cluster(t, nodes, nicGbps);
            }
        } catch (IllegalArgumentException | IOException e) {
            err.println("tasp topology: " + e.getMessage());
            err.flush();
            return 2;
        }
        if (json) {
            out.print(TopologyJson.write(t));
        } else {
            if (detection != null && !detection.gpuFound()) {
                out.println("No GPU found on this machine.");
                for (TopologyDetector.Attempt a : detection.attempts()) {
                    out.println("  " + a.source() + ": " + a.reason());
                }
                out.println("Using the CPU default: " + t.deviceCount() + " virtual ranks, all-to-all over host memory "
                        + "(set " + TopologyDetector.PROPERTY_RANKS + " or " + TopologyDetector.ENV_RANKS + " to change the count).");
                out.println();
            }
            out.print(summary(t));
        }
        out.flush();
        return 0;
    }

    private List<GpuInfo> names(int max) {
        List<GpuInfo> g = new ArrayList<>();
        if (gpuName != null) {
            for (int i = 0; i < max; i++) {
                g.add(new GpuInfo(i, gpuName, null, 0));
            }
        }
        return g;
    }

    private static String read(Path p) throws IOException {
        return Files.readString(p, StandardCharsets.UTF_8);
    }

    /** The readable summary: header, devices, link matrix, bandwidth matrix, NICs. */
    static String summary(Topology t) {
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "Topology: %d device(s) on %d node(s), fabric %s, source %s%n",
                t.deviceCount(), t.nodeCount(), t.fabric(), t.source()));
        b.append("Devices:\n");
        for (Device d : t.devices()) {
            b.append(String.format(Locale.ROOT, "  %-6s node %d  %-26s bus %-17s NUMA %-3s mem %-10s egress %.1f GB/s%n",
                    label(t, d.index()), d.node(), d.name(), d.pciBusId() == null ? "-" : d.pciBusId(),
                    d.numaNode() < 0 ? "-" : Integer.toString(d.numaNode()),
                    d.memoryBytes() == 0 ? "-" : String.format(Locale.ROOT, "%.1f GiB", d.memoryBytes() / (double) (1L << 30)),
                    t.egressGbps(d.index())));
        }
        int n = t.deviceCount();
        if (n > 1) {
            b.append("Links (NV#: direct NVLink, NVS#: NVSwitch with # links, XGMI#, PCIe level, NET, MEM: host memory):\n");
            matrix(b, t, false);
            b.append("GB/s per direction (an NVSwitch GPU shares its egress among all peers):\n");
            matrix(b, t, true);
        }
        if (!t.nics().isEmpty()) {
            b.append("NICs:\n");
            for (Nic nic : t.nics()) {
                b.append(String.format(Locale.ROOT, "  %-12s node %d  nearest %-6s %s%n", nic.name(), nic.node(),
                        nic.nearestDevice() == null ? "-" : label(nic.nearestDevice()),
                        nic.gbps() > 0 ? String.format(Locale.ROOT, "%.1f GB/s", nic.gbps()) : "speed unknown"));
            }
        }
        return b.toString();
    }

    private static void matrix(StringBuilder b, Topology t, boolean gbps) {
        int n = t.deviceCount();
        b.append("        ");
        for (int j = 0; j < n; j++) {
            b.append(String.format("%-7s", label(t, j)));
        }
        b.append('\n');
        for (int i = 0; i < n; i++) {
            b.append(String.format("%-8s", label(t, i)));
            for (int j = 0; j < n; j++) {
                String cell;
                if (i == j) {
                    cell = "X";
                } else {
                    Link l = t.link(i, j).orElse(null);
                    cell = l == null ? "-" : gbps ? String.format(Locale.ROOT, "%.0f", l.gbps()) : kind(l);
                }
                b.append(String.format("%-7s", cell));
            }
            b.append('\n');
        }
    }

    private static String kind(Link l) {
        return switch (l.kind()) {
            case NVLINK -> "NV" + l.count();
            case NVSWITCH -> "NVS" + l.count();
            case XGMI -> "XGMI" + l.count();
            case PCIE -> l.pcieLevel().name();
            case NET -> l.count() == 1 ? "NET" : "NET" + l.count();
            case HOST_MEMORY -> "MEM";
        };
    }

    private static String label(int i) {
        return "GPU" + i;
    }

    private static String label(Topology t, int i) {
        return ("cpu".equals(t.devices().get(i).name()) ? "CPU" : "GPU") + i;
    }
}
