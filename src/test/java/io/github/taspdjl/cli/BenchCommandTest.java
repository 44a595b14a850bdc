package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.testng.annotations.Test;
import picocli.CommandLine;

/** {@code tasp bench} runs every strategy on virtual ranks and reports the measured ratio (not timed here). */
public class BenchCommandTest {

    @Test
    public void reportsEveryStrategyAndTheCommRatio() {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        int exit;
        try {
            exit = new CommandLine(new TaspCli()).execute("bench", "--gpus", "3", "--seq", "96", "--heads", "2",
                    "--kv-heads", "1", "--head-dim", "8", "--repeats", "1", "--link-gbps", "5");
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        assertEquals(exit, 0, out);
        for (String s : new String[] {"ring ", "zigzag ", "tasp ", "direct "}) {
            assertTrue(out.contains("\n" + s), "missing row " + s + " in\n" + out);
        }
        assertTrue(out.matches("(?s).*comm ratio tasp/ring = [0-9.]+ \\(ideal 1/2 = 0\\.500\\).*"), out);
    }

    @Test
    public void rejectsASingleRank() {
        int exit = TaspCli.commandLine().execute("bench", "--gpus", "1");
        assertEquals(exit, 2);
    }
}
