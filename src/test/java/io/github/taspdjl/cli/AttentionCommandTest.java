package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.testng.annotations.Test;
import picocli.CommandLine;

/** {@code tasp attention} and {@code tasp version} run end to end on the CPU. */
public class AttentionCommandTest {

    private static String run(int[] exit, String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            exit[0] = new CommandLine(new TaspCli()).execute(args);
        } finally {
            System.setOut(old);
        }
        return buf.toString(StandardCharsets.UTF_8);
    }

    @Test
    public void attentionReportsASmallErrorAgainstDjl() {
        int[] exit = new int[1];
        String out = run(exit, "attention", "--seq", "96", "--heads", "4", "--kv-heads", "2", "--causal");
        assertEquals(exit[0], 0, out);
        Matcher m = Pattern.compile("max error = ([0-9.eE+-]+)").matcher(out);
        assertTrue(m.find(), out);
        assertTrue(Double.parseDouble(m.group(1)) <= 1e-5, out);
        assertTrue(out.contains("CPU_FLASH"), out);
    }

    @Test
    public void versionNamesLibtorchAndTheFlavor() {
        int[] exit = new int[1];
        String out = run(exit, "version");
        assertEquals(exit[0], 0, out);
        assertTrue(out.contains("DJL             0.36.0"), out);
        assertTrue(out.contains("libtorch        2.7.1"), out);
        assertTrue(out.contains("native flavor   cpu"), out);
    }
}
