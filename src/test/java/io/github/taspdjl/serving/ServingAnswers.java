package io.github.taspdjl.serving;

import static org.testng.Assert.assertEquals;

import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

/** Requests and answers of the served model, and the checks the serving tests make on them. */
final class ServingAnswers {

    private ServingAnswers() {}

    /** Compares an answer with the decoder run directly on the whole prompt on one device. */
    static void assertMatchesDirect(JsonObject answer, int[] tokens, int k, DecoderModel direct, NDManager manager) {
        int s = tokens.length;
        float[] lp; // the decoder on the whole prompt, on one device
        try (NDManager m = manager.newSubManager()) {
            NDArray ids = m.create(tokens, new Shape(1, s));
            lp = direct.logits(new ParameterStore(m, false), ids).logSoftmax(2).toFloatArray(); // (1, s, V)
        }
        int vocab = direct.vocabularySize();
        double sequence = 0;
        for (int i = 0; i + 1 < s; i++) {
            sequence += lp[i * vocab + tokens[i + 1]];
        }
        int last = (s - 1) * vocab;
        List<Integer> top = IntStream.range(0, vocab).boxed()
                .sorted(Comparator.<Integer>comparingDouble(t -> -lp[last + t])).limit(k).toList();
        JsonArray next = answer.getAsJsonArray("next");
        assertEquals(next.size(), k);
        for (int i = 0; i < k; i++) {
            JsonObject e = next.get(i).getAsJsonObject();
            assertEquals(e.get("token").getAsInt(), (int) top.get(i), "next token " + i + " of " + s);
            assertEquals(e.get("logprob").getAsDouble(), lp[last + top.get(i)], 1e-4, "logprob of next token " + i);
        }
        // 16K terms of float32 log-probs: compare the mean per token at 1e-5
        assertEquals(answer.get("sequence_logprob").getAsDouble() / Math.max(1, s - 1), sequence / Math.max(1, s - 1),
                1e-5, "sequence log-probability of " + s + " tokens");
    }

    static void assertSameAnswer(JsonObject got, JsonObject alone, String what) {
        JsonArray a = got.getAsJsonArray("next");
        JsonArray b = alone.getAsJsonArray("next");
        assertEquals(a.size(), b.size(), what);
        for (int i = 0; i < a.size(); i++) {
            assertEquals(a.get(i).getAsJsonObject().get("token").getAsInt(),
                    b.get(i).getAsJsonObject().get("token").getAsInt(), what + ": next token " + i);
            assertEquals(a.get(i).getAsJsonObject().get("logprob").getAsDouble(),
                    b.get(i).getAsJsonObject().get("logprob").getAsDouble(), 1e-5, what + ": logprob " + i);
        }
        assertEquals(got.get("tokens").getAsInt(), alone.get("tokens").getAsInt(), what);
        assertEquals(got.get("ranks").getAsInt(), alone.get("ranks").getAsInt(), what);
        assertEquals(got.get("sequence_logprob").getAsDouble(), alone.get("sequence_logprob").getAsDouble(),
                1e-5 * Math.max(1, got.get("tokens").getAsInt()), what + ": sequence logprob");
    }

    static Input input(String body) {
        Input in = new Input();
        in.add(body);
        return in;
    }

    static JsonObject answerOk(Output out) {
        assertEquals(out.getCode(), 200, "answer: " + out.getMessage());
        return JsonParser.parseString(out.getData().getAsString()).getAsJsonObject();
    }

    static String json(int[] tokens, int topK) {
        return "{\"tokens\": [" + Arrays.stream(tokens).mapToObj(Integer::toString).collect(Collectors.joining(","))
                + "], \"top_k\": " + topK + "}";
    }

    static int[] randomTokens(int n, int vocab, long seed) {
        Random r = new Random(seed);
        return IntStream.range(0, n).map(i -> r.nextInt(vocab)).toArray();
    }
}
