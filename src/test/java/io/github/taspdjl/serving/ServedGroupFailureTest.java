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
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.repository.zoo.ZooModel;
import com.google.gson.JsonObject;
import io.github.taspdjl.cli.TaspCli;
import io.github.taspdjl.models.LlamaConfig;
import io.github.taspdjl.models.LlamaModel;
import io.github.taspdjl.models.LlamaWeights;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Map;
import org.testng.annotations.AfterMethod;
import org.testng.annotations.BeforeMethod;
import org.testng.annotations.Test;

/**
 * A folder serving parameters given with {@code --params} (DJL's Model.save files, Hugging Face
 * safetensors) answers like the model they came from; a group that fails inside a request (a silent
 * rank, 2 s timeout) answers that request with 500 and the next long request is answered by a new
 * group; parameters of another shape are refused before the folder is written.
 */
public class ServedGroupFailureTest {

    private static final LlamaConfig LLAMA = new LlamaConfig(256, 16, 32, 1, 2, 1, 10_000, 1e-5, false);
    private static final String[] SHAPE = {"--vocab", "256", "--hidden", "16", "--intermediate", "32", "--heads", "2",
        "--kv-heads", "1", "--layers", "1", "--max-length", "4096"};

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
        // parameters as DJL's Model.save writes them (a trained model's files)
        Engine.getEngine("PyTorch").setRandomSeed(5);
        LlamaModel trained = LlamaModel.builder().setConfig(LLAMA).build();
        Path params;
        try (Model saver = Model.newInstance("trained", manager.getDevice(), "PyTorch")) {
            saver.setBlock(trained);
            trained.initialize(saver.getNDManager());
            saver.save(dir, "trained");
            params = dir.resolve("trained-0000.params");
            ServingFolder.saveParameters(trained, dir.resolve("block.params")); // copy the values out of saver
        }
        DecoderModel direct = ServingFolder.loadModel(dir.resolve("block.params"), new ServedModelConfig(LLAMA, 4096),
                manager);
        Path folder = dir.resolve("model");
        int exit = TaspCli.commandLine().execute(concat(new String[] {"serving-model", folder.toString(), "--params",
            params.toString(), "--ranks", "4", "--shard-min-tokens", "256", "--group-timeout-ms", "2000"}, SHAPE));
        assertEquals(exit, 0);

        try (ZooModel<Input, Output> model = DjlServingLoader.load(folder);
                Predictor<Input, Output> predictor = model.newPredictor()) {
            int[] tokens = randomTokens(600, 256, 9);
            String request = json(tokens, 3);
            JsonObject before = answerOk(predictor.predict(input(request)));
            assertEquals(before.get("ranks").getAsInt(), 4);
            assertMatchesDirect(before, tokens, 3, direct, manager);

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
    public void safetensorsServedAsGiven() throws Exception {
        Engine.getEngine("PyTorch").setRandomSeed(6);
        LlamaModel hf = LlamaModel.builder().setConfig(LLAMA).build();
        hf.initialize(manager);
        NDList tensors = new NDList();
        for (Map.Entry<String, Parameter> e : LlamaWeights.huggingFaceNames(hf).entrySet()) {
            NDArray a = e.getValue().getArray().duplicate();
            a.setName(e.getKey());
            tensors.add(a);
        }
        Path file = dir.resolve("model.safetensors");
        try (OutputStream out = Files.newOutputStream(file)) {
            tensors.encode(out, NDList.Encoding.SAFETENSORS);
        }
        Path folder = dir.resolve("model");
        assertEquals(TaspCli.commandLine().execute(concat(new String[] {"serving-model", folder.toString(), "--params",
            file.toString(), "--ranks", "2"}, SHAPE)), 0);
        assertTrue(Files.readString(folder.resolve("serving.properties")).contains("parameters=model.safetensors"));
        try (ZooModel<Input, Output> model = DjlServingLoader.load(folder);
                Predictor<Input, Output> predictor = model.newPredictor()) {
            int[] tokens = randomTokens(40, 256, 4);
            assertMatchesDirect(answerOk(predictor.predict(input(json(tokens, 4)))), tokens, 4,
                    new ServedLlama(hf, 4096), manager);
        }
    }

    @Test
    public void parametersOfAnotherShapeAreRefused() throws Exception {
        LlamaModel other = LlamaModel.builder().setConfig(new LlamaConfig(128, 16, 32, 1, 2, 1, 10_000, 1e-5, false))
                .build();
        other.initialize(manager);
        Path params = dir.resolve("other.params");
        ServingFolder.saveParameters(other, params);
        int exit = TaspCli.commandLine().execute(concat(new String[] {"serving-model", dir.resolve("model").toString(),
            "--params", params.toString()}, SHAPE));
        assertNotEquals(exit, 0, "parameters of a 128-token vocabulary served as 256");
        assertTrue(!Files.exists(dir.resolve("model")), "no folder is written for bad parameters");
    }

    private static String[] concat(String[] a, String[] b) {
        String[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
