package io.github.taspdjl.topology;

import java.util.ArrayList;
import java.util.List;

/**
 * Turns devices and a matrix of {@link Connection}s into a {@link Topology}: tells NVSwitch from
 * direct NVLink, estimates bandwidth with a {@link BandwidthTable} and classifies the fabric. Pure:
 * every detector and parser ends here, so they all agree on these rules.
 *
 * <p>Switch rule: nvidia-smi shows NV# for every pair behind NVSwitches (NV18 on H100, NV12 on
 * A100), which would be more links than the GPU has. If the NV# counts of a GPU summed over its
 * peers exceed its NVLink count ({@link BandwidthTable.Entry#nvlinkLinks()}), its NVLink cells are
 * a switch: every pair involving it becomes {@link LinkKind#NVSWITCH} with the count unchanged (the
 * GPU's links into the switch), and the bandwidth is the GPU's aggregate.
 */
public final class TopologyAssembler {

    private TopologyAssembler() {}

    /**
     * Builds the topology.
     *
     * @param devices the GPUs, indexed 0..n-1, all on node 0
     * @param cells {@code cells[i][j]}: what connects i to j; null on the diagonal (and only there)
     * @param nics NICs of the node
     * @param table bandwidth figures
     * @param source where the facts came from
     * @throws IllegalArgumentException when the matrix is not n x n, has a hole or is not symmetric
     */
    public static Topology assemble(
            List<Device> devices, Connection[][] cells, List<Nic> nics, BandwidthTable table, String source) {
        int n = devices.size();
        if (cells.length != n) {
            throw new IllegalArgumentException("connection matrix has " + cells.length + " rows for " + n + " devices");
        }
        for (int i = 0; i < n; i++) {
            if (cells[i].length != n) {
                throw new IllegalArgumentException("connection matrix row " + i + " has " + cells[i].length
                        + " cells for " + n + " devices");
            }
            for (int j = 0; j < n; j++) {
                if ((i == j) != (cells[i][j] == null)) {
                    throw new IllegalArgumentException(i == j
                            ? "device " + i + " has a connection to itself: " + cells[i][j]
                            : "no connection given from device " + i + " to device " + j);
                }
                if (i < j && !cells[i][j].equals(cells[j][i])) {
                    throw new IllegalArgumentException("connection matrix is not symmetric: " + i + "->" + j + " is "
                            + cells[i][j] + " but " + j + "->" + i + " is " + cells[j][i]);
                }
            }
        }
        boolean[] switched = new boolean[n];
        for (int i = 0; i < n; i++) {
            int sum = 0;
            for (int j = 0; j < n; j++) {
                if (i != j && cells[i][j].kind() == LinkKind.NVLINK) {
                    sum += cells[i][j].count();
                }
            }
            switched[i] = sum > table.entry(generation(devices.get(i))).nvlinkLinks();
        }
        List<Link> links = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                if (i == j) {
                    continue;
                }
                Connection c = cells[i][j];
                LinkKind kind = c.kind();
                if (kind == LinkKind.NVLINK && (switched[i] || switched[j])) {
                    kind = LinkKind.NVSWITCH;
                }
                double gbps = table.gbps(kind, c.count(), generation(devices.get(i)), generation(devices.get(j)));
                links.add(new Link(i, j, kind, c.count(), gbps, c.pcieLevel()));
            }
        }
        return Topology.of(devices, links, nics, source);
    }

    /** The generation of a device from its name. */
    public static GpuGeneration generation(Device d) {
        return GpuGeneration.fromName(d.name());
    }
}
