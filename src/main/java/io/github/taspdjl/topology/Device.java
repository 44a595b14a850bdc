package io.github.taspdjl.topology;

/**
 * One device (a GPU, or a virtual rank on the CPU).
 *
 * @param index global index of the device in its topology, 0-based
 * @param name product name, for example "NVIDIA H100 80GB HBM3"; "cpu" for virtual ranks
 * @param pciBusId PCI bus id such as "00000000:18:00.0", or null when unknown
 * @param numaNode NUMA node of the device, or -1 when unknown
 * @param memoryBytes device memory in bytes, or 0 when unknown
 * @param node index of the machine (node) that holds the device, 0-based
 */
public record Device(int index, String name, String pciBusId, int numaNode, long memoryBytes, int node) {}
