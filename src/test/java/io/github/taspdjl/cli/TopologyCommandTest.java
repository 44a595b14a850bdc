package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import io.github.taspdjl.topology.BandwidthTable;
import io.github.taspdjl.topology.FabricClass;
import io.github.taspdjl.topology.Topology;
import io.github.taspdjl.topology.TopologyDetector;
import io.github.taspdjl.topology.TopologyJson;
import io.github.taspdjl.topology.TopologyPresets;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.testng.annotations.Test;
import picocli.CommandLine;

public class TopologyCommandTest {

    private record Result(int code, String out, String err) {}

    private static Result run(TopologyCommand cmd, String... args) {
        CommandLine cl = new CommandLine(cmd);
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new Result(code, out.toString(), err.toString());
    }

    private static Path fixture(String name) throws IOException {
        Path p = Files.createTempFile("tasp-topo", ".txt");
        try (InputStream in = TopologyCommandTest.class.getResourceAsStream("/topology/" + name)) {
            Files.write(p, in.readAllBytes());
        }
        p.toFile().deleteOnExit();
        return p;
    }

    @Test
    public void withoutGpuItSaysSoAndShowsTheCpuDefault() {
        TopologyCommand cmd = new TopologyCommand();
        cmd.detector = () -> new TopologyDetector(List.of(
                TopologyDetector.source("nvml", t -> { throw new IllegalStateException("libnvidia-ml.so.1 not found"); })),
                BandwidthTable.defaults(), 8).detect();
        Result r = run(cmd);
        assertEquals(r.code(), 0, r.err());
        assertTrue(r.out().contains("No GPU found"), r.out());
        assertTrue(r.out().contains("nvml: libnvidia-ml.so.1 not found"), r.out());
        assertTrue(r.out().contains("8 virtual ranks, all-to-all"), r.out());
        assertTrue(r.out().contains("fabric NONE"), r.out());
        assertTrue(r.out().contains("CPU7"), r.out());
    }

    @Test
    public void realDetectionOnThisMachineFailsSoftly() {
        // This machine may or may not have a GPU; either way the command must succeed and name a source.
        Result r = run(new TopologyCommand());
        assertEquals(r.code(), 0, r.err());
        assertTrue(r.out().contains("source "), r.out());
    }

    @Test
    public void savedNvidiaSmiOutputPrintsMatrixAndFabric() throws IOException {
        Result r = run(new TopologyCommand(), "--from-nvidia-smi", fixture("nvidia-smi-dgx1-v100-spaces.txt").toString(),
                "--gpu-name", "Tesla V100-SXM2-32GB");
        assertEquals(r.code(), 0, r.err());
        assertTrue(r.out().contains("fabric NVLINK_PARTIAL"), r.out());
        String row0 = r.out().lines().filter(l -> l.startsWith("GPU0 ")).findFirst().orElseThrow();
        assertEquals(row0.trim().split("\\s+"), new String[] {"GPU0", "X", "NV1", "NV1", "NV2", "NV2", "SYS", "SYS", "SYS"});
        assertTrue(r.out().contains("mlx5_2"), r.out());
    }

    @Test
    public void jsonOutputReadsBackThroughFromJson() throws IOException {
        Result r = run(new TopologyCommand(), "--preset", "h100-nvswitch-8", "--json");
        assertEquals(r.code(), 0, r.err());
        Topology t = TopologyJson.read(r.out(), "x", BandwidthTable.defaults());
        assertEquals(t.links(), TopologyPresets.get("h100-nvswitch-8").links());
        Path file = Files.createTempFile("tasp-topo", ".json");
        file.toFile().deleteOnExit();
        Files.writeString(file, r.out(), StandardCharsets.UTF_8);
        Result again = run(new TopologyCommand(), "--from-json", file.toString(), "--json");
        assertEquals(again.code(), 0, again.err());
        Topology back = TopologyJson.read(again.out(), "x", BandwidthTable.defaults());
        assertEquals(back.links(), t.links());
        assertEquals(back.nics(), t.nics());
        assertEquals(back.fabric(), FabricClass.NVSWITCH);
    }

    @Test
    public void amdOutputsAndClustersWork() throws IOException {
        Result r = run(new TopologyCommand(), "--from-rocm-smi", fixture("rocm-smi-two-hives.txt").toString());
        assertEquals(r.code(), 0, r.err());
        assertTrue(r.out().contains("fabric XGMI_PARTIAL"), r.out());
        r = run(new TopologyCommand(), "--from-amd-smi", fixture("amd-smi-mi300x-8.txt").toString(), "--json");
        assertEquals(r.code(), 0, r.err());
        assertTrue(r.out().contains("\"XGMI_FULL_MESH\""), r.out());
        r = run(new TopologyCommand(), "--preset", "mi300x-xgmi-8", "--nodes", "2");
        assertEquals(r.code(), 0, r.err());
        assertTrue(r.out().contains("16 device(s) on 2 node(s), fabric MIXED"), r.out());
        assertTrue(r.out().contains("NET"), r.out());
    }

    @Test
    public void badInputIsAnErrorNamingTheLine() throws IOException {
        Path bad = Files.createTempFile("tasp-topo", ".txt");
        bad.toFile().deleteOnExit();
        Files.writeString(bad, "\tGPU0\tGPU1\nGPU0\t X \tNV2\nGPU1\tNVQ\t X \n");
        Result r = run(new TopologyCommand(), "--from-nvidia-smi", bad.toString());
        assertEquals(r.code(), 2);
        assertTrue(r.err().contains("line 3") && r.err().contains("NVQ"), r.err());
        r = run(new TopologyCommand(), "--preset", "nope");
        assertEquals(r.code(), 2);
        assertTrue(r.err().contains("h100-4node"), r.err());
        r = run(new TopologyCommand(), "--preset", "pcie-8", "--from-json", "x.json");
        assertEquals(r.code(), 2); // picocli: mutually exclusive
    }

    @Test
    public void malformedJsonFileIsOneLineNamingTheLine() throws IOException {
        Path file = Files.createTempFile("tasp-topo", ".json");
        file.toFile().deleteOnExit();
        Files.writeString(file, "{\n  \"schema\": \"x\",\n  oops\n");
        Result r = run(new TopologyCommand(), "--from-json", file.toString());
        assertEquals(r.code(), 2, r.err());
        assertEquals(r.err().strip().lines().count(), 1L, r.err());
        assertTrue(r.err().contains("line 3"), r.err());
    }
}
