package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.testng.annotations.Test;

/** {@code tasp attention} and {@code tasp version} run end to end on the CPU. */
public class AttentionCommandTest {

    @Test
    public void attentionReportsASmallErrorAgainstDjl() {
        CliRun run = CliRun.of("attention", "--seq", "96", "--heads", "4", "--kv-heads", "2", "--causal");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        Matcher m = Pattern.compile("max error = ([0-9.eE+-]+)").matcher(out);
        assertTrue(m.find(), out);
        assertTrue(Double.parseDouble(m.group(1)) <= 1e-5, out);
        assertTrue(out.contains("CPU_FLASH"), out);
    }

    @Test
    public void versionNamesLibtorchAndTheFlavor() {
        CliRun run = CliRun.of("version");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        assertTrue(out.contains("DJL             0.36.0"), out);
        assertTrue(out.contains("libtorch        2.7.1"), out);
        assertTrue(out.contains("native flavor   cpu"), out);
    }
}
