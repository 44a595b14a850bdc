package io.github.taspdjl.topology;

/**
 * What a query tool reports about one GPU, to complete a matrix that has no names (nvidia-smi topo
 * -m, rocm-smi --showtopo).
 *
 * @param index device index as the tool numbers it
 * @param name product name, or null when unknown
 * @param pciBusId PCI bus id, or null
 * @param memoryBytes memory in bytes, or 0
 */
public record GpuInfo(int index, String name, String pciBusId, long memoryBytes) {}
