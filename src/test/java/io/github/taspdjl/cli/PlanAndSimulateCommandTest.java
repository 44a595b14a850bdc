package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
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

    /**
     * {@code --programs}: a token-chunk plan writes each rank's program over its shard; a hybrid writes its inner
     * plan's programs lifted to world ranks, each over its group's inner shard and exchanging only with ranks of its
     * own member (it was refused); Ulysses writes no programs and says why. Each program's header names its world
     * rank and the tokens it runs over.
     */
    @Test
    public void planProgramsCoverTokenChunkHybridAndUlyssesPlans() throws Exception {
        Path dir = Files.createTempDirectory("tasp-programs");
        dir.toFile().deleteOnExit();
        int seq = 1000;
        Path ring = dir.resolve("ring.json");
        Result r = run(new PlanCommand(), "--gpus", "4", "--strategy", "ring", "--seq", "" + seq, "--programs", ring.toString());
        assertEquals(r.code(), 0, r.err());
        assertTrue(r.out().contains("programs: " + ring + ": each rank's program and return map"), r.out());
        JsonObject o = readJson(ring);
        long[][][] shards = ranges(o.getAsJsonArray("shards"));
        assertPartition(shards, seq, "ring shards");
        assertPrograms(o, 4, shards, 1);
        assertTrue(o.get("headParallel") == null, o.toString());

        Path hybrid = dir.resolve("hybrid.json");
        r = run(new PlanCommand(), "--gpus", "8", "--strategy", "hybrid", "--ulysses-degree", "2", "--inner", "tasp",
                "--heads", "8", "--kv-heads", "2", "--causal", "--seq", "" + seq, "--programs", hybrid.toString());
        assertEquals(r.code(), 0, r.err());
        o = readJson(hybrid);
        assertTrue(r.out().contains("programs: " + hybrid + ": the inner " + o.getAsJsonObject("headParallel").get("inner")
                .getAsString() + " plan's programs and return maps lifted to the 8 world ranks"), r.out());
        assertPartition(ranges(o.getAsJsonArray("shards")), seq, "hybrid shards");
        JsonObject hp = o.getAsJsonObject("headParallel");
        assertEquals(hp.get("degree").getAsInt(), 2);
        assertEquals(hp.get("innerWorldSize").getAsInt(), 4);
        JsonArray ranks = hp.getAsJsonArray("ranks");
        long[][][] tokens = new long[8][][];
        for (int w = 0; w < 8; w++) {
            JsonObject rank = ranks.get(w).getAsJsonObject();
            assertEquals(rank.get("group").getAsInt(), w / 2, "groups of 2 consecutive ranks");
            assertEquals(rank.get("member").getAsInt(), w % 2);
            int member = w % 2;
            assertEquals(rank.getAsJsonArray("queryHeads").toString(), "[" + 4 * member + "," + (4 * member + 4) + "]");
            assertEquals(rank.getAsJsonArray("kvHeads").toString(), "[" + member + "," + (member + 1) + "]");
            JsonArray t = new JsonArray();
            t.add(rank.getAsJsonArray("tokens"));
            tokens[w] = ranges(t)[0];
        }
        for (int member = 0; member < 2; member++) { // each member's copy of the inner plan covers the sequence
            assertPartition(new long[][][] {tokens[member], tokens[2 + member], tokens[4 + member], tokens[6 + member]}, seq,
                    "member " + member + "'s inner shards");
        }
        assertPrograms(o, 8, tokens, 2);

        Path ulysses = dir.resolve("ulysses.json");
        r = run(new PlanCommand(), "--gpus", "4", "--strategy", "ulysses", "--heads", "8", "--kv-heads", "2", "--seq", "" + seq,
                "--json", "--programs", ulysses.toString());
        assertEquals(r.code(), 0, r.err());
        assertEquals(JsonParser.parseString(r.out()).getAsJsonObject().get("worldSize").getAsInt(), 4, "stdout stays JSON");
        assertTrue(r.err().contains("programs: " + ulysses + ": no programs (ulysses attends locally: "), r.err());
        o = readJson(ulysses);
        assertTrue(o.get("programs") == null && o.get("returnMaps") == null, o.toString());
        assertTrue(o.get("note").getAsString().contains("no programs"), o.toString());
        assertPartition(ranges(o.getAsJsonArray("shards")), seq, "ulysses shards");
        for (var rank : o.getAsJsonObject("headParallel").getAsJsonArray("ranks")) {
            assertEquals(rank.getAsJsonObject().getAsJsonArray("tokens").toString(), "[[0," + seq + "]]", "whole sequence");
        }
    }

    private static JsonObject readJson(Path p) throws java.io.IOException {
        return JsonParser.parseString(Files.readString(p, StandardCharsets.UTF_8)).getAsJsonObject();
    }

    private static long[][][] ranges(JsonArray perRank) {
        return new com.google.gson.Gson().fromJson(perRank, long[][][].class);
    }

    /** The ranges of all ranks together tile [0, seq) exactly. */
    private static void assertPartition(long[][][] perRank, long seq, String what) {
        List<long[]> all = new ArrayList<>();
        for (long[][] rs : perRank) {
            all.addAll(List.of(rs));
        }
        all.sort(Comparator.comparingLong(x -> x[0]));
        long pos = 0;
        for (long[] x : all) {
            assertEquals(x[0], pos, what);
            assertTrue(x[1] > x[0], what);
            pos = x[1];
        }
        assertEquals(pos, seq, what);
    }

    /**
     * Each rank's program (native/src/executor.h) names its rank and the world, runs over its tokens (queries and
     * keys/values), and sends to and receives from only ranks of its own member ({@code rank % degree}); some send.
     * One return map per rank.
     */
    private static void assertPrograms(JsonObject o, int world, long[][][] tokens, int degree) {
        long[][] programs = new com.google.gson.Gson().fromJson(o.getAsJsonArray("programs"), long[][].class);
        assertEquals(programs.length, world);
        assertEquals(o.getAsJsonArray("returnMaps").size(), world);
        int sends = 0;
        for (int r = 0; r < world; r++) {
            long[] w = programs[r];
            long local = 0;
            for (long[] x : tokens[r]) {
                local += x[1] - x[0];
            }
            assertEquals(w[2], r, "program's rank");
            assertEquals(w[3], world, "program's world");
            assertEquals(w[5], local, "rank " + r + "'s query tokens");
            assertEquals(w[6], local, "rank " + r + "'s key/value tokens");
            int i = 8;
            for (long s = 0; s < w[4]; s++) {
                long ns = w[i];
                long nr = w[i + 1];
                long nt = w[i + 2];
                i += 3;
                for (long x = 0; x < ns + nr; x++) {
                    long peer = w[i];
                    assertTrue(peer != r && peer % degree == r % degree, "rank " + r + " exchanges with rank " + peer);
                    i += x < ns ? 6 : 4;
                    sends += x < ns ? 1 : 0;
                }
                i += (int) (6 * nt);
            }
            assertEquals(i, w.length, "rank " + r + "'s program ends with its steps");
        }
        assertTrue(sends > 0, "no rank sends anything");
    }
}
