package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import org.testng.annotations.Test;

/**
 * {@code tasp bench} runs every strategy on virtual ranks and reports medians, spreads, the measured ratio
 * and a verdict (speeds are measured by the bench, never asserted here).
 */
public class BenchCommandTest {

    @Test
    public void reportsEveryStrategyWithMedianAndSpreadAndAVerdict() {
        CliRun run = CliRun.of("bench", "--gpus", "3", "--seq", "96", "--heads", "2", "--kv-heads", "1",
                "--head-dim", "8", "--repeats", "3", "--link-gbps", "5");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        for (String s : new String[] {"ring ", "zigzag ", "tasp ", "direct "}) {
            assertTrue(out.contains("\n" + s), "missing row " + s + " in\n" + out);
        }
        // every cell is "median [min-max]"
        assertTrue(out.matches("(?s).*\ntasp\\s+2\\s+3(\\s+[0-9.]+ \\[[0-9.]+-[0-9.]+\\]){4}\n.*"), out);
        assertTrue(out.contains("3 interleaved repetitions"), out);
        assertTrue(out.matches("(?s).*comm ratio tasp/ring = [0-9.]+ \\(medians; ideal 1/2 = 0\\.500\\).*"), out);
        assertTrue(out.matches("(?s).*\nfaster: (ring|tasp) \\(median total .*"), out);
        // ulysses is in the default list, but 2 heads do not divide among 3 ranks: it says so and runs the rest
        assertTrue(out.contains("skipped ulysses: 2 query heads do not divide among its Ulysses degree 3"), out);
    }

    @Test
    public void measuresUlyssesAndAHybridBesideRingAndTasp() {
        CliRun run = CliRun.of("bench", "--gpus", "4", "--seq", "96", "--heads", "4", "--kv-heads", "2",
                "--head-dim", "8", "--repeats", "1", "--link-gbps", "5", "--strategies", "ring,tasp,ulysses,hybrid");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        // ulysses: no cycles, one attention step between its two all-to-alls
        assertTrue(out.matches("(?s).*\nulysses\\s+0\\s+3(\\s+[0-9.]+ \\[[0-9.]+-[0-9.]+\\]){4}\n.*"), out);
        assertTrue(out.matches("(?s).*\nhybrid 2x\\S+\\s+\\d+\\s+4(\\s+[0-9.]+ \\[[0-9.]+-[0-9.]+\\]){4}\n.*"), out);
    }

    @Test
    public void comparesRanksWithOneDeviceWithoutLinkEmulation() {
        CliRun run = CliRun.of("bench", "--gpus", "4", "--seq", "128", "--heads", "2", "--kv-heads", "2",
                "--head-dim", "8", "--repeats", "1", "--link-gbps", "0", "--single", "--strategies", "tasp");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        assertTrue(out.contains("no link emulation"), out);
        assertTrue(out.contains("\none device "), out);
        assertTrue(out.matches("(?s).*\ntasp on 4 ranks / one device = [0-9.]+x .*; process CPU time ([0-9.]+x|not measurable) .*"), out);
        assertTrue(out.matches("(?s).*\nload average \\(1 min\\) [0-9.-]+ before, [0-9.-]+ after.*"), out);
        assertEquals(CliRun.of("bench", "--link-gbps", "-1").exit(), 2);
    }

    @Test
    public void backwardReportsTheBackwardCommRatio() {
        CliRun run = CliRun.of("bench", "--gpus", "3", "--seq", "96", "--heads", "2", "--kv-heads", "1",
                "--head-dim", "8", "--repeats", "1", "--link-gbps", "5", "--strategies", "ring,tasp", "--backward");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        assertTrue(out.contains("forward plus backward"), out);
        assertTrue(out.matches("(?s).*backward comm ratio tasp/ring = [0-9.]+ \\(medians; ideal 1/2 = 0\\.500\\).*"), out);
    }

    @Test
    public void medianAndVerdictFollowTheNumbers() {
        assertEquals(BenchCommand.median(new double[] {5, 1, 3}), 3.0);
        assertEquals(BenchCommand.median(new double[] {4, 1, 3, 2}), 2.5);
        assertEquals(BenchCommand.cell(new double[] {2, 1, 3}), "2.0 [1.0-3.0]");
        String clear = BenchCommand.verdict("ring", new double[] {10, 11, 12}, "tasp", new double[] {5, 6, 7});
        assertTrue(clear.startsWith("faster: tasp (median total 6.0 ms against ring's 11.0 ms, 1.83x)"), clear);
        assertTrue(clear.contains("every repetition of tasp beat every repetition of ring"), clear);
        String close = BenchCommand.verdict("ring", new double[] {10, 11, 12}, "tasp", new double[] {9, 11.5, 13});
        assertTrue(close.startsWith("faster: ring") && close.contains("ranges overlap"), close);
    }

    @Test
    public void rejectsASingleRankAndAnswersHelp() {
        assertEquals(CliRun.of("bench", "--gpus", "1").exit(), 2);
        CliRun help = CliRun.of("bench", "--help");
        assertEquals(help.exit(), 0);
        assertTrue(help.out().contains("--repeats"), help.out());
    }
}
