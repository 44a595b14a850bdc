package io.github.taspdjl.serving;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The shape of a served decoder language model: vocabulary, embedding width, attention heads,
 * layers and the longest sequence it accepts. A served folder carries these as plain
 * {@code serving.properties} keys (they reach the translator as arguments), so the parameters file
 * is read into a model of exactly this shape.
 */
public record DecoderConfig(int vocabularySize, int embeddingSize, int headCount, int layerCount, int maxLength) {

    public static final String VOCABULARY = "vocab_size";
    public static final String EMBEDDING = "embedding_size";
    public static final String HEADS = "heads";
    public static final String LAYERS = "layers";
    public static final String MAX_LENGTH = "max_length";

    public DecoderConfig {
        require(vocabularySize >= 2, VOCABULARY + " must be at least 2, got " + vocabularySize);
        require(embeddingSize >= 2 && embeddingSize % 2 == 0,
                EMBEDDING + " must be even and at least 2 (sine and cosine positions), got " + embeddingSize);
        require(headCount >= 1 && embeddingSize % headCount == 0,
                HEADS + " must divide " + EMBEDDING + " " + embeddingSize + ", got " + headCount);
        require(layerCount >= 1, LAYERS + " must be at least 1, got " + layerCount);
        require(maxLength >= 1, MAX_LENGTH + " must be at least 1, got " + maxLength);
    }

    /** Reads the five keys from translator arguments (values as strings or numbers). */
    public static DecoderConfig fromArguments(Map<String, ?> arguments) {
        return new DecoderConfig(intArgument(arguments, VOCABULARY), intArgument(arguments, EMBEDDING),
                intArgument(arguments, HEADS), intArgument(arguments, LAYERS), intArgument(arguments, MAX_LENGTH));
    }

    /** The keys {@link #fromArguments} reads, in a stable order. */
    public Map<String, String> toArguments() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put(VOCABULARY, Integer.toString(vocabularySize));
        m.put(EMBEDDING, Integer.toString(embeddingSize));
        m.put(HEADS, Integer.toString(headCount));
        m.put(LAYERS, Integer.toString(layerCount));
        m.put(MAX_LENGTH, Integer.toString(maxLength));
        return m;
    }

    static int intArgument(Map<String, ?> arguments, String key) {
        Object v = arguments.get(key);
        if (v == null) {
            throw new IllegalArgumentException("serving.properties has no '" + key + "'");
        }
        try {
            return Integer.parseInt(v.toString().trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("serving.properties '" + key + "' must be an integer, got '" + v + "'",
                    e);
        }
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
