package io.github.taspdjl.cli;

import ai.djl.inference.Predictor;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.repository.zoo.ZooModel;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.github.taspdjl.serving.DjlServingLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code tasp serve-bench DIR}: loads a folder of {@code tasp serving-model} as DJL Serving does and
 * sends it short and long prompts from concurrent clients (each with its own predictor, as the
 * server's workers have), then prints requests per second and p50/p99 latency per prompt kind.
 */
@Command(name = "serve-bench", mixinStandardHelpOptions = true,
        description = "Requests/s and p50/p99 latency of a served model folder, short and long prompts.")
public final class ServeBenchCommand implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "DIR", description = "a folder written by tasp serving-model")
    Path dir;

    @Option(names = "--short-tokens", defaultValue = "128", description = "short prompt length (default ${DEFAULT-VALUE})")
    int shortTokens;

    @Option(names = "--long-tokens", defaultValue = "16384", description = "long prompt length (default ${DEFAULT-VALUE})")
    int longTokens;

    @Option(names = "--short-requests", defaultValue = "200", description = "short prompts sent (default ${DEFAULT-VALUE})")
    int shortRequests;

    @Option(names = "--long-requests", defaultValue = "8", description = "long prompts sent (default ${DEFAULT-VALUE})")
    int longRequests;

    @Option(names = "--clients", defaultValue = "4", description = "concurrent clients (default ${DEFAULT-VALUE})")
    int clients;

    /** One measured kind of prompt. */
    record Result(String kind, int tokens, int requests, int clients, int ranks, double seconds, double[] latencyMs) {
        double perSecond() {
            return requests / seconds;
        }

        double percentile(double p) {
            double[] sorted = latencyMs.clone();
            Arrays.sort(sorted);
            int i = (int) Math.ceil(p / 100.0 * sorted.length) - 1; // nearest rank
            return sorted[Math.max(0, Math.min(sorted.length - 1, i))];
        }
    }

    @Override
    public Integer call() throws Exception {
        if (!Files.isRegularFile(dir.resolve("serving.properties"))) {
            throw new IllegalArgumentException(dir + " has no serving.properties: write it with tasp serving-model");
        }
        if (shortTokens < 1 || longTokens < 1 || shortRequests < 1 || longRequests < 1 || clients < 1) {
            throw new IllegalArgumentException("token counts, request counts and --clients must be at least 1");
        }
        Properties prop = new Properties();
        try (var r = Files.newBufferedReader(dir.resolve("serving.properties"))) {
            prop.load(r);
        }
        int vocab = Integer.parseInt(prop.getProperty("vocab_size", "2"));
        try (ZooModel<Input, Output> model = DjlServingLoader.load(dir)) {
            System.out.printf(Locale.ROOT, "model: %s, ranks=%s, shard_min_tokens=%s, %d cores%n", dir.getFileName(),
                    prop.getProperty("ranks"), prop.getProperty("shard_min_tokens"),
                    Runtime.getRuntime().availableProcessors());
            List<Result> results = new ArrayList<>();
            results.add(measure(model, "short", shortTokens, shortRequests, vocab));
            results.add(measure(model, "long", longTokens, longRequests, vocab));
            System.out.printf(Locale.ROOT, "%-6s %8s %9s %8s %6s %10s %10s %10s%n", "prompt", "tokens", "requests",
                    "clients", "ranks", "req/s", "p50 ms", "p99 ms");
            for (Result r : results) {
                System.out.printf(Locale.ROOT, "%-6s %8d %9d %8d %6d %10.2f %10.1f %10.1f%n", r.kind(), r.tokens(),
                        r.requests(), r.clients(), r.ranks(), r.perSecond(), r.percentile(50), r.percentile(99));
            }
        }
        return 0;
    }

    private Result measure(ZooModel<Input, Output> model, String kind, int tokens, int requests, int vocab)
            throws Exception {
        List<String> bodies = new ArrayList<>();
        Random random = new Random(tokens);
        for (int i = 0; i < Math.min(requests, 8); i++) {
            bodies.add("{\"tokens\": [" + random.ints(tokens, 0, vocab).mapToObj(Integer::toString)
                    .collect(Collectors.joining(",")) + "], \"top_k\": 5}");
        }
        int ranks = ranksOf(call(model, bodies.get(0))); // also the warm-up
        double[] latency = new double[requests];
        AtomicInteger next = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(clients);
        long t0 = System.nanoTime();
        try {
            List<Future<?>> running = new ArrayList<>();
            for (int c = 0; c < clients; c++) {
                running.add(pool.submit(() -> {
                    try (Predictor<Input, Output> p = model.newPredictor()) {
                        for (int i = next.getAndIncrement(); i < requests; i = next.getAndIncrement()) {
                            long s = System.nanoTime();
                            Output out = p.predict(input(bodies.get(i % bodies.size())));
                            latency[i] = (System.nanoTime() - s) / 1e6;
                            if (out.getCode() != 200) {
                                throw new IllegalStateException(kind + " request failed: " + out.getMessage());
                            }
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : running) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        return new Result(kind, tokens, requests, Math.min(clients, requests), ranks, seconds, latency);
    }

    private static Output call(ZooModel<Input, Output> model, String body) throws Exception {
        try (Predictor<Input, Output> p = model.newPredictor()) {
            Output out = p.predict(input(body));
            if (out.getCode() != 200) {
                throw new IllegalStateException("warm-up request failed: " + out.getMessage());
            }
            return out;
        }
    }

    private static int ranksOf(Output out) {
        JsonObject o = JsonParser.parseString(out.getData().getAsString()).getAsJsonObject();
        return o.get("ranks").getAsInt();
    }

    private static Input input(String body) {
        Input in = new Input();
        in.add(body);
        return in;
    }
}
