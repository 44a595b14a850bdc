package io.github.taspdjl.plan;

import io.github.taspdjl.topology.Device;
import io.github.taspdjl.topology.FabricClass;
import io.github.taspdjl.topology.Link;
import io.github.taspdjl.topology.LinkKind;
import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.List;

/** Small topologies built by hand for plan tests. */
final class TestTopologies {

    private TestTopologies() {}

    /** n GPUs on a path 0 - 1 - ... - n-1 (both directions): no Hamiltonian cycle for n >= 3. */
    static Topology path(int n) {
        List<Device> devices = new ArrayList<>();
        List<Link> links = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            devices.add(new Device(i, "NVIDIA H100 80GB HBM3", null, -1, 0, 0));
            if (i + 1 < n) {
                links.add(new Link(i, i + 1, LinkKind.NVLINK, 4, 100, null));
                links.add(new Link(i + 1, i, LinkKind.NVLINK, 4, 100, null));
            }
        }
        return new Topology(devices, links, List.of(), FabricClass.NVLINK_PARTIAL, "test:path" + n);
    }

    /** u nodes of m virtual ranks joined rail by rail. */
    static Topology cluster(int m, int u) {
        return Topology.cluster(Topology.virtualCpu(m), u, 50.0);
    }
}
