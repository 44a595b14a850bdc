package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.testng.annotations.Test;

/** {@code tasp demo} (small settings): the model over 4 virtual ranks agrees with one device. */
public class DemoCommandTest {

    @Test
    public void demoPrintsThePlanTheTimelineAndASmallError() {
        CliRun run = CliRun.of("demo", "--seq", "700", "--ranks", "4", "--layers", "2", "--embedding", "32",
                "--heads", "4");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        for (String part : new String[] {"[1/5] topology", "4 virtual CPU ranks", "tasp-causal over 4 ranks",
            "timeline of the last attention call", "TASP's executor holds", "rank 3 finished", "in one call"}) {
            assertTrue(out.contains(part), "missing '" + part + "' in\n" + out);
        }
        Matcher m = Pattern.compile("max error = ([0-9.eE+-]+)").matcher(out);
        assertTrue(m.find(), out);
        assertTrue(Double.parseDouble(m.group(1)) <= 1e-4, out);
    }
}
