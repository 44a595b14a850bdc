package io.github.taspdjl.serving;

import static io.github.taspdjl.serving.ServingAnswers.answerOk;
import static io.github.taspdjl.serving.ServingAnswers.assertMatchesDirect;
import static io.github.taspdjl.serving.ServingAnswers.assertSameAnswer;
import static io.github.taspdjl.serving.ServingAnswers.input;
import static io.github.taspdjl.serving.ServingAnswers.json;
import static io.github.taspdjl.serving.ServingAnswers.randomTokens;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import ai.djl.inference.Predictor;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.repository.zoo.ZooModel;
import ai.djl.training.ParameterStore;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.github.taspdjl.cli.TaspCli;
import io.github.taspdjl.models.LlamaConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.Test;

/**
 * The folder written by {@code tasp serving-model}, loaded as DJL Serving's workload manager loads it,
 * answers like the decoder run directly on one device: long prompts sharded over 4 virtual ranks,
 * short ones on one device, concurrent requests and batches, bad requests (400) and a failing group
 * (500), each followed by a request that is answered.
 */
public class ServedModelTest {

    private static final int VOCAB = 256;
    private static final int MAX = 16_384;
    private static final ServedModelConfig CONFIG =
            new ServedModelConfig(new LlamaConfig(VOCAB, 32, 64, 1, 4, 2, 10_000, 1e-5, false), MAX);

    private Path dir;
    private ZooModel<Input, Output> model;
    private NDManager manager;
    private DecoderModel direct;

    @BeforeClass
    public void writeAndLoad() throws Exception {
        dir = Files.createTempDirectory("tasp-served");
        int exit = TaspCli.commandLine().execute("serving-model", dir.toString(), "--ranks", "4", "--vocab", "256",
                "--hidden", "32", "--intermediate", "64", "--heads", "4", "--kv-heads", "2", "--layers", "1",
                "--max-length", Integer.toString(MAX),
                "--shard-min-tokens", "1024", "--seed", "11");
        assertEquals(exit, 0, "tasp serving-model failed");
        model = DjlServingLoader.load(dir);
        manager = NDManager.newBaseManager("PyTorch");
        direct = ServingFolder.loadModel(dir.resolve(ServingFolder.DEFAULT_PARAMETERS_FILE), CONFIG, manager);
    }

    @AfterClass(alwaysRun = true)
    public void close() throws Exception {
        if (model != null) {
            model.close();
        }
        if (manager != null) {
            manager.close();
        }
        if (dir != null) {
            try (var files = Files.walk(dir)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    @Test
    public void folderIsFoundByDjlsFactories() throws Exception {
        assertTrue(model.getTranslator() instanceof TaspServingTranslator, "translator: " + model.getTranslator());
        assertTrue(Files.isRegularFile(dir.resolve("libs/tasp-djl.jar")));
        try (var jar = new java.util.jar.JarFile(dir.resolve("libs/tasp-djl.jar").toFile())) {
            assertTrue(jar.getEntry("io/github/taspdjl/serving/TaspServingTranslator.class") != null);
        }
        String props = Files.readString(dir.resolve("serving.properties"));
        assertTrue(props.contains("maxWorkers=1") && props.contains("load_on_devices=") && props.contains("ranks=4"),
                props);
    }

    @Test
    public void longPromptShardedMatchesOneDevice() throws Exception {
        int[] tokens = randomTokens(MAX, VOCAB, 1);
        JsonObject answer = answerOk(predict(json(tokens, 10)));
        assertEquals(answer.get("ranks").getAsInt(), 4, "a 16K prompt runs sharded");
        assertEquals(answer.get("tokens").getAsInt(), MAX);
        assertMatchesDirect(answer, tokens, 10, direct, manager);
    }

    @Test
    public void shortPromptOnOneDeviceMatchesDirect() throws Exception {
        int[] tokens = randomTokens(300, VOCAB, 2);
        JsonObject answer = answerOk(predict(json(tokens, 5)));
        assertEquals(answer.get("ranks").getAsInt(), 1, "a short prompt runs on one device");
        assertMatchesDirect(answer, tokens, 5, direct, manager);
        JsonObject one = answerOk(predict(json(new int[] {42}, 3)));
        assertEquals(one.get("sequence_logprob").getAsDouble(), 0.0, "one token: nothing to score");
        assertMatchesDirect(one, new int[] {42}, 3, direct, manager);
    }

    @Test
    public void concurrentRequestsAndBatchesGetTheirOwnAnswers() throws Exception {
        int[] lengths = {1, 2, 57, 700, 1024, 3000, 7001, MAX};
        List<String> requests = new ArrayList<>();
        for (int i = 0; i < lengths.length; i++) {
            requests.add(json(randomTokens(lengths[i], VOCAB, 100 + i), 4));
        }
        List<JsonObject> alone = new ArrayList<>();
        for (String r : requests) {
            alone.add(answerOk(predict(r)));
        }
        ExecutorService pool = Executors.newFixedThreadPool(requests.size());
        try {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<Output>> futures = new ArrayList<>();
            for (String r : requests) {
                futures.add(pool.submit(() -> {
                    try (Predictor<Input, Output> p = model.newPredictor()) { // one predictor per worker thread
                        start.await();
                        return p.predict(input(r));
                    }
                }));
            }
            start.countDown();
            for (int i = 0; i < requests.size(); i++) {
                assertSameAnswer(answerOk(futures.get(i).get(10, TimeUnit.MINUTES)), alone.get(i),
                        "concurrent request of " + lengths[i] + " tokens");
            }
        } finally {
            pool.shutdownNow();
        }

        // a batch of different lengths with a bad request inside, as DJL Serving's batch aggregator sends it
        try (Predictor<Input, Output> p = model.newPredictor()) {
            List<Output> batch = p.batchPredict(List.of(input(requests.get(6)), input("{\"tokens\": [1, -3]}"),
                    input(requests.get(2)), input(requests.get(0))));
            assertSameAnswer(answerOk(batch.get(0)), alone.get(6), "batched long request");
            assertEquals(batch.get(1).getCode(), 400);
            assertSameAnswer(answerOk(batch.get(2)), alone.get(2), "batched short request");
            assertSameAnswer(answerOk(batch.get(3)), alone.get(0), "batched one-token request");
        }
    }

    @Test
    public void everyBadRequestGets400AndTheNextIsAnswered() throws Exception {
        String tooLong = json(new int[MAX + 1], 1);
        String[][] cases = {
            {"{\"tokens\": [1, 2", "malformed JSON"},
            {"", "empty request body"},
            {"[1, 2, 3]", "must be a JSON object"},
            {"\"hello\"", "must be a JSON object"},
            {"{\"top_k\": 3}", "missing 'tokens'"},
            {"{\"tokens\": null}", "missing 'tokens'"},
            {"{\"tokens\": []}", "'tokens' is empty"},
            {"{\"tokens\": \"1 2 3\"}", "must be an array of integer token ids"},
            {"{\"tokens\": [1, 2.5]}", "tokens[1] must be an integer"},
            {"{\"tokens\": [1, \"7\"]}", "tokens[1] must be an integer"},
            {"{\"tokens\": [1, 99999999999]}", "tokens[1] must be an integer"},
            {"{\"tokens\": [3, 256]}", "token id 256 at index 1 is outside the vocabulary [0, 256)"},
            {"{\"tokens\": [-1]}", "token id -1 at index 0 is outside the vocabulary"},
            {tooLong, (MAX + 1) + " tokens is longer than this model's maximum of " + MAX},
            {"{\"tokens\": [1], \"top_k\": 0}", "'top_k' must be between 1 and the vocabulary size 256"},
            {"{\"tokens\": [1], \"top_k\": \"x\"}", "'top_k' must be an integer"},
        };
        String good = json(randomTokens(20, VOCAB, 3), 2);
        JsonObject expected = answerOk(predict(good));
        for (String[] c : cases) {
            Output out = predict(c[0]);
            assertEquals(out.getCode(), 400, "request " + abbreviate(c[0]) + " -> " + out.getMessage());
            assertTrue(out.getMessage().contains(c[1]), "message for " + abbreviate(c[0]) + ": " + out.getMessage());
            JsonObject body = JsonParser.parseString(out.getData().getAsString()).getAsJsonObject();
            assertEquals(body.get("error").getAsString(), out.getMessage());
            assertSameAnswer(answerOk(predict(good)), expected, "the request after " + abbreviate(c[0]));
        }
    }

    private Output predict(String body) throws Exception {
        try (Predictor<Input, Output> p = model.newPredictor()) {
            return p.predict(input(body));
        }
    }

    private static String abbreviate(String s) {
        return s.length() > 60 ? s.substring(0, 60) + "..." : s;
    }
}
