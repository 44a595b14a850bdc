package io.github.taspdjl.topology;

/**
 * A directed connection from one device to another. Topologies hold links in both directions.
 *
 * @param from index of the sending device
 * @param to index of the receiving device
 * @param kind what the connection is
 * @param count number of parallel links (NVLink/xGMI lanes; 1 for PCIe, NET and host memory)
 * @param gbps estimated bandwidth from {@code from} to {@code to}, in gigabytes (not bits) per
 *     second, one direction
 * @param pcieLevel for {@link LinkKind#PCIE}, how far the path climbs; null otherwise
 */
public record Link(int from, int to, LinkKind kind, int count, double gbps, PcieLevel pcieLevel) {}
