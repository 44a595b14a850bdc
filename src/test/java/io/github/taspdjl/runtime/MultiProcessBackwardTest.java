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
 * The distributed forward and backward between real processes: 4 JVMs ({@link TcpBackwardRank}, started
 * from this test's classpath) join a {@link ProcessGroup} over the TCP transport, run ring, tasp, ulysses and
 * a hybrid (Ulysses degree 2 x ring), causal and not, with 2 key/value heads for 4 ranks, and each checks its
 * shard of the output and of dq, dk and dv against single-device attention on the whole sequence: within
 * 1e-5 of the largest value. Query heads that do not divide among the Ulysses ranks fail every rank, saying
 * so. Every process is killed at the end.
 */
public class MultiProcessBackwardTest {

    private static final Pattern ERROR = Pattern.compile(
            "\\[rank (\\d)\\] (\\S+) causal=(true|false) over tcp: forward error = ([0-9.eE+-]+), relative error = "
                    + "([0-9.eE+-]+)");

    private final RankJvms jvms = new RankJvms();

    @AfterMethod(alwaysRun = true)
    public void killEverything() throws InterruptedException {
        jvms.killAll();
    }

    @Test
    public void fourProcessesGiveTheSingleDeviceGradients() throws Exception {
        int world = 4;
        List<String> args = new java.util.ArrayList<>(List.of(String.valueOf(world), ""));
        for (int i = 0; i < 5; i++) { // rendezvous ports of ring, tasp, ulysses, hybrid, and the failure
            args.add(String.valueOf(ProcessGroupTest.freePort()));
        }
        List<String> outputs = jvms.runAll(TcpBackwardRank.class.getName(), world, r -> {
            List<String> mine = new java.util.ArrayList<>(args);
            mine.set(1, String.valueOf(r));
            return mine;
        }, 300);
        for (int r = 0; r < world; r++) {
            String out = outputs.get(r);
            Matcher m = ERROR.matcher(out);
            int cases = 0;
            while (m.find()) {
                cases++;
                System.out.println(m.group());
                assertEquals(Integer.parseInt(m.group(1)), r, out);
                double forward = Double.parseDouble(m.group(4));
                double error = Double.parseDouble(m.group(5));
                assertTrue(forward <= 1e-5, "rank " + r + " " + m.group(2) + " causal=" + m.group(3) + " forward: " + forward);
                assertTrue(error <= 1e-5, "rank " + r + " " + m.group(2) + " causal=" + m.group(3) + ": " + error);
            }
            assertEquals(cases, 8, "rank " + r + " should report ring, tasp, ulysses and the hybrid, causal and not: " + out);
            assertTrue(out.contains("[rank " + r + "] six heads failed: ulysses over 4 ranks: 6 query heads do not divide"),
                    out);
        }
    }
}
