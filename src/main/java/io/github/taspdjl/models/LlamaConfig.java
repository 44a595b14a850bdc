package io.github.taspdjl.models;

/**
 * The shape of a Llama-style decoder, named as in Hugging Face's {@code config.json}.
 *
 * @param vocabSize tokens in the vocabulary
 * @param hiddenSize the embedding size
 * @param intermediateSize hidden units of each SwiGLU MLP
 * @param layers decoder layers
 * @param heads query heads
 * @param kvHeads key/value heads (grouped-query attention; a divisor of {@code heads})
 * @param ropeTheta the rotary embeddings' base (10000 in Llama 2, 500000 in Llama 3)
 * @param rmsNormEps epsilon of every RMSNorm
 * @param tieWordEmbeddings whether the LM head reuses the token embedding matrix
 */
public record LlamaConfig(int vocabSize, int hiddenSize, int intermediateSize, int layers, int heads, int kvHeads,
        double ropeTheta, double rmsNormEps, boolean tieWordEmbeddings) {

    public LlamaConfig {
        requirePositive("vocabSize", vocabSize);
        requirePositive("hiddenSize", hiddenSize);
        requirePositive("intermediateSize", intermediateSize);
        requirePositive("layers", layers);
        requirePositive("heads", heads);
        requirePositive("kvHeads", kvHeads);
        if (hiddenSize % heads != 0) {
            throw new IllegalArgumentException("hiddenSize " + hiddenSize + " must be a multiple of heads " + heads);
        }
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("kvHeads " + kvHeads + " must divide heads " + heads);
        }
        if ((hiddenSize / heads) % 2 != 0) {
            throw new IllegalArgumentException("rotary embeddings need an even head size, got " + hiddenSize / heads);
        }
        if (!(ropeTheta > 1)) {
            throw new IllegalArgumentException("ropeTheta must be above 1, got " + ropeTheta);
        }
        if (!(rmsNormEps > 0)) {
            throw new IllegalArgumentException("rmsNormEps must be positive, got " + rmsNormEps);
        }
    }

    /** The size of one attention head. */
    public int headDim() {
        return hiddenSize / heads;
    }

    private static void requirePositive(String name, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(name + " must be positive, got " + value);
        }
    }
}
