package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import org.testng.annotations.Test;

/** {@code tasp bench} runs every strategy on virtual ranks and reports the measured ratio (not timed here). */
public class BenchCommandTest {

    @Test
    public void reportsEveryStrategyAndTheCommRatio() {
        CliRun run = CliRun.of("bench", "--gpus", "3", "--seq", "96", "--heads", "2", "--kv-heads", "1",
                "--head-dim", "8", "--repeats", "1", "--link-gbps", "5");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        for (String s : new String[] {"ring ", "zigzag ", "tasp ", "direct "}) {
            assertTrue(out.contains("\n" + s), "missing row " + s + " in\n" + out);
        }
        assertTrue(out.matches("(?s).*comm ratio tasp/ring = [0-9.]+ \\(ideal 1/2 = 0\\.500\\).*"), out);
    }

    @Test
    public void backwardReportsTheBackwardCommRatio() {
        CliRun run = CliRun.of("bench", "--gpus", "3", "--seq", "96", "--heads", "2", "--kv-heads", "1",
                "--head-dim", "8", "--repeats", "1", "--link-gbps", "5", "--strategies", "ring,tasp", "--backward");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        assertTrue(out.contains("forward plus backward"), out);
        assertTrue(out.matches("(?s).*backward comm ratio tasp/ring = [0-9.]+ \\(ideal 1/2 = 0\\.500\\).*"), out);
    }

    @Test
    public void rejectsASingleRank() {
        assertEquals(CliRun.of("bench", "--gpus", "1").exit(), 2);
    }
}
