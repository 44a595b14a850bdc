package io.github.taspdjl.topology;

/** The shape of the GPU interconnect as a whole; it decides which plans make sense. */
public enum FabricClass {
    /** No GPU: virtual ranks on the CPU. */
    NONE,
    /** One device. */
    SINGLE,
    /** All GPUs behind NVSwitches: a complete graph limited by each GPU's aggregate bandwidth. */
    NVSWITCH,
    /** Direct NVLink between every pair of GPUs. */
    NVLINK_FULL_MESH,
    /** Direct NVLink between some pairs only (for example the DGX-1 hybrid cube mesh). */
    NVLINK_PARTIAL,
    /** Direct xGMI between every pair of GPUs (for example 8x MI300X). */
    XGMI_FULL_MESH,
    /** xGMI between some pairs only (for example two xGMI groups joined by PCIe). */
    XGMI_PARTIAL,
    /** PCIe only. */
    PCIE,
    /** Several nodes, or a mix that none of the above describes. */
    MIXED
}
