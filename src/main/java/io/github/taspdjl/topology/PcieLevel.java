package io.github.taspdjl.topology;

/**
 * How far a PCIe path between two devices climbs, as {@code nvidia-smi topo -m} names it, nearest
 * first.
 */
public enum PcieLevel {
    /** At most a single PCIe bridge. */
    PIX,
    /** Multiple PCIe bridges, without the host bridge. */
    PXB,
    /** Through a PCIe host bridge (typically the CPU). */
    PHB,
    /** Across host bridges within one NUMA node. */
    NODE,
    /** Across the SMP interconnect between NUMA nodes (QPI/UPI/Infinity Fabric). */
    SYS
}
