package io.github.taspdjl.serving;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.ndarray.BytesSupplier;
import ai.djl.ndarray.NDList;
import ai.djl.translate.Batchifier;
import ai.djl.translate.ServingTranslator;
import ai.djl.translate.TranslatorContext;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.UUID;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The DJL Serving translator of a tasp-djl decoder language model ({@link ServingFolder} writes the
 * folder). Request: JSON {@code {"tokens": [ids...], "top_k": K}} ({@code top_k} optional). Answer:
 * {@code {"next": [{"token": id, "logprob": x}, ...], "sequence_logprob": x, "tokens": n, "ranks":
 * r, "milliseconds": t}}, where {@code next} holds the K most likely next tokens, highest first, and
 * {@code sequence_logprob} is the log-likelihood of the given tokens after the first.
 *
 * <p>A bad request gets an {@link Output} with code 400 and a message naming the problem; a failure
 * of the model or of its group gets 500 with the cause. Neither is thrown, so the worker keeps
 * serving and, in a batch, only that request fails. Requests of a batch are answered one by one (no
 * batchifier): they differ in length, and long ones take the group in turn anyway.
 *
 * <p>The model runs in {@code processInput}: a long prompt runs across a sequence-parallel group,
 * which the single {@code Block.forward} of DJL's predictor cannot express, so the model's block is
 * DJL's identity block and the work happens here. {@code prepare} builds the model once per loaded
 * model (every predictor calls it), and the group is closed with the model's manager.
 */
public final class TaspServingTranslator implements ServingTranslator {

    private static final Logger logger = LoggerFactory.getLogger(TaspServingTranslator.class);

    /** The argument giving {@code top_k} for requests without one. */
    public static final String DEFAULT_TOP_K = "default_top_k";
    private static final String ANSWER = "tasp.answer";

    private Map<String, Object> arguments = new HashMap<>();
    private SequenceScorer scorer; // guarded by this

    /** DJL's factories instantiate translators through the public no-argument constructor. */
    public TaspServingTranslator() {}

    @Override
    public synchronized void setArguments(Map<String, ?> arguments) {
        this.arguments = new HashMap<>(arguments);
    }

    @Override
    public synchronized void prepare(TranslatorContext ctx) throws IOException, MalformedModelException {
        if (scorer != null) {
            return;
        }
        Model model = ctx.getModel();
        Map<String, Object> args = new HashMap<>(model.getProperties());
        args.putAll(arguments);
        ServedModelConfig config = ServedModelConfig.fromArguments(args);
        Object file = args.getOrDefault(ServingFolder.PARAMETERS, ServingFolder.DEFAULT_PARAMETERS_FILE);
        Path dir = model.getModelPath();
        DecoderModel decoder = ServingFolder.loadModel(dir.resolve(file.toString()), config, model.getNDManager());
        SequenceScorer s = new SequenceScorer(decoder, model.getNDManager(), SequenceScorer.Settings.fromArguments(args));
        model.getNDManager().attachInternal("tasp-scorer-" + UUID.randomUUID(), s); // closed with the model
        logger.info("serving {} from {} on {}: {}", config, dir, model.getNDManager().getDevice(), s.settings());
        scorer = s;
    }

    /** The scorer behind this translator (after {@link #prepare}). */
    synchronized SequenceScorer scorer() {
        if (scorer == null) {
            throw new IllegalStateException("the translator was not prepared");
        }
        return scorer;
    }

    @Override
    public Batchifier getBatchifier() {
        return null;
    }

    @Override
    public NDList processInput(TranslatorContext ctx, Input input) {
        Output answer;
        try {
            SequenceScorer s = scorer();
            Request request = parse(input, defaultTopK(s));
            answer = success(s.score(request.tokens(), request.topK()));
        } catch (InvalidRequestException e) {
            answer = failure(400, e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            answer = failure(503, "interrupted while waiting for the sequence-parallel group");
        } catch (Exception e) {
            logger.warn("request failed", e);
            answer = failure(500, "the model failed: " + e.getMessage());
        }
        ctx.setAttachment(ANSWER, answer);
        return new NDList();
    }

    @Override
    public Output processOutput(TranslatorContext ctx, NDList list) {
        return (Output) ctx.getAttachment(ANSWER);
    }

    private int defaultTopK(SequenceScorer s) {
        Object v = arguments.get(DEFAULT_TOP_K);
        return v == null ? Math.min(5, s.model().vocabularySize()) : ServedModelConfig.intArgument(arguments, DEFAULT_TOP_K);
    }

    /** A parsed request. */
    record Request(int[] tokens, int topK) {}

    private static final String SHAPE = "{\"tokens\": [ids...], \"top_k\": K}";

    /** Parses a request body; throws {@link InvalidRequestException} naming what is wrong. */
    static Request parse(Input input, int defaultTopK) {
        BytesSupplier data = input.getData();
        String body = data == null ? "" : data.getAsString();
        if (body.isBlank()) {
            throw new InvalidRequestException("empty request body: send a JSON object " + SHAPE);
        }
        JsonElement root;
        try {
            root = JsonParser.parseString(body);
        } catch (JsonParseException e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw new InvalidRequestException("malformed JSON: " + cause.getMessage(), e);
        }
        if (!root.isJsonObject()) {
            throw new InvalidRequestException("the request body must be a JSON object " + SHAPE + ", got " + kind(root));
        }
        JsonObject o = root.getAsJsonObject();
        JsonElement t = o.get("tokens");
        if (t == null || t.isJsonNull()) {
            throw new InvalidRequestException("missing 'tokens': send a JSON object " + SHAPE);
        }
        if (!t.isJsonArray()) {
            throw new InvalidRequestException("'tokens' must be an array of integer token ids, got " + kind(t));
        }
        JsonArray a = t.getAsJsonArray();
        if (a.isEmpty()) {
            throw new InvalidRequestException("'tokens' is empty: give at least one token id");
        }
        int[] tokens = new int[a.size()];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = integer(a.get(i), "tokens[" + i + "]");
        }
        JsonElement k = o.get("top_k");
        int topK = k == null || k.isJsonNull() ? defaultTopK : integer(k, "'top_k'");
        return new Request(tokens, topK);
    }

    private static int integer(JsonElement e, String what) {
        if (e.isJsonPrimitive() && e.getAsJsonPrimitive().isNumber()) {
            try {
                BigDecimal d = e.getAsBigDecimal();
                return d.intValueExact();
            } catch (ArithmeticException | NumberFormatException ex) {
                // not integral or out of int range: reported below
            }
        }
        throw new InvalidRequestException(what + " must be an integer, got " + e);
    }

    private static String kind(JsonElement e) {
        if (e.isJsonArray()) {
            return "an array";
        }
        if (e.isJsonObject()) {
            return "an object";
        }
        if (e.isJsonNull()) {
            return "null";
        }
        return e.getAsJsonPrimitive().isString() ? "a string" : "the value " + e;
    }

    private static Output success(SequenceScorer.Scores s) {
        JsonObject o = new JsonObject();
        JsonArray next = new JsonArray();
        for (SequenceScorer.TokenLogprob t : s.next()) {
            JsonObject e = new JsonObject();
            e.addProperty("token", t.token());
            e.addProperty("logprob", t.logprob());
            next.add(e);
        }
        o.add("next", next);
        o.addProperty("sequence_logprob", s.sequenceLogprob());
        o.addProperty("tokens", s.tokens());
        o.addProperty("ranks", s.ranks());
        o.addProperty("milliseconds", Math.round(s.millis() * 1000) / 1000.0);
        Output out = new Output(200, "OK");
        out.add(o.toString());
        out.addProperty("Content-Type", "application/json");
        return out;
    }

    private static Output failure(int code, String message) {
        JsonObject o = new JsonObject();
        o.addProperty("code", code);
        o.addProperty("error", message);
        Output out = new Output(code, message);
        out.add(o.toString());
        out.addProperty("Content-Type", "application/json");
        return out;
    }
}
