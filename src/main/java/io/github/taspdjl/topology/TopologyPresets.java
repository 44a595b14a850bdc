package io.github.taspdjl.topology;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Named example machines for planning and tests, built with the default {@link BandwidthTable}:
 *
 * <ul>
 *   <li>{@code h100-nvswitch-8}: 8x H100 SXM (80 GB) behind NVSwitch, NV18 per pair, one 400 Gb/s
 *       NIC per GPU (mlx5_0..7, rail i nearest GPU i).
 *   <li>{@code mi300x-xgmi-8}: 8x MI300X (192 GB), one xGMI link between every pair.
 *   <li>{@code h100-2node}, {@code h100-4node}: 2 or 4 copies of {@code h100-nvswitch-8} joined
 *       rail-aligned by NET links at 50 GB/s (400 Gb/s).
 *   <li>{@code dgx1-v100}: 8x V100 SXM2 (32 GB), the DGX-1 hybrid cube mesh (NV1/NV2, 6 links per
 *       GPU), PCIe SYS between the pairs without NVLink.
 *   <li>{@code pcie-8}: 8 PCIe Gen4 GPUs (L40S-like, 48 GB), two per PCIe switch (PIX), four per
 *       socket (NODE), SYS across sockets.
 * </ul>
 *
 * Source of each: {@code preset:NAME}.
 */
public final class TopologyPresets {

    private static final long GIB = 1L << 30;
    private static final Map<String, Supplier<Topology>> PRESETS = new LinkedHashMap<>();

    static {
        PRESETS.put("h100-nvswitch-8", TopologyPresets::h100NvSwitch8);
        PRESETS.put("mi300x-xgmi-8", TopologyPresets::mi300xXgmi8);
        PRESETS.put("h100-2node", () -> h100Nodes(2));
        PRESETS.put("h100-4node", () -> h100Nodes(4));
        PRESETS.put("dgx1-v100", TopologyPresets::dgx1V100);
        PRESETS.put("pcie-8", TopologyPresets::pcie8);
    }

    private TopologyPresets() {}

    /** Preset names, in a stable order. */
    public static List<String> names() {
        return Collections.unmodifiableList(new ArrayList<>(PRESETS.keySet()));
    }

    /**
     * The preset of that name (case-insensitive).
     *
     * @throws IllegalArgumentException naming the known presets when there is none of that name
     */
    public static Topology get(String name) {
        Supplier<Topology> s = name == null ? null : PRESETS.get(name.toLowerCase(Locale.ROOT));
        if (s == null) {
            throw new IllegalArgumentException("unknown topology preset '" + name + "'; known: " + names());
        }
        return s.get();
    }

    /** 8x H100 SXM behind NVSwitch with one 400 Gb/s NIC per GPU. */
    public static Topology h100NvSwitch8() {
        String[] bus = {"18", "2a", "3a", "5d", "9a", "ab", "ba", "db"};
        List<Device> devices = new ArrayList<>();
        List<Nic> nics = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            devices.add(new Device(i, "NVIDIA H100 80GB HBM3", "00000000:" + bus[i] + ":00.0", i < 4 ? 0 : 1, 80 * GIB, 0));
            nics.add(new Nic("mlx5_" + i, 0, i, 50.0));
        }
        return uniform(devices, Connection.nvlink(18), nics, "preset:h100-nvswitch-8");
    }

    /** 8x MI300X, xGMI full mesh, one link per pair. */
    public static Topology mi300xXgmi8() {
        String[] bus = {"0c", "22", "38", "5c", "9f", "af", "bf", "df"};
        List<Device> devices = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            devices.add(new Device(i, "AMD Instinct MI300X", "0000:" + bus[i] + ":00.0", i < 4 ? 0 : 1, 192 * GIB, 0));
        }
        return uniform(devices, Connection.xgmi(1), List.of(), "preset:mi300x-xgmi-8");
    }

    /** {@code nodes} x 8 H100 (NVSwitch), one 400 Gb/s NIC per GPU, rail-aligned. */
    public static Topology h100Nodes(int nodes) {
        return Topology.cluster(h100NvSwitch8(), nodes, 50.0).withSource("preset:h100-" + nodes + "node");
    }

    /** DGX-1 with V100: the hybrid cube mesh. */
    public static Topology dgx1V100() {
        int[][] nv = {
            {0, 1, 1, 2, 2, 0, 0, 0},
            {1, 0, 2, 1, 0, 2, 0, 0},
            {1, 2, 0, 2, 0, 0, 1, 0},
            {2, 1, 2, 0, 0, 0, 0, 1},
            {2, 0, 0, 0, 0, 1, 1, 2},
            {0, 2, 0, 0, 1, 0, 2, 1},
            {0, 0, 1, 0, 1, 2, 0, 2},
            {0, 0, 0, 1, 2, 1, 2, 0},
        };
        List<Device> devices = new ArrayList<>();
        Connection[][] cells = new Connection[8][8];
        for (int i = 0; i < 8; i++) {
            devices.add(new Device(i, "Tesla V100-SXM2-32GB", String.format("00000000:%02x:00.0", 0x06 + 0x10 * i),
                    i < 4 ? 0 : 1, 32 * GIB, 0));
            for (int j = 0; j < 8; j++) {
                if (i != j) {
                    cells[i][j] = nv[i][j] > 0 ? Connection.nvlink(nv[i][j]) : Connection.pcie(PcieLevel.SYS);
                }
            }
        }
        return TopologyAssembler.assemble(devices, cells, List.of(), BandwidthTable.defaults(), "preset:dgx1-v100");
    }

    /** 8 PCIe Gen4 GPUs: pairs on a switch, four per socket. */
    public static Topology pcie8() {
        List<Device> devices = new ArrayList<>();
        Connection[][] cells = new Connection[8][8];
        for (int i = 0; i < 8; i++) {
            devices.add(new Device(i, "NVIDIA L40S", String.format("00000000:%02x:00.0", 0x1b + 0x10 * i),
                    i < 4 ? 0 : 1, 48 * GIB, 0));
            for (int j = 0; j < 8; j++) {
                if (i == j) {
                    continue;
                }
                PcieLevel level = i / 2 == j / 2 ? PcieLevel.PIX : i / 4 == j / 4 ? PcieLevel.NODE : PcieLevel.SYS;
                cells[i][j] = Connection.pcie(level);
            }
        }
        return TopologyAssembler.assemble(devices, cells, List.of(), BandwidthTable.defaults(), "preset:pcie-8");
    }

    private static Topology uniform(List<Device> devices, Connection c, List<Nic> nics, String source) {
        int n = devices.size();
        Connection[][] cells = new Connection[n][n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                cells[i][j] = i == j ? null : c;
            }
        }
        return TopologyAssembler.assemble(devices, cells, nics, BandwidthTable.defaults(), source);
    }
}
