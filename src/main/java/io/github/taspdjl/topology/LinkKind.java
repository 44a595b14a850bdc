package io.github.taspdjl.topology;

/** How two devices are connected. */
public enum LinkKind {
    /** Direct NVLink connections between two GPUs (count = number of links). */
    NVLINK,
    /** NVLink through NVSwitch: every pair reachable at the GPU's aggregate NVLink bandwidth. */
    NVSWITCH,
    /** AMD Infinity Fabric (xGMI) links between two GPUs. */
    XGMI,
    /** PCI Express; {@link Link#pcieLevel()} says how far up the tree the path goes. */
    PCIE,
    /** Network between nodes (InfiniBand, RoCE, Ethernet) through NICs. */
    NET,
    /** In-process copies between virtual ranks in host memory (the CPU default). */
    HOST_MEMORY
}
