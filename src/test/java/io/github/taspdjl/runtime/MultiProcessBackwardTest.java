package io.github.taspdjl.runtime;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
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

    private final List<Process> started = new ArrayList<>();

    @AfterMethod(alwaysRun = true)
    public void killEverything() throws InterruptedException {
        for (Process p : started) {
            p.destroyForcibly();
        }
        for (Process p : started) {
            p.waitFor(30, TimeUnit.SECONDS);
        }
        started.clear();
    }

    @Test
    public void fourProcessesGiveTheSingleDeviceGradients() throws Exception {
        int world = 4;
        int ringPort = ProcessGroupTest.freePort();
        int taspPort = ProcessGroupTest.freePort();
        List<Process> ranks = new ArrayList<>();
        List<Path> logs = new ArrayList<>();
        for (int r = 0; r < world; r++) {
            Path log = Files.createTempFile("tasp-bwd-rank" + r + "-", ".log");
            log.toFile().deleteOnExit();
            logs.add(log);
            ranks.add(start(world, r, ringPort, taspPort, log));
        }
        for (int r = 0; r < world; r++) {
            Process p = ranks.get(r);
            boolean ended = p.waitFor(300, TimeUnit.SECONDS);
            String out = Files.readString(logs.get(r), StandardCharsets.UTF_8);
            assertTrue(ended, "rank " + r + " still running: " + out);
            assertEquals(p.exitValue(), 0, out);
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

    private Process start(int world, int rank, int ringPort, int taspPort, Path log) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-Xmx512m");
        cmd.add("-XX:+UseSerialGC");
        cmd.add("-XX:TieredStopAtLevel=1");
        cmd.add("-Dai.djl.offline=true");
        cmd.add("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn");
        for (String p : new String[] {"tasp.cache.dir", "tasp.native.library"}) {
            if (System.getProperty(p) != null) {
                cmd.add("-D" + p + "=" + System.getProperty(p));
            }
        }
        cmd.add("-cp");
        cmd.add(System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")));
        cmd.add(TcpBackwardRank.class.getName());
        cmd.addAll(List.of(String.valueOf(world), String.valueOf(rank), String.valueOf(ringPort),
                String.valueOf(taspPort)));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().keySet().removeIf(k -> k.startsWith("SLURM_") || k.startsWith("OMPI_")
                || k.startsWith("TORCHELASTIC_") || k.equals("RANK") || k.equals("WORLD_SIZE"));
        pb.redirectErrorStream(true).redirectOutput(log.toFile());
        Process p = pb.start();
        started.add(p);
        return p;
    }
}
