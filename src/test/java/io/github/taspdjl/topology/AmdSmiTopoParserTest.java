package io.github.taspdjl.topology;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import java.util.ArrayList;
import java.util.List;
import org.testng.annotations.Test;

public class AmdSmiTopoParserTest {

    private static List<GpuInfo> mi300x() {
        List<GpuInfo> out = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            out.add(new GpuInfo(i, "AMD Instinct MI300X", null, 192L << 30));
        }
        return out;
    }

    @Test
    public void rocmSmiMi300xIsAnXgmiFullMeshMatchingThePreset() {
        Topology t = AmdSmiTopoParser.parseRocmSmi(Fixtures.read("rocm-smi-mi300x-8.txt"), mi300x(), BandwidthTable.defaults());
        assertEquals(t.fabric(), FabricClass.XGMI_FULL_MESH);
        assertEquals(t.source(), "rocm-smi");
        Topology preset = TopologyPresets.mi300xXgmi8();
        for (Link l : t.links()) {
            Link p = preset.link(l.from(), l.to()).orElseThrow();
            assertEquals(l.kind(), p.kind());
            assertEquals(l.gbps(), p.gbps());
        }
        assertEquals(t.devices().get(5).numaNode(), 1);
        assertEquals(t.devices().get(2).numaNode(), 0);
    }

    @Test
    public void unnamedAmdGpusUseTheConservativeXgmiFigure() {
        Topology t = AmdSmiTopoParser.parseRocmSmi(Fixtures.read("rocm-smi-mi300x-8.txt"));
        assertEquals(t.link(0, 1).orElseThrow().gbps(), 50.0);
    }

    @Test
    public void twoXgmiHivesJoinedByPcieArePartial() {
        Topology t = AmdSmiTopoParser.parseRocmSmi(Fixtures.read("rocm-smi-two-hives.txt"));
        assertEquals(t.fabric(), FabricClass.XGMI_PARTIAL);
        assertEquals(t.link(1, 3).orElseThrow().kind(), LinkKind.XGMI);
        Link cross = t.link(1, 6).orElseThrow();
        assertEquals(cross.kind(), LinkKind.PCIE);
        assertEquals(cross.pcieLevel(), PcieLevel.SYS); // 3 hops: across sockets
    }

    @Test
    public void pcieOnlyWithoutHopsUsesNumaNodes() {
        Topology t = AmdSmiTopoParser.parseRocmSmi(Fixtures.read("rocm-smi-pcie-4-nohops.txt"));
        assertEquals(t.fabric(), FabricClass.PCIE);
        assertEquals(t.link(0, 1).orElseThrow().pcieLevel(), PcieLevel.NODE);
        assertEquals(t.link(0, 2).orElseThrow().pcieLevel(), PcieLevel.SYS);
    }

    @Test
    public void amdSmiTopologyMi300xKeepsBusIds() {
        Topology t = AmdSmiTopoParser.parseAmdSmi(Fixtures.read("amd-smi-mi300x-8.txt"), mi300x(), BandwidthTable.defaults());
        assertEquals(t.fabric(), FabricClass.XGMI_FULL_MESH);
        assertEquals(t.source(), "amd-smi");
        assertEquals(t.devices().get(1).pciBusId(), "0000:22:00.0");
        assertEquals(t.egressGbps(0), 7 * 64.0);
    }

    @Test
    public void malformedAmdOutputNamesTheLine() {
        String bad = Fixtures.read("rocm-smi-mi300x-8.txt").replaceFirst("XGMI", "QPI");
        TopologyParseException e = expectThrows(TopologyParseException.class, () -> AmdSmiTopoParser.parseRocmSmi(bad));
        assertTrue(e.getMessage().contains("QPI"), e.getMessage());
        String[] lines = bad.split("\n");
        assertTrue(lines[e.line() - 1].contains("QPI"), "line " + e.line() + ": " + e.getMessage());

        String shortRow = Fixtures.read("amd-smi-mi300x-8.txt").replaceFirst("(?m)^(0000:22:00.0 ENABLED)\\s+ENABLED", "$1");
        e = expectThrows(TopologyParseException.class, () -> AmdSmiTopoParser.parseAmdSmi(shortRow));
        assertEquals(e.line(), 4);

        e = expectThrows(TopologyParseException.class, () -> AmdSmiTopoParser.parseAmdSmi("hello\n"));
        assertEquals(e.line(), 1);
        e = expectThrows(TopologyParseException.class, () -> AmdSmiTopoParser.parseRocmSmi("=== Numa Nodes ===\n"));
        assertTrue(e.getMessage().contains("Link Type"), e.getMessage());
    }
}
