package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertNotEquals;
import static org.testng.Assert.assertTrue;

import io.github.taspdjl.RankJvms;
import io.github.taspdjl.runtime.LaunchEnvironment;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.testng.annotations.AfterMethod;
import org.testng.annotations.Test;

/**
 * {@code tasp demo} as ranks of a job of real processes: JVMs started from this test's own classpath
 * with torchrun's variables, meeting on 127.0.0.1 and exchanging keys and values over the TCP
 * transport. Every process is killed at the end of each test, whatever happened.
 */
public class MultiProcessDemoTest {

    private static final String[] DEMO = {"demo", "--seq", "512", "--layers", "2", "--embedding", "32", "--heads",
        "2"};
    private static final Pattern MAX_ERROR = Pattern.compile("max error = ([0-9.eE+-]+)");

    private final RankJvms jvms = new RankJvms();

    @AfterMethod(alwaysRun = true)
    public void killEverything() throws InterruptedException {
        jvms.killAll();
    }

    @Test
    public void fourRanksEachPrintTheirMaxError() throws Exception {
        int port = freePort();
        List<Rank> ranks = new ArrayList<>();
        for (int r = 0; r < 4; r++) {
            ranks.add(start(r, 4, port, Map.of()));
        }
        for (Rank rank : ranks) {
            String out = rank.await(240);
            assertEquals(rank.process.exitValue(), 0, out);
            assertTrue(out.contains("[rank " + rank.rank + "] joined: 4 ranks over tcp"), out);
            Matcher m = MAX_ERROR.matcher(out);
            assertTrue(m.find(), out);
            double error = Double.parseDouble(m.group(1));
            assertTrue(error <= 1e-4, "rank " + rank.rank + ": max error " + error);
            assertTrue(out.contains("(rank " + rank.rank + " of 4,"), out);
        }
    }

    @Test
    public void whenOneRankIsKilledTheOthersFailNamingIt() throws Exception {
        int port = freePort();
        List<Rank> ranks = new ArrayList<>();
        for (int r = 0; r < 4; r++) {
            ranks.add(start(r, 4, port, Map.of()));
        }
        Rank victim = ranks.get(3);
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        while (!victim.output().contains("joined:")) {
            assertTrue(System.nanoTime() < until && victim.process.isAlive(), "rank 3 never joined: "
                    + victim.output());
            Thread.sleep(50);
        }
        victim.process.destroyForcibly();
        long killed = System.nanoTime();
        for (Rank rank : ranks.subList(0, 3)) {
            String out = rank.await(180);
            double seconds = (System.nanoTime() - killed) / 1e9;
            assertTrue(seconds < 180, "rank " + rank.rank + " took " + seconds + " s");
            assertNotEquals(rank.process.exitValue(), 0, out);
            assertTrue(out.contains("lost rank 3"), "rank " + rank.rank + ": " + out);
        }
    }

    @Test
    public void aRankThatNeverStartsIsNamedWithinTheRendezvousTimeout() throws Exception {
        int port = freePort();
        List<Rank> ranks = new ArrayList<>();
        for (int r = 0; r < 3; r++) { // a world of 4; rank 3 never starts
            ranks.add(start(r, 4, port, Map.of("TASP_RENDEZVOUS_TIMEOUT", "8")));
        }
        for (Rank rank : ranks) {
            String out = rank.await(180);
            assertNotEquals(rank.process.exitValue(), 0, out);
            assertTrue(out.contains("rank(s) 3 did not join the rendezvous at 127.0.0.1:" + port + " within 8 s"),
                    "rank " + rank.rank + ": " + out);
        }
    }

    private record Rank(int rank, Process process, Path log) {
        String output() throws IOException {
            return Files.readString(log, StandardCharsets.UTF_8);
        }

        String await(int seconds) throws Exception {
            if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new AssertionError("rank " + rank + " still running after " + seconds + " s: " + output());
            }
            return output();
        }
    }

    private Rank start(int rank, int world, int port, Map<String, String> extraEnv) throws IOException {
        Map<String, String> env = new java.util.HashMap<>(
                LaunchEnvironment.torchrunVariables(rank, world, rank, world, "127.0.0.1", port));
        env.putAll(extraEnv);
        Path log = Files.createTempFile("tasp-rank" + rank + "-", ".log");
        log.toFile().deleteOnExit();
        Process p = jvms.start(TaspCli.class.getName(), List.of(DEMO), env, log);
        return new Rank(rank, p, log);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }
}
