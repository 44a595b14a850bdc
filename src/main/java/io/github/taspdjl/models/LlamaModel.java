package io.github.taspdjl.models;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Embedding;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.util.PairList;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * A Llama-style causal language model as a DJL block: token embedding, {@link LlamaDecoderLayer}s
 * (RMSNorm, grouped-query TASP attention with rotary embeddings, SwiGLU), a final RMSNorm and an LM
 * head (its own matrix, or the embedding matrix when tied).
 *
 * <p>Input: token ids (B, S), int32 or int64. Output: logits (B, S, vocab), float32. Runs the whole
 * sequence on one device; inside {@code SequenceParallelGroup.runRanks} on each rank's shard of the
 * ids (positions stay global, see {@link RotaryEmbedding}); inside {@code PackedSequence.run} over
 * packed documents (no attention across a boundary, positions restart per document).
 *
 * <p>Saves and loads with DJL's {@code Model.save}/{@code Model.load}; loads Hugging Face Llama
 * weights with {@link LlamaWeights#loadSafetensors}.
 */
public final class LlamaModel extends AbstractBlock {

    private static final byte VERSION = 1;

    private final LlamaConfig config;
    private final Parameter tokenEmbedding;
    private final Parameter lmHead; // null when tied to the token embedding
    private final List<LlamaDecoderLayer> layers;
    private final RmsNorm finalNorm;

    private LlamaModel(Builder b) {
        super(VERSION);
        if (b.config == null) {
            throw new IllegalArgumentException("a LlamaModel needs a config (Builder.setConfig)");
        }
        this.config = b.config;
        this.tokenEmbedding = addParameter(Parameter.builder().setName("tokenEmbedding")
                .setType(Parameter.Type.WEIGHT).optShape(new Shape(config.vocabSize(), config.hiddenSize()))
                .optInitializer(new NormalInitializer(0.02f)).build());
        this.lmHead = config.tieWordEmbeddings() ? null : addParameter(Parameter.builder().setName("lmHead")
                .setType(Parameter.Type.WEIGHT).optShape(new Shape(config.vocabSize(), config.hiddenSize()))
                .optInitializer(new NormalInitializer(0.02f)).build());
        List<LlamaDecoderLayer> list = new ArrayList<>();
        for (int i = 0; i < config.layers(); i++) {
            list.add(addChildBlock("layer" + i, new LlamaDecoderLayer(config, b.group)));
        }
        this.layers = Collections.unmodifiableList(list);
        this.finalNorm = addChildBlock("finalNorm", new RmsNorm(config.hiddenSize(), config.rmsNormEps()));
    }

    public static Builder builder() {
        return new Builder();
    }

    public LlamaConfig getConfig() {
        return config;
    }

    public Parameter getTokenEmbedding() {
        return tokenEmbedding;
    }

    /** The LM head's own matrix (vocab, hidden), or the token embedding when the two are tied. */
    public Parameter getLmHead() {
        return lmHead != null ? lmHead : tokenEmbedding;
    }

    public List<LlamaDecoderLayer> getLayers() {
        return layers;
    }

    public RmsNorm getFinalNorm() {
        return finalNorm;
    }

    /** Initializes the parameters for token ids of shape (B, S) (any B and S run afterwards). */
    public void initialize(NDManager manager) {
        initialize(manager, DataType.FLOAT32, new Shape(1, 1));
    }

    /**
     * Logits (B, S, vocab) of token ids (B, S), for inference. Computes in a sub-manager of the ids'
     * manager and leaves only the logits in it (intermediates are freed on return), so a server or a
     * loop can call it repeatedly without growing the caller's manager.
     */
    public NDArray forward(NDArray tokenIds) {
        NDManager caller = tokenIds.getManager();
        try (NDManager scope = caller.newSubManager()) {
            NDArray ids = tokenIds.duplicate(); // operations follow their first operand's manager
            ids.attach(scope);
            NDArray logits = forward(new ParameterStore(scope, false), new NDList(ids), false).head();
            logits.attach(caller);
            return logits;
        }
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape ids = inputShapes[0];
        return new Shape[] {new Shape(ids.get(0), ids.get(1), config.vocabSize())};
    }

    @Override
    protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
        Shape ids = inputShapes[0];
        Shape hidden = new Shape(ids.get(0), ids.get(1), config.hiddenSize());
        for (LlamaDecoderLayer layer : layers) {
            layer.initialize(manager, dataType, hidden);
        }
        finalNorm.initialize(manager, dataType, hidden);
    }

    @Override
    protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray ids = inputs.head();
        if (ids.getShape().dimension() != 2) {
            throw new IllegalArgumentException("a LlamaModel takes token ids (batch, sequence), got " + ids.getShape());
        }
        if (!ids.getDataType().isInteger()) {
            throw new IllegalArgumentException("token ids must be integers, got " + ids.getDataType());
        }
        NDArray embedding = ps.getValue(tokenEmbedding, ids.getDevice(), training);
        NDArray x = Embedding.embedding(ids.toType(DataType.INT64, false), embedding, SparseFormat.DENSE).head();
        for (LlamaDecoderLayer layer : layers) {
            x = layer.forward(ps, new NDList(x), training, params).head();
        }
        x = finalNorm.forward(ps, new NDList(x), training, params).head();
        NDArray head = lmHead != null ? ps.getValue(lmHead, ids.getDevice(), training) : embedding;
        return Linear.linear(x, head);
    }

    /** Builds a {@link LlamaModel}. */
    public static final class Builder {
        private LlamaConfig config;
        private SequenceParallelGroup group;

        private Builder() {}

        public Builder setConfig(LlamaConfig config) {
            this.config = config;
            return this;
        }

        /**
         * Runs every attention over the whole sequence through this group from the calling thread
         * (the blocks shard, run every rank and gather). Without it the model runs on one device, or
         * on a rank's shard when called inside {@code SequenceParallelGroup.runRanks}.
         */
        public Builder optGroup(SequenceParallelGroup group) {
            this.group = group;
            return this;
        }

        public LlamaModel build() {
            return new LlamaModel(this);
        }
    }
}
