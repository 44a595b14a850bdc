package io.github.taspdjl.serving;

import static io.github.taspdjl.serving.ServingAnswers.answerOk;
import static io.github.taspdjl.serving.ServingAnswers.assertMatchesDirect;
import static io.github.taspdjl.serving.ServingAnswers.assertSameAnswer;
import static io.github.taspdjl.serving.ServingAnswers.input;
import static io.github.taspdjl.serving.ServingAnswers.json;
import static io.github.taspdjl.serving.ServingAnswers.randomTokens;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertNotEquals;
import static org.testng.Assert.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.inference.Predictor;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.repository.zoo.ZooModel;
import com.google.gson.JsonObject;
import io.github.taspdjl.cli.TaspCli;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import org.testng.annotations.AfterMethod;
import org.testng.annotations.BeforeMethod;
import org.testng.annotations.Test;

/**
 * A folder serving parameters given with {@code --params} answers like the model they came from; a
 * group that fails inside a request (a silent rank, 2 s timeout) answers that request with 500 and
 * the next long request is answered by a new group; parameters of another shape are refused when
 * the folder is written.
 */
public class ServedGroupFailureTest {

    private static final DecoderConfig CONFIG = new DecoderConfig(256, 16, 2, 1, 4096);

    private Path dir;
    private NDManager manager;

    @BeforeMethod
    public void setUp() throws Exception {
        dir = Files.createTempDirectory("tasp-served-failure");
        manager = NDManager.newBaseManager("PyTorch");
    }

    @AfterMethod(alwaysRun = true)
    public void tearDown() throws Exception {
        manager.close();
        try (var files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    @Test
    public void givenParametersServedAndAFailedGroupGets500ThenRecovers() throws Exception {
        Engine.getEngine("PyTorch").setRandomSeed(5);
        DemoDecoder trained = new DemoDecoder(CONFIG);
        trained.initialize(manager, DataType.FLOAT32, new Shape(1, 1), new Shape(1, 1));
        Path params = dir.resolve("given.params");
        ServingFolder.saveParameters(trained, params);
        Path folder = dir.resolve("model");
        int exit = TaspCli.commandLine().execute("serving-model", folder.toString(), "--params", params.toString(),
                "--ranks", "4", "--vocab", "256", "--embedding", "16", "--heads", "2", "--layers", "1",
                "--max-length", "4096", "--shard-min-tokens", "256", "--group-timeout-ms", "2000");
        assertEquals(exit, 0);

        try (ZooModel<Input, Output> model = DjlServingLoader.load(folder);
                Predictor<Input, Output> predictor = model.newPredictor()) {
            int[] tokens = randomTokens(600, 256, 9);
            String request = json(tokens, 3);
            JsonObject before = answerOk(predictor.predict(input(request)));
            assertEquals(before.get("ranks").getAsInt(), 4);
            assertMatchesDirect(before, tokens, 3, trained, manager);

            ((TaspServingTranslator) model.getTranslator()).scorer().silenceRankOfCurrentGroup(2);
            Output failed = predictor.predict(input(request));
            assertEquals(failed.getCode(), 500, failed.getMessage());
            assertTrue(failed.getMessage().contains("sequence-parallel group of 4 ranks failed"), failed.getMessage());

            assertSameAnswer(answerOk(predictor.predict(input(request))), before, "the long request after the failure");
            JsonObject small = answerOk(predictor.predict(input(json(new int[] {1, 2, 3}, 1))));
            assertEquals(small.get("ranks").getAsInt(), 1);
        }
    }

    @Test
    public void parametersOfAnotherShapeAreRefused() throws Exception {
        DemoDecoder other = new DemoDecoder(new DecoderConfig(128, 16, 2, 1, 4096));
        other.initialize(manager, DataType.FLOAT32, new Shape(1, 1), new Shape(1, 1));
        Path params = dir.resolve("other.params");
        ServingFolder.saveParameters(other, params);
        int exit = TaspCli.commandLine().execute("serving-model", dir.resolve("model").toString(), "--params",
                params.toString(), "--vocab", "256", "--embedding", "16", "--heads", "2", "--layers", "1");
        assertNotEquals(exit, 0, "parameters of a 128-token vocabulary served as 256");
        assertTrue(!Files.exists(dir.resolve("model")), "no folder is written for bad parameters");
    }
}
