package io.github.taspdjl.serving;

import io.github.taspdjl.models.LlamaConfig;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The shape of a served model: a Llama-style decoder ({@link LlamaConfig}) and the longest prompt
 * it accepts. A served folder carries these as plain {@code serving.properties} keys (they reach the
 * translator as arguments), so the parameters are read into a model of exactly this shape.
 */
public record ServedModelConfig(LlamaConfig model, int maxLength) {

    public static final String VOCABULARY = "vocab_size";
    public static final String HIDDEN = "hidden_size";
    public static final String INTERMEDIATE = "intermediate_size";
    public static final String LAYERS = "layers";
    public static final String HEADS = "heads";
    public static final String KV_HEADS = "kv_heads";
    public static final String ROPE_THETA = "rope_theta";
    public static final String RMS_NORM_EPS = "rms_norm_eps";
    public static final String TIE_EMBEDDINGS = "tie_word_embeddings";
    public static final String MAX_LENGTH = "max_length";

    public ServedModelConfig {
        if (model == null) {
            throw new IllegalArgumentException("a served model needs a LlamaConfig");
        }
        if (maxLength < 1) {
            throw new IllegalArgumentException(MAX_LENGTH + " must be at least 1, got " + maxLength);
        }
    }

    public int vocabularySize() {
        return model.vocabSize();
    }

    /** Reads the keys from translator arguments (values as strings or numbers). */
    public static ServedModelConfig fromArguments(Map<String, ?> a) {
        LlamaConfig llama = new LlamaConfig(intArgument(a, VOCABULARY), intArgument(a, HIDDEN),
                intArgument(a, INTERMEDIATE), intArgument(a, LAYERS), intArgument(a, HEADS), intArgument(a, KV_HEADS),
                doubleArgument(a, ROPE_THETA), doubleArgument(a, RMS_NORM_EPS),
                Boolean.parseBoolean(String.valueOf(required(a, TIE_EMBEDDINGS)).trim()));
        return new ServedModelConfig(llama, intArgument(a, MAX_LENGTH));
    }

    /** The keys {@link #fromArguments} reads, in a stable order. */
    public Map<String, String> toArguments() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put(VOCABULARY, Integer.toString(model.vocabSize()));
        m.put(HIDDEN, Integer.toString(model.hiddenSize()));
        m.put(INTERMEDIATE, Integer.toString(model.intermediateSize()));
        m.put(LAYERS, Integer.toString(model.layers()));
        m.put(HEADS, Integer.toString(model.heads()));
        m.put(KV_HEADS, Integer.toString(model.kvHeads()));
        m.put(ROPE_THETA, Double.toString(model.ropeTheta()));
        m.put(RMS_NORM_EPS, Double.toString(model.rmsNormEps()));
        m.put(TIE_EMBEDDINGS, Boolean.toString(model.tieWordEmbeddings()));
        m.put(MAX_LENGTH, Integer.toString(maxLength));
        return m;
    }

    static int intArgument(Map<String, ?> arguments, String key) {
        Object v = required(arguments, key);
        try {
            return Integer.parseInt(v.toString().trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("serving.properties '" + key + "' must be an integer, got '" + v + "'",
                    e);
        }
    }

    private static double doubleArgument(Map<String, ?> arguments, String key) {
        Object v = required(arguments, key);
        try {
            return Double.parseDouble(v.toString().trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("serving.properties '" + key + "' must be a number, got '" + v + "'", e);
        }
    }

    private static Object required(Map<String, ?> arguments, String key) {
        Object v = arguments.get(key);
        if (v == null) {
            throw new IllegalArgumentException("serving.properties has no '" + key + "'");
        }
        return v;
    }
}
