package io.github.taspdjl.topology;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertFalse;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import org.testng.annotations.Test;

public class TopologyPresetsTest {

    @Test
    public void h100NvSwitchIsACompleteSwitchAtTheAggregateRate() {
        Topology t = TopologyPresets.get("h100-nvswitch-8");
        assertEquals(t.deviceCount(), 8);
        assertEquals(t.fabric(), FabricClass.NVSWITCH);
        assertEquals(t.links().size(), 8 * 7);
        for (Link l : t.links()) {
            assertEquals(l.kind(), LinkKind.NVSWITCH);
            assertEquals(l.count(), 18);
            assertEquals(l.gbps(), 18 * 25.0);
        }
        // The switch is one port: a GPU cannot send 7 x 450 at once.
        assertEquals(t.egressGbps(3), 450.0);
        assertEquals(t.ingressGbps(3), 450.0);
        assertEquals(t.nics().size(), 8);
        for (int i = 0; i < 8; i++) {
            assertEquals(t.nics().get(i).nearestDevice(), Integer.valueOf(i));
        }
        assertEquals(t.source(), "preset:h100-nvswitch-8");
    }

    @Test
    public void mi300xIsAnXgmiFullMeshWithSevenLinksPerGpu() {
        Topology t = TopologyPresets.get("mi300x-xgmi-8");
        assertEquals(t.fabric(), FabricClass.XGMI_FULL_MESH);
        for (Link l : t.links()) {
            assertEquals(l.kind(), LinkKind.XGMI);
            assertEquals(l.gbps(), 64.0);
        }
        // Direct links add up: 7 peers x 64.
        assertEquals(t.egressGbps(0), 7 * 64.0);
    }

    @Test
    public void dgx1HybridCubeMeshUsesSixLinksPerGpuAndPcieElsewhere() {
        Topology t = TopologyPresets.get("dgx1-v100");
        assertEquals(t.fabric(), FabricClass.NVLINK_PARTIAL);
        for (int i = 0; i < 8; i++) {
            int links = 0;
            int nvPeers = 0;
            for (Link l : t.linksFrom(i)) {
                if (l.kind() == LinkKind.NVLINK) {
                    links += l.count();
                    nvPeers++;
                } else {
                    assertEquals(l.kind(), LinkKind.PCIE);
                    assertEquals(l.pcieLevel(), PcieLevel.SYS);
                }
            }
            assertEquals(links, 6, "GPU " + i);
            assertEquals(nvPeers, 4, "GPU " + i);
            assertEquals(t.egressGbps(i), 6 * 25.0 + 12.0, 1e-9);
        }
        assertEquals(t.link(0, 3).orElseThrow().gbps(), 50.0);
        assertEquals(t.link(0, 5).orElseThrow().kind(), LinkKind.PCIE);
    }

    @Test
    public void pcie8HasLevelsBySwitchAndSocket() {
        Topology t = TopologyPresets.get("pcie-8");
        assertEquals(t.fabric(), FabricClass.PCIE);
        assertEquals(t.link(0, 1).orElseThrow().pcieLevel(), PcieLevel.PIX);
        assertEquals(t.link(0, 2).orElseThrow().pcieLevel(), PcieLevel.NODE);
        assertEquals(t.link(3, 4).orElseThrow().pcieLevel(), PcieLevel.SYS);
        assertEquals(t.link(3, 4).orElseThrow().gbps(), 25.0);
        assertEquals(t.egressGbps(0), 25.0);
    }

    @Test
    public void multiNodePresetsAreRailAlignedClusters() {
        for (int nodes : new int[] {2, 4}) {
            Topology t = TopologyPresets.get("h100-" + nodes + "node");
            assertEquals(t.deviceCount(), 8 * nodes);
            assertEquals(t.nodeCount(), nodes);
            assertEquals(t.fabric(), FabricClass.MIXED);
            assertEquals(t.nics().size(), 8 * nodes);
            int net = 0;
            for (Link l : t.links()) {
                boolean sameNode = l.from() / 8 == l.to() / 8;
                if (l.kind() == LinkKind.NET) {
                    net++;
                    assertFalse(sameNode);
                    assertEquals(l.from() % 8, l.to() % 8, "rail-aligned: " + l);
                    assertEquals(l.gbps(), 50.0);
                } else {
                    assertTrue(sameNode, l.toString());
                    assertEquals(l.kind(), LinkKind.NVSWITCH);
                }
            }
            assertEquals(net, 8 * nodes * (nodes - 1));
            // One NIC per GPU: 450 over the switch plus 50 over the network.
            assertEquals(t.egressGbps(9), 500.0);
            assertEquals(t.devices().get(9).node(), 1);
            assertEquals(t.nics().get(9).nearestDevice(), Integer.valueOf(9));
        }
    }

    @Test
    public void unknownPresetNamesTheKnownOnes() {
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class, () -> TopologyPresets.get("dgx-9"));
        assertTrue(e.getMessage().contains("dgx-9") && e.getMessage().contains("h100-nvswitch-8"), e.getMessage());
        assertEquals(TopologyPresets.names().size(), 6);
    }

    @Test
    public void clusterSynthesizesOneNicPerGpuWhenTheNodeHasNone() {
        Topology t = Topology.cluster(TopologyPresets.get("pcie-8"), 3, 25.0);
        assertEquals(t.nics().size(), 24);
        assertEquals(t.link(2, 18).orElseThrow().kind(), LinkKind.NET);
        assertEquals(t.link(2, 18).orElseThrow().gbps(), 25.0);
        assertTrue(t.link(2, 17).isEmpty());
        expectThrows(IllegalArgumentException.class, () -> Topology.cluster(t, 2, 50));
        expectThrows(IllegalArgumentException.class, () -> Topology.cluster(TopologyPresets.get("pcie-8"), 0, 50));
    }
}
