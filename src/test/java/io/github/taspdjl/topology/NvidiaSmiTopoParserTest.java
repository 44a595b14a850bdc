package io.github.taspdjl.topology;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertNull;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import java.util.ArrayList;
import java.util.List;
import org.testng.annotations.Test;

public class NvidiaSmiTopoParserTest {

    private static final String LEGEND = "\nLegend:\n\n  X    = Self\n  NV#  = Connection traversing a bonded set of # NVLinks\n";

    private static List<GpuInfo> named(int n, String name) {
        List<GpuInfo> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(new GpuInfo(i, name, null, 0));
        }
        return out;
    }

    @Test
    public void rawH100OutputWithAnsiCodesIsAnNvSwitchWithRailNics() {
        Topology t = NvidiaSmiTopoParser.parse(Fixtures.read("nvidia-smi-h100-nvswitch-raw.txt"),
                named(8, "NVIDIA H100 80GB HBM3"), BandwidthTable.defaults());
        assertEquals(t.deviceCount(), 8);
        assertEquals(t.fabric(), FabricClass.NVSWITCH);
        assertEquals(t.source(), "nvidia-smi");
        Link l = t.link(2, 6).orElseThrow();
        assertEquals(l.kind(), LinkKind.NVSWITCH);
        assertEquals(l.count(), 18);
        assertEquals(l.gbps(), 450.0);
        assertEquals(t.egressGbps(2), 450.0);
        assertEquals(t.nics().size(), 8);
        for (int k = 0; k < 8; k++) {
            assertEquals(t.nics().get(k).name(), "mlx5_" + k);
            assertEquals(t.nics().get(k).nearestDevice(), Integer.valueOf(k));
        }
        // NUMA affinity column, with the GPU NUMA ID N/A after an extra tab.
        assertEquals(t.devices().get(1).numaNode(), 0);
        assertEquals(t.devices().get(5).numaNode(), 1);
        assertEquals(t.devices().get(5).name(), "NVIDIA H100 80GB HBM3");
    }

    @Test
    public void nvSwitchIsDetectedFromCountsEvenWithoutGpuNames() {
        Topology t = NvidiaSmiTopoParser.parse(Fixtures.read("nvidia-smi-h100-nvswitch-raw.txt"));
        assertEquals(t.fabric(), FabricClass.NVSWITCH);
        assertEquals(t.devices().get(0).name(), "GPU0");
    }

    @Test
    public void spacesCopyOfDgx1WithHcaColumnsAndOldLegendIsTheHybridCubeMesh() {
        Topology t = NvidiaSmiTopoParser.parse(Fixtures.read("nvidia-smi-dgx1-v100-spaces.txt"),
                named(8, "Tesla V100-SXM2-32GB"), BandwidthTable.defaults());
        assertEquals(t.fabric(), FabricClass.NVLINK_PARTIAL);
        Topology preset = TopologyPresets.dgx1V100();
        for (int i = 0; i < 8; i++) {
            for (int j = 0; j < 8; j++) {
                if (i == j) {
                    continue;
                }
                Link a = t.link(i, j).orElseThrow();
                Link b = preset.link(i, j).orElseThrow();
                assertEquals(a.kind(), b.kind(), i + "->" + j);
                assertEquals(a.count(), b.count(), i + "->" + j);
                assertEquals(a.gbps(), b.gbps(), i + "->" + j);
                assertEquals(a.pcieLevel(), b.pcieLevel(), i + "->" + j); // SOC read as SYS
            }
        }
        // Raw HCA names as columns, no NIC legend: the column name is the NIC name.
        assertEquals(t.nics().stream().map(Nic::name).toList(), List.of("mlx5_0", "mlx5_2", "mlx5_1", "mlx5_3"));
        // Each NIC is PIX to two GPUs: ties go to the first GPU of the pair.
        assertEquals(t.nics().stream().map(Nic::nearestDevice).toList(), List.of(0, 2, 4, 6));
        assertEquals(t.devices().get(0).numaNode(), -1); // no NUMA column in old output
    }

    @Test
    public void nicColumnsWithoutLegendKeepTheirColumnNames() {
        Topology t = NvidiaSmiTopoParser.parse(Fixtures.read("nvidia-smi-a100-nvswitch-nolegend.txt"),
                named(8, "NVIDIA A100-SXM4-80GB"), BandwidthTable.defaults());
        assertEquals(t.fabric(), FabricClass.NVSWITCH);
        assertEquals(t.link(0, 7).orElseThrow().gbps(), 12 * 25.0);
        assertEquals(t.nics().get(0).name(), "NIC0");
        assertEquals(t.nics().get(1).name(), "NIC1");
        // NIC0 is PXB to GPUs 0-3: shared switch, goes to GPU0; NIC1 to GPU4.
        assertEquals(t.nics().get(0).nearestDevice(), Integer.valueOf(0));
        assertEquals(t.nics().get(1).nearestDevice(), Integer.valueOf(4));
        assertEquals(t.devices().get(0).numaNode(), 3);
        assertEquals(t.devices().get(7).numaNode(), 1);
    }

    @Test
    public void oneGpuWithEmptyCpuAffinityAndNaNuma() {
        Topology t = NvidiaSmiTopoParser.parse(Fixtures.read("nvidia-smi-one-gpu.txt"));
        assertEquals(t.deviceCount(), 1);
        assertEquals(t.fabric(), FabricClass.SINGLE);
        assertTrue(t.links().isEmpty());
        assertEquals(t.devices().get(0).numaNode(), -1);
    }

    @Test
    public void pcieOnlyBoxKeepsEveryLevel() {
        Topology t = NvidiaSmiTopoParser.parse(Fixtures.read("nvidia-smi-pcie-4.txt"));
        assertEquals(t.fabric(), FabricClass.PCIE);
        assertEquals(t.link(0, 1).orElseThrow().pcieLevel(), PcieLevel.PIX);
        assertEquals(t.link(2, 0).orElseThrow().pcieLevel(), PcieLevel.PXB);
        assertEquals(t.link(1, 2).orElseThrow().pcieLevel(), PcieLevel.PHB);
        assertEquals(t.link(3, 1).orElseThrow().pcieLevel(), PcieLevel.NODE);
        assertEquals(t.link(0, 3).orElseThrow().pcieLevel(), PcieLevel.SYS);
        assertEquals(t.devices().get(3).numaNode(), 1);
        assertTrue(t.nics().isEmpty());
    }

    @Test
    public void fourA100WithNv4AreDirectLinksNotASwitch() {
        // 3 peers x 4 = 12 links: exactly what an A100 has, so direct links.
        Topology t = NvidiaSmiTopoParser.parse(Fixtures.read("nvidia-smi-a100-4-nv4.txt"),
                named(4, "NVIDIA A100-SXM4-40GB"), BandwidthTable.defaults());
        assertEquals(t.fabric(), FabricClass.NVLINK_FULL_MESH);
        assertEquals(t.link(1, 3).orElseThrow().kind(), LinkKind.NVLINK);
        assertEquals(t.link(1, 3).orElseThrow().gbps(), 100.0);
        assertEquals(t.egressGbps(1), 300.0);
    }

    @Test
    public void h100NvlPairIsDirect() {
        Topology t = NvidiaSmiTopoParser.parse(Fixtures.read("nvidia-smi-h100-nvl-pair.txt"),
                named(2, "NVIDIA H100 NVL"), BandwidthTable.defaults());
        assertEquals(t.fabric(), FabricClass.NVLINK_FULL_MESH);
        assertEquals(t.link(0, 1).orElseThrow().count(), 12);
        assertEquals(t.link(0, 1).orElseThrow().gbps(), 300.0);
    }

    @Test
    public void everyNvCountFromOneToEighteenIsReadAsThatManyLinks() {
        for (int k = 1; k <= 18; k++) {
            String text = "\tGPU0\tGPU1\tGPU2\tCPU Affinity\n"
                    + "GPU0\t X \tNV" + k + "\tSYS\t0-7\n"
                    + "GPU1\tNV" + k + "\t X \tSYS\t0-7\n"
                    + "GPU2\tSYS\tSYS\t X \t0-7\n" + LEGEND;
            Topology t = NvidiaSmiTopoParser.parse(text, named(3, "NVIDIA H100 80GB HBM3"), BandwidthTable.defaults());
            Link l = t.link(0, 1).orElseThrow();
            assertEquals(l.count(), k);
            assertEquals(l.kind(), LinkKind.NVLINK, "NV" + k);
            assertEquals(l.gbps(), 25.0 * k);
            assertEquals(t.fabric(), FabricClass.NVLINK_PARTIAL);
        }
    }

    @Test
    public void twoToEightGpusOfNvSwitchAreClassifiedBySize() {
        for (int n = 2; n <= 8; n++) {
            StringBuilder b = new StringBuilder();
            for (int j = 0; j < n; j++) {
                b.append('\t').append("GPU").append(j);
            }
            b.append("\tCPU Affinity\tNUMA Affinity\n");
            for (int i = 0; i < n; i++) {
                b.append("GPU").append(i);
                for (int j = 0; j < n; j++) {
                    b.append('\t').append(i == j ? " X " : "NV18");
                }
                b.append("\t0-31\t0\n");
            }
            Topology t = NvidiaSmiTopoParser.parse(b + LEGEND, named(n, "NVIDIA H100 80GB HBM3"), BandwidthTable.defaults());
            assertEquals(t.deviceCount(), n);
            // With two GPUs, 18 links to one peer fit the GPU: indistinguishable from direct links.
            assertEquals(t.fabric(), n == 2 ? FabricClass.NVLINK_FULL_MESH : FabricClass.NVSWITCH, "n=" + n);
            assertEquals(t.links().size(), n * (n - 1));
        }
    }

    @Test
    public void queryGpuCsvGivesNamesBusIdsAndMemory() {
        List<GpuInfo> g = NvidiaSmiTopoParser.parseQueryGpu(
                "0, NVIDIA H100 80GB HBM3, 00000000:18:00.0, 81559\n1, NVIDIA H100 80GB HBM3, 00000000:2A:00.0, 81559\n");
        assertEquals(g.size(), 2);
        assertEquals(g.get(1).pciBusId(), "00000000:2A:00.0");
        assertEquals(g.get(0).memoryBytes(), 81559L * 1024 * 1024);
        TopologyParseException e = expectThrows(TopologyParseException.class,
                () -> NvidiaSmiTopoParser.parseQueryGpu("0, H100, 00:18.0, 81559\nfoo\n"));
        assertEquals(e.line(), 2);
    }

    @Test
    public void unknownCellNamesItsLine() {
        String text = "\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tNVX\t0-7\nGPU1\tNVX\t X \t0-7\n";
        TopologyParseException e = expectThrows(TopologyParseException.class, () -> NvidiaSmiTopoParser.parse(text));
        assertEquals(e.line(), 2);
        assertTrue(e.getMessage().contains("NVX") && e.getMessage().contains("line 2"), e.getMessage());
    }

    @Test
    public void malformedInputsAreRejectedNotGuessed() {
        // Not symmetric.
        TopologyParseException e = expectThrows(TopologyParseException.class, () -> NvidiaSmiTopoParser.parse(
                "\tGPU0\tGPU1\nGPU0\t X \tNV2\nGPU1\tNV1\t X \n"));
        assertEquals(e.line(), 3);
        // Missing row.
        e = expectThrows(TopologyParseException.class, () -> NvidiaSmiTopoParser.parse(
                "\tGPU0\tGPU1\nGPU0\t X \tNV2\n" + LEGEND));
        assertTrue(e.getMessage().contains("GPU1"), e.getMessage());
        // A row that is not a column.
        e = expectThrows(TopologyParseException.class, () -> NvidiaSmiTopoParser.parse(
                "\tGPU0\tGPU1\nGPU0\t X \tNV2\nGPU7\tNV2\t X \n"));
        assertEquals(e.line(), 3);
        // Too few cells.
        e = expectThrows(TopologyParseException.class, () -> NvidiaSmiTopoParser.parse(
                "\tGPU0\tGPU1\nGPU0\t X \nGPU1\tNV2\t X \n"));
        assertEquals(e.line(), 2);
        // Something that is not nvidia-smi output at all.
        e = expectThrows(TopologyParseException.class, () -> NvidiaSmiTopoParser.parse("hello world\n"));
        assertEquals(e.line(), 1);
        e = expectThrows(TopologyParseException.class, () -> NvidiaSmiTopoParser.parse(""));
        assertTrue(e.getMessage().contains("no header"), e.getMessage());
        // X off the diagonal.
        e = expectThrows(TopologyParseException.class, () -> NvidiaSmiTopoParser.parse(
                "\tGPU0\tGPU1\nGPU0\t X \t X \nGPU1\tNV2\t X \n"));
        assertEquals(e.line(), 2);
    }

    @Test
    public void nicEquallyFarFromSeveralGpusHasNoRail() {
        String text = "\tGPU0\tGPU1\tNIC0\tCPU Affinity\n"
                + "GPU0\t X \tNODE\tNODE\t0-7\n"
                + "GPU1\tNODE\t X \tNODE\t0-7\n"
                + "NIC0\tNODE\tNODE\t X \t\n" + LEGEND + "\nNIC Legend:\n\n  NIC0: mlx5_bond_0\n";
        Topology t = NvidiaSmiTopoParser.parse(text);
        assertEquals(t.nics().get(0).name(), "mlx5_bond_0");
        assertNull(t.nics().get(0).nearestDevice());
    }
}
