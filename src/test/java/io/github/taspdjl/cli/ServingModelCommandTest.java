package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.testng.annotations.Test;

/**
 * {@code tasp serving-model} and {@code tasp serve-bench} answer --help, refuse bad arguments with exit
 * code 2, and serve-bench measures a small folder end to end (its numbers are not checked).
 */
public class ServingModelCommandTest {

    @Test
    public void helpNamesTheFolderAndTheOptions() {
        CliRun run = CliRun.of("serving-model", "--help");
        assertEquals(run.exit(), 0);
        assertTrue(run.out().contains("DIR") && run.out().contains("--params") && run.out().contains("--ranks"),
                run.out());
        CliRun bench = CliRun.of("serve-bench", "--help");
        assertEquals(bench.exit(), 0);
        assertTrue(bench.out().contains("--long-tokens"), bench.out());
    }

    @Test
    public void serveBenchMeasuresAFolder() throws Exception {
        Path dir = Files.createTempDirectory("tasp-serving-cli");
        try {
            Path model = dir.resolve("model");
            assertEquals(CliRun.of("serving-model", model.toString(), "--ranks", "2", "--vocab", "32", "--embedding",
                    "8", "--heads", "2", "--layers", "1", "--max-length", "256", "--shard-min-tokens", "32").exit(), 0);
            CliRun run = CliRun.of("serve-bench", model.toString(), "--short-tokens", "8", "--long-tokens", "64",
                    "--short-requests", "4", "--long-requests", "2", "--clients", "2");
            assertEquals(run.exit(), 0, run.out());
            assertTrue(run.out().matches("(?s).*short\\s+8\\s+4\\s+2\\s+1\\s.*"), run.out());
            assertTrue(run.out().matches("(?s).*long\\s+64\\s+2\\s+2\\s+2\\s.*"), "long prompts on 2 ranks: " + run.out());
        } finally {
            try (var files = Files.walk(dir)) {
                for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    @Test
    public void missingParametersFileIsRefused() throws Exception {
        Path dir = Files.createTempDirectory("tasp-serving-cli");
        try {
            CliRun run = CliRun.of("serving-model", dir.resolve("model").toString(), "--params",
                    dir.resolve("absent.params").toString());
            assertEquals(run.exit(), 2);
            assertTrue(!Files.exists(dir.resolve("model")), "nothing written");
        } finally {
            Files.deleteIfExists(dir);
        }
    }

    @Test
    public void badShapeIsRefused() throws Exception {
        Path dir = Files.createTempDirectory("tasp-serving-cli");
        try {
            CliRun run = CliRun.of("serving-model", dir.resolve("model").toString(), "--embedding", "30", "--heads", "4");
            assertEquals(run.exit(), 2, "embedding 30 is not a multiple of 4 heads");
        } finally {
            Files.deleteIfExists(dir);
        }
    }
}
