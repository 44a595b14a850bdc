package io.github.taspdjl.topology;

/**
 * What a topology tool reports for one ordered pair of GPUs, before bandwidth is estimated: the
 * kind, the number of links and, for PCIe, the level. Parsers produce a matrix of these and {@link
 * TopologyAssembler} turns it into a {@link Topology}.
 *
 * @param kind NVLINK for any NV# cell (the assembler decides whether it is really a switch),
 *     NVSWITCH where the source knows it is a switch (NVML), XGMI or PCIE
 * @param count links (NV#, xGMI links); 1 for PCIe
 * @param pcieLevel level for PCIE, null otherwise
 */
public record Connection(LinkKind kind, int count, PcieLevel pcieLevel) {

    public Connection {
        if (kind == null) {
            throw new IllegalArgumentException("connection kind is null");
        }
        if (count < 1) {
            throw new IllegalArgumentException("connection count must be at least 1, got " + count);
        }
        if ((kind == LinkKind.PCIE) != (pcieLevel != null)) {
            throw new IllegalArgumentException("a PCIe level belongs exactly to PCIE connections: " + kind + " " + pcieLevel);
        }
    }

    /** A PCIe connection at a level. */
    public static Connection pcie(PcieLevel level) {
        return new Connection(LinkKind.PCIE, 1, level);
    }

    /** {@code count} NVLink links (direct, or into a switch: the assembler decides). */
    public static Connection nvlink(int count) {
        return new Connection(LinkKind.NVLINK, count, null);
    }

    /** {@code count} xGMI links. */
    public static Connection xgmi(int count) {
        return new Connection(LinkKind.XGMI, count, null);
    }
}
