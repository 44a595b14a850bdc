package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.testng.annotations.Test;

/** {@code tasp launch}: the processes it starts, their environment, and what happens when one fails. */
public class LaunchCommandTest {

    @Test
    public void everyRankGetsTorchrunVariables() throws Exception {
        Path dir = Files.createTempDirectory("tasp-launch");
        CliRun run = CliRun.of("launch", "--nprocs", "3", "--master-port", "29123", "--", "sh", "-c",
                "echo \"$RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE $MASTER_ADDR $MASTER_PORT\" > " + dir
                        + "/rank$RANK");
        assertEquals(run.exit(), 0, run.out());
        List<String> lines = new ArrayList<>();
        for (int r = 0; r < 3; r++) {
            lines.add(Files.readString(dir.resolve("rank" + r)).trim());
        }
        Collections.sort(lines);
        assertEquals(lines, List.of("0 3 0 3 127.0.0.1 29123", "1 3 1 3 127.0.0.1 29123", "2 3 2 3 127.0.0.1 29123"));
    }

    @Test
    public void theFirstFailureIsTheExitCodeAndStragglersAreStopped() {
        long start = System.nanoTime();
        CliRun run = CliRun.of("launch", "--nprocs", "3", "--grace", "1", "--", "sh", "-c",
                "if [ \"$RANK\" = 1 ]; then exit 7; else exec sleep 60; fi");
        double seconds = (System.nanoTime() - start) / 1e9;
        assertEquals(run.exit(), 7);
        assertTrue(seconds < 20, "took " + seconds + " s");
    }

    @Test
    public void badArgumentsAreRefused() {
        assertEquals(CliRun.of("launch", "--nprocs", "0", "--", "true").exit(), 2);
        assertEquals(CliRun.of("launch", "--nprocs", "1", "--", "/nonexistent/command").exit(), 2);
        assertTrue(CliRun.of("launch", "--help").out().contains("--nprocs"));
    }
}
