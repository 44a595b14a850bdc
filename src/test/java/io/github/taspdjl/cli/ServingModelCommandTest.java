package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.testng.annotations.Test;

/** {@code tasp serving-model} answers --help and refuses bad arguments with exit code 2. */
public class ServingModelCommandTest {

    @Test
    public void helpNamesTheFolderAndTheOptions() {
        CliRun run = CliRun.of("serving-model", "--help");
        assertEquals(run.exit(), 0);
        assertTrue(run.out().contains("DIR") && run.out().contains("--params") && run.out().contains("--ranks"),
                run.out());
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
