package io.github.taspdjl.topology;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What NVML reports about the GPUs of one machine, and the pure rules that turn it into a {@link
 * Topology}. {@link NvmlDetector} fills it through JNA; tests fill it by hand.
 *
 * @param gpus per GPU, in NVML index order
 * @param commonAncestor {@code [i][j]}: nvmlDeviceGetTopologyCommonAncestor's level (0 internal,
 *     10 single switch, 20 multiple switches, 30 host bridge, 40 NUMA node, 50 system)
 */
public record NvmlFacts(List<Gpu> gpus, int[][] commonAncestor) {

    /**
     * One GPU.
     *
     * @param name product name
     * @param busId PCI bus id, as NVML prints it ("00000000:18:00.0")
     * @param memoryBytes total memory
     * @param numaNode NUMA node, -1 when unknown
     * @param nvlinkRemoteBusIds for each active NVLink, the PCI bus id of the device at its far end
     *     (a GPU, or an NVSwitch)
     */
    public record Gpu(String name, String busId, long memoryBytes, int numaNode, List<String> nvlinkRemoteBusIds) {}

    /**
     * The topology these facts describe. Links to another GPU's bus id are direct NVLink; links to
     * any other device are into an NVSwitch, and two GPUs that both have switch links reach each
     * other through it (count: the fewer of their switch links). Pairs without NVLink are PCIe at
     * the common-ancestor level.
     *
     * @param nics the node's NICs, with rails already decided (see {@link #nicRails})
     */
    public Topology toTopology(List<Nic> nics, BandwidthTable table) {
        int n = gpus.size();
        List<Device> devices = new ArrayList<>();
        int[][] direct = new int[n][n];
        int[] switchLinks = new int[n];
        for (int i = 0; i < n; i++) {
            Gpu g = gpus.get(i);
            devices.add(new Device(i, g.name(), g.busId(), g.numaNode(), g.memoryBytes(), 0));
            for (String remote : g.nvlinkRemoteBusIds()) {
                int peer = -1;
                for (int j = 0; j < n; j++) {
                    if (j != i && sameBus(remote, gpus.get(j).busId())) {
                        peer = j;
                    }
                }
                if (peer >= 0) {
                    direct[i][peer]++;
                } else {
                    switchLinks[i]++;
                }
            }
        }
        Connection[][] cells = new Connection[n][n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                if (i == j) {
                    continue;
                }
                if (switchLinks[i] > 0 && switchLinks[j] > 0) {
                    cells[i][j] = new Connection(LinkKind.NVSWITCH, Math.min(switchLinks[i], switchLinks[j]), null);
                } else if (direct[i][j] > 0 || direct[j][i] > 0) {
                    // Both ends report the same links; take the smaller if one end lost one.
                    cells[i][j] = Connection.nvlink(Math.max(1, Math.min(direct[i][j], direct[j][i])));
                } else {
                    cells[i][j] = Connection.pcie(level(commonAncestor[Math.min(i, j)][Math.max(i, j)]));
                }
            }
        }
        return TopologyAssembler.assemble(devices, cells, nics, table, "nvml");
    }

    /** NVML's nvmlGpuTopologyLevel_t as a PCIe level. */
    static PcieLevel level(int nvmlLevel) {
        if (nvmlLevel <= 10) {
            return PcieLevel.PIX;
        } else if (nvmlLevel <= 20) {
            return PcieLevel.PXB;
        } else if (nvmlLevel <= 30) {
            return PcieLevel.PHB;
        } else if (nvmlLevel <= 40) {
            return PcieLevel.NODE;
        }
        return PcieLevel.SYS;
    }

    /** Whether two PCI bus ids name the same device, whatever the domain width or case. */
    static boolean sameBus(String a, String b) {
        if (a == null || b == null) {
            return false;
        }
        return normalize(a).equals(normalize(b));
    }

    /** "00000000:18:00.0" and "0000:18:00.0" -> "0:18:00.0". */
    static String normalize(String busId) {
        String s = busId.strip().toLowerCase(Locale.ROOT);
        int colon = s.indexOf(':');
        if (colon > 0 && s.indexOf(':', colon + 1) > 0) {
            String domain = s.substring(0, colon).replaceFirst("^0+(?=.)", "");
            return domain + s.substring(colon);
        }
        return "0:" + s;
    }

    /**
     * Rails from sysfs: each NIC's nearest GPU by distance in the PCI tree. Paths are the resolved
     * sysfs device paths, e.g. {@code /sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0}; the
     * distance is the number of tree edges between the two devices. Ties within 4 edges (NIC and
     * GPUs under one PCIe switch) are spread over the GPUs; wider ties leave the rail unknown.
     *
     * @param nicPaths NIC name -> sysfs path, in the order the NICs should be listed
     * @param gpuPaths sysfs path per GPU index
     */
    public static List<Nic> nicRails(Map<String, String> nicPaths, List<String> gpuPaths) {
        List<String> names = new ArrayList<>(nicPaths.keySet());
        int[][] distance = new int[names.size()][gpuPaths.size()];
        for (int k = 0; k < names.size(); k++) {
            String[] a = nicPaths.get(names.get(k)).split("/");
            for (int g = 0; g < gpuPaths.size(); g++) {
                String[] b = gpuPaths.get(g).split("/");
                int common = 0;
                while (common < a.length && common < b.length && a[common].equals(b[common])) {
                    common++;
                }
                distance[k][g] = (a.length - common) + (b.length - common);
            }
        }
        Integer[] rails = RailAssigner.assign(distance, 4);
        List<Nic> out = new ArrayList<>();
        for (int k = 0; k < names.size(); k++) {
            out.add(new Nic(names.get(k), 0, rails[k], 0));
        }
        return out;
    }
}
