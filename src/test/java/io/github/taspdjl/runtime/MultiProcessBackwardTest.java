package io.github.taspdjl.runtime;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import io.github.taspdjl.RankJvms;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.testng.annotations.AfterMethod;
import org.testng.annotations.Test;

/**
 * The distributed backward between real processes: 4 JVMs ({@link TcpBackwardRank}, started from
 * this test's classpath) join a {@link ProcessGroup} over the TCP transport, run ring and tasp,
 * causal and not, and each checks its shard of dq, dk and dv against the single-device backward of
 * the whole sequence: within 1e-5 of the largest gradient. Every process is killed at the end.
 */
public class MultiProcessBackwardTest {

    private static final Pattern ERROR = Pattern.compile(
            "\\[rank (\\d)\\] (\\S+) causal=(true|false) over tcp: relative error = ([0-9.eE+-]+)");

    private final RankJvms jvms = new RankJvms();

    @AfterMethod(alwaysRun = true)
    public void killEverything() throws InterruptedException {
        jvms.killAll();
    }

    @Test
    public void fourProcessesGiveTheSingleDeviceGradients() throws Exception {
        int world = 4;
        int ringPort = ProcessGroupTest.freePort();
        int taspPort = ProcessGroupTest.freePort();
        List<String> outputs = jvms.runAll(TcpBackwardRank.class.getName(), world, r -> List.of(String.valueOf(world),
                String.valueOf(r), String.valueOf(ringPort), String.valueOf(taspPort)), 300);
        for (int r = 0; r < world; r++) {
            String out = outputs.get(r);
            Matcher m = ERROR.matcher(out);
            int cases = 0;
            while (m.find()) {
                cases++;
                System.out.println(m.group());
                assertEquals(Integer.parseInt(m.group(1)), r, out);
                double error = Double.parseDouble(m.group(4));
                assertTrue(error <= 1e-5, "rank " + r + " " + m.group(2) + " causal=" + m.group(3) + ": " + error);
            }
            assertEquals(cases, 4, "rank " + r + " should report ring and tasp, causal and not: " + out);
        }
    }
}
