package io.github.taspdjl.topology;

/**
 * A network interface of a node, for traffic between nodes.
 *
 * @param name device name such as "mlx5_0"
 * @param node index of the node that holds it
 * @param nearestDevice index of the GPU it is closest to (its rail), or null when unknown
 * @param gbps bandwidth in gigabytes per second per direction, or 0 when unknown
 */
public record Nic(String name, int node, Integer nearestDevice, double gbps) {}
