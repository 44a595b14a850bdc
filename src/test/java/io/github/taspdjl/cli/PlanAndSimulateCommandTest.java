package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import com.google.gson.JsonParser;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine;
import org.testng.annotations.Test;

/** {@code tasp plan} and {@code tasp simulate} through picocli, output captured. */
public class PlanAndSimulateCommandTest {

    private record Result(int code, String out, String err) {}

    private static Result run(Object command, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(command);
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new Result(code, out.toString(), err.toString());
    }

    @Test
    public void planPrintsCyclesStepsAndVerdict() {
        Result r = run(new PlanCommand(), "--gpus", "5", "--strategy", "tasp");
        assertEquals(r.code(), 0, r.err());
        assertTrue(r.out().contains("cycles: 4"), r.out());
        assertTrue(r.out().contains("step 4: 0 transfer(s)"), r.out());
        assertTrue(r.out().contains("validator: valid"), r.out());
    }

    @Test
    public void planForFourGpusNamesTheDirectFallback() {
        Result r = run(new PlanCommand(), "--gpus", "4", "--strategy", "tasp", "--causal");
        assertEquals(r.code(), 0, r.err());
        assertTrue(r.out().contains("direct all-to-all"), r.out());
        assertTrue(r.out().contains("plan: tasp-causal"), r.out());
    }

    @Test
    public void planJsonHasTheDocumentedTopLevelFields() {
        Result r = run(new PlanCommand(), "--gpus", "16", "--nodes", "2", "--strategy", "tasp-hier", "--json");
        assertEquals(r.code(), 0, r.err());
        var o = JsonParser.parseString(r.out()).getAsJsonObject();
        assertEquals(o.get("worldSize").getAsInt(), 16);
        assertEquals(o.get("strategy").getAsString(), "tasp-hier");
        assertEquals(o.getAsJsonArray("cycles").size(), 8);
        assertEquals(o.getAsJsonArray("steps").size(), 16);
    }

    @Test
    public void badPlanInputGivesClearErrors() {
        Result zero = run(new PlanCommand(), "--gpus", "0");
        assertEquals(zero.code(), 2);
        assertTrue(zero.err().contains("--gpus must be at least 1, got 0"), zero.err());
        Result unknown = run(new PlanCommand(), "--gpus", "4", "--strategy", "spiral");
        assertEquals(unknown.code(), 2);
        assertTrue(unknown.err().contains("unknown strategy 'spiral'"), unknown.err());
        Result nodes = run(new PlanCommand(), "--gpus", "6", "--nodes", "4");
        assertEquals(nodes.code(), 2);
        assertTrue(nodes.err().contains("divide --gpus 6"), nodes.err());
    }

    @Test
    public void simulatePrintsSpeedupsForAPreset() {
        Result r = run(new SimulateCommand(), "--preset", "mi300x-xgmi-8", "--seq", "16384", "--heads", "32", "--kv-heads", "32",
                "--head-dim", "128", "--batch", "1");
        assertEquals(r.code(), 0, r.err());
        assertTrue(r.out().contains("ring"), r.out());
        assertTrue(r.out().matches("(?s).*tasp\\s+7\\s+8\\s.*"), r.out());
        // head-parallel rows are listed too; with 32 heads the all-to-all beats every ring step on the mesh
        assertTrue(r.out().matches("(?s).*\nulysses\s+0\s+3\s.*"), r.out());
        assertTrue(r.out().contains("hybrid 4xring"), r.out());
        assertTrue(r.out().contains("auto picks: ulysses"), r.out());
        Result bad = run(new SimulateCommand(), "--preset", "nope", "--seq", "1024");
        assertEquals(bad.code(), 2);
        assertTrue(bad.err().contains("unknown topology preset 'nope'"), bad.err());
    }

    @Test
    public void simulateWritesPngAndSvgCharts() throws Exception {
        Path dir = Files.createTempDirectory("tasp-chart");
        Path png = dir.resolve("s.png");
        Path svg = dir.resolve("s.svg");
        assertEquals(run(new SimulateCommand(), "--preset", "h100-nvswitch-8", "--seq", "65536", "--chart", png.toString()).code(), 0);
        byte[] head = java.util.Arrays.copyOf(Files.readAllBytes(png), 4);
        assertEquals(head, new byte[] {(byte) 0x89, 'P', 'N', 'G'});
        Result r = run(new SimulateCommand(), "--preset", "mi300x-xgmi-8", "--seq", "65536", "--causal", "--chart", svg.toString());
        assertEquals(r.code(), 0, r.err());
        String text = Files.readString(svg, StandardCharsets.UTF_8);
        assertTrue(text.startsWith("<svg") && text.contains("tasp-causal") && text.contains("speedup over zigzag"), text);
        // tasp-causal and direct predict the same time on a complete graph: the legend says so, and the two
        // lines differ in width and dash pattern so neither hides the other
        assertTrue(text.contains("direct (same as tasp-causal)"), text);
        assertTrue(text.contains("stroke-dasharray=\"9 5\""), "the second series is dashed");
    }

    @Test
    public void chartLegendNamesOnlyCurvesThatCoincide() {
        java.util.Map<String, double[]> curves = new java.util.LinkedHashMap<>();
        curves.put("tasp", new double[] {3.0, 2.0, 1.0});
        curves.put("direct", new double[] {3.0, 2.005, 1.0});
        curves.put("tasp-hier", new double[] {2.0, 2.0, 1.0});
        assertEquals(SpeedupChart.legend(curves), java.util.List.of("tasp", "direct (same as tasp)", "tasp-hier"));
    }

    @Test
    public void simulateSaysWhenAProblemIsComputeBoundAndNamesTheBaseline() {
        Result bound = run(new SimulateCommand(), "--preset", "h100-nvswitch-8", "--seq", "1048576", "--causal");
        assertEquals(bound.code(), 0, bound.err());
        assertTrue(bound.out().contains("vs zigzag"), bound.out());
        assertTrue(bound.out().contains("compute-bound: a zigzag step's transfers"), bound.out());
        Result transfer = run(new SimulateCommand(), "--preset", "mi300x-xgmi-8", "--seq", "16384");
        assertEquals(transfer.code(), 0, transfer.err());
        assertTrue(transfer.out().contains("vs ring") && transfer.out().contains("transfer-bound: a ring step"), transfer.out());
        Result missing = run(new SimulateCommand(), "--preset", "mi300x-xgmi-8");
        assertEquals(missing.code(), 2);
        assertTrue(missing.err().contains("--seq"), missing.err());
    }

    @Test
    public void paperGridPrintsAverageAndMaximumNextToThePapersFigures() {
        Result r = run(new SimulateCommand(), "--paper-grid");
        assertEquals(r.code(), 0, r.err());
        assertTrue(r.out().contains("reference grid: 444 problems"), r.out());
        assertTrue(r.out().matches("(?s).*mi300x-xgmi-8: average \\d+\\.\\d\\dx \\(paper 1\\.57x\\), maximum \\d+\\.\\d\\dx \\(paper 3\\.58x\\).*"),
                r.out());
        assertTrue(r.out().matches("(?s).*h100-nvswitch-8: average \\d+\\.\\d\\dx \\(paper 1\\.05x\\), maximum \\d+\\.\\d\\dx \\(paper 2\\.31x\\).*"),
                r.out());
        assertTrue(r.out().contains("pcie-8: average") && !r.out().contains("h100-2node"), r.out());
    }
}
