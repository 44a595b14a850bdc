package io.github.taspdjl.topology;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertFalse;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.testng.annotations.Test;

public class TopologyDetectorTest {

    @Test
    public void sourcesAreTriedInOrderAndFailuresAreRecorded() {
        TopologyDetector d = new TopologyDetector(List.of(
                TopologyDetector.source("a", t -> { throw new IllegalStateException("no driver"); }),
                TopologyDetector.source("b", t -> null),
                TopologyDetector.source("c", t -> TopologyPresets.pcie8()),
                TopologyDetector.source("d", t -> { throw new AssertionError("must not be reached"); })),
                BandwidthTable.defaults(), 4);
        TopologyDetector.Detection r = d.detect();
        assertTrue(r.gpuFound());
        assertEquals(r.topology().fabric(), FabricClass.PCIE);
        assertEquals(r.attempts(), List.of(new TopologyDetector.Attempt("a", false, "no driver"),
                new TopologyDetector.Attempt("b", false, "not configured"), new TopologyDetector.Attempt("c", true, null)));
    }

    @Test
    public void nothingFoundFallsBackToVirtualCpuRanks() {
        TopologyDetector.Detection r = new TopologyDetector(List.of(
                TopologyDetector.source("x", t -> { throw new UnsatisfiedLinkError("libcuda.so.1"); })),
                BandwidthTable.defaults(), 5).detect();
        assertFalse(r.gpuFound());
        assertEquals(r.topology().deviceCount(), 5);
        assertEquals(r.topology().fabric(), FabricClass.NONE);
        assertEquals(r.topology().source(), "virtual-cpu");
    }

    @Test
    public void standardDetectorReadsNvidiaSmiThroughTheRunner() {
        String topo = Fixtures.read("nvidia-smi-h100-nvswitch-raw.txt");
        TopologyDetector d = TopologyDetector.standard(cmd -> {
            if (cmd.equals(List.of("nvidia-smi", "topo", "-m"))) {
                return topo;
            }
            if (cmd.get(0).equals("nvidia-smi")) {
                StringBuilder b = new StringBuilder();
                for (int i = 0; i < 8; i++) {
                    b.append(i).append(", NVIDIA H100 80GB HBM3, 00000000:1").append(i).append(":00.0, 81559\n");
                }
                return b.toString();
            }
            throw new IOException(cmd.get(0) + " not found");
        });
        TopologyDetector.Detection r = d.detect();
        // NVML is absent on test machines; if a machine has it, NVML answers first and that is fine too.
        if (r.topology().source().equals("nvidia-smi")) {
            assertEquals(r.topology().fabric(), FabricClass.NVSWITCH);
            assertEquals(r.topology().devices().get(3).name(), "NVIDIA H100 80GB HBM3");
            assertEquals(r.topology().devices().get(3).pciBusId(), "00000000:13:00.0");
            assertEquals(r.attempts().get(0).source(), "file");
            assertEquals(r.attempts().get(1).source(), "nvml");
            assertFalse(r.attempts().get(1).found());
        }
    }

    @Test
    public void noToolsAnywhereGivesTheCpuDefault() {
        TopologyDetector.Detection r = TopologyDetector.standard(cmd -> { throw new IOException(cmd.get(0) + " not found"); }).detect();
        if (!r.gpuFound()) {
            assertEquals(r.topology().deviceCount(), TopologyDetector.virtualRanks());
            assertEquals(r.attempts().stream().map(TopologyDetector.Attempt::source).toList(),
                    List.of("file", "nvml", "nvidia-smi", "rocm-smi", "amd-smi", "jcuda"));
            assertTrue(r.attempts().get(2).reason().contains("nvidia-smi not found"), r.attempts().toString());
        }
    }

    @Test
    public void explicitFileWinsAndABadOneIsAnError() throws IOException {
        Path f = Files.createTempFile("tasp-topo", ".json");
        f.toFile().deleteOnExit();
        Files.writeString(f, TopologyJson.write(TopologyPresets.dgx1V100()));
        System.setProperty(TopologyDetector.PROPERTY_FILE, f.toString());
        try {
            TopologyDetector.Detection r = TopologyDetector.standard(cmd -> { throw new AssertionError("not reached"); }).detect();
            assertEquals(r.topology().source(), "json:" + f);
            assertEquals(r.topology().fabric(), FabricClass.NVLINK_PARTIAL);
            Files.writeString(f, "{ nope");
            expectThrows(IllegalArgumentException.class,
                    () -> TopologyDetector.standard(cmd -> { throw new AssertionError("not reached"); }).detect());
        } finally {
            System.clearProperty(TopologyDetector.PROPERTY_FILE);
        }
    }

    @Test
    public void virtualRankSettingIsValidated() {
        System.setProperty(TopologyDetector.PROPERTY_RANKS, "3");
        try {
            assertEquals(TopologyDetector.virtualRanks(), 3);
            System.setProperty(TopologyDetector.PROPERTY_RANKS, "zero");
            expectThrows(IllegalArgumentException.class, TopologyDetector::virtualRanks);
        } finally {
            System.clearProperty(TopologyDetector.PROPERTY_RANKS);
        }
    }

    @Test
    public void nvmlFactsWithSwitchLinksAreAnNvSwitch() {
        List<NvmlFacts.Gpu> gpus = new java.util.ArrayList<>();
        for (int i = 0; i < 4; i++) {
            // 18 links, all to NVSwitch bus ids (not GPUs).
            List<String> remotes = new java.util.ArrayList<>();
            for (int k = 0; k < 18; k++) {
                remotes.add("00000000:0" + (k % 4 + 5) + ":00.0");
            }
            gpus.add(new NvmlFacts.Gpu("NVIDIA H100 80GB HBM3", "00000000:1" + i + ":00.0", 80L << 30, i / 2, remotes));
        }
        int[][] level = new int[4][4];
        Topology t = new NvmlFacts(gpus, level).toTopology(List.of(), BandwidthTable.defaults());
        assertEquals(t.fabric(), FabricClass.NVSWITCH);
        assertEquals(t.link(0, 3).orElseThrow().count(), 18);
        assertEquals(t.link(0, 3).orElseThrow().gbps(), 450.0);
        assertEquals(t.source(), "nvml");
        assertEquals(t.devices().get(3).numaNode(), 1);
    }

    @Test
    public void nvmlFactsWithPeerLinksAreDirectNvlinkAndPcieElsewhere() {
        // GPU0-GPU1 two links, GPU2 none; bus ids in different spellings.
        List<NvmlFacts.Gpu> gpus = List.of(
                new NvmlFacts.Gpu("Tesla V100-SXM2-16GB", "00000000:1A:00.0", 0, -1, List.of("0000:1b:00.0", "0000:1b:00.0")),
                new NvmlFacts.Gpu("Tesla V100-SXM2-16GB", "00000000:1B:00.0", 0, -1, List.of("00000000:1A:00.0", "00000000:1a:00.0")),
                new NvmlFacts.Gpu("Tesla V100-SXM2-16GB", "00000000:88:00.0", 0, -1, List.of()));
        int[][] level = {{0, 10, 50}, {10, 0, 50}, {50, 50, 0}};
        Topology t = new NvmlFacts(gpus, level).toTopology(List.of(), BandwidthTable.defaults());
        assertEquals(t.link(0, 1).orElseThrow().kind(), LinkKind.NVLINK);
        assertEquals(t.link(0, 1).orElseThrow().count(), 2);
        assertEquals(t.link(0, 2).orElseThrow().pcieLevel(), PcieLevel.SYS);
        assertEquals(t.fabric(), FabricClass.NVLINK_PARTIAL);
        assertEquals(NvmlFacts.level(20), PcieLevel.PXB);
        assertEquals(NvmlFacts.level(30), PcieLevel.PHB);
        assertEquals(NvmlFacts.level(40), PcieLevel.NODE);
    }

    @Test
    public void sysfsPathsGiveRails() {
        List<String> gpus = List.of(
                "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0/0000:03:00.0",
                "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0/0000:04:00.0",
                "/sys/devices/pci0000:80/0000:80:01.0/0000:81:00.0/0000:82:00.0/0000:83:00.0");
        Map<String, String> nics = new java.util.LinkedHashMap<>();
        nics.put("mlx5_0", "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:02.0/0000:05:00.0");
        nics.put("mlx5_1", "/sys/devices/pci0000:80/0000:80:01.0/0000:81:00.0/0000:82:01.0/0000:84:00.0");
        nics.put("mlx5_2", "/sys/devices/pci0000:40/0000:40:01.0/0000:41:00.0");
        List<Nic> r = NvmlFacts.nicRails(nics, gpus);
        assertEquals(r.get(0).nearestDevice(), Integer.valueOf(0)); // tie with GPU1 under one switch
        assertEquals(r.get(1).nearestDevice(), Integer.valueOf(2));
        assertEquals(r.get(2).nearestDevice(), null); // own root complex: equally far from all
    }

    @Test
    public void jcudaPeerAccessIsReadConservatively() {
        List<GpuInfo> g = List.of(new GpuInfo(0, "NVIDIA A100-SXM4-40GB", "0000:07:00.0", 40L << 30),
                new GpuInfo(1, "NVIDIA A100-SXM4-40GB", "0000:0f:00.0", 40L << 30));
        Topology t = JCudaDetector.interpret(g, new boolean[][] {{false, true}, {true, false}}, BandwidthTable.defaults());
        assertEquals(t.link(0, 1).orElseThrow().pcieLevel(), PcieLevel.PHB);
        assertEquals(t.source(), "jcuda");
        t = JCudaDetector.interpret(g, new boolean[][] {{false, true}, {false, false}}, BandwidthTable.defaults());
        assertEquals(t.link(1, 0).orElseThrow().pcieLevel(), PcieLevel.SYS);
    }

    @Test
    public void bandwidthOverridesApplyAndBadKeysAreErrors() {
        Properties p = new Properties();
        p.setProperty("H100.pcieGbps", "40");
        p.setProperty("net.nicGbps", "25");
        p.setProperty("mi300x.xgmiGbpsPerLink", "48");
        BandwidthTable t = BandwidthTable.defaults().withOverrides(p);
        assertEquals(t.entry(GpuGeneration.H100).pcieGbps(), 40.0);
        assertEquals(t.nicGbps(), 25.0);
        assertEquals(t.gbps(LinkKind.XGMI, 2, GpuGeneration.MI300X, GpuGeneration.MI300X), 96.0);
        assertEquals(t.entry(GpuGeneration.A100).pcieGbps(), 25.0);
        Properties bad = new Properties();
        bad.setProperty("H100.speed", "1");
        assertTrue(expectThrows(IllegalArgumentException.class, () -> BandwidthTable.defaults().withOverrides(bad))
                .getMessage().contains("H100.speed"));
        Properties nan = new Properties();
        nan.setProperty("A100.pcieGbps", "fast");
        assertTrue(expectThrows(IllegalArgumentException.class, () -> BandwidthTable.defaults().withOverrides(nan))
                .getMessage().contains("fast"));
        assertEquals(GpuGeneration.fromName("NVIDIA GH200 480GB"), GpuGeneration.H200);
        assertEquals(GpuGeneration.fromName("NVIDIA B200"), GpuGeneration.B200);
        assertEquals(GpuGeneration.fromName("AMD Instinct MI300X"), GpuGeneration.MI300X);
        assertEquals(GpuGeneration.fromName(null), GpuGeneration.UNKNOWN);
    }
}
