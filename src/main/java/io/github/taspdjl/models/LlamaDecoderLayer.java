package io.github.taspdjl.models;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.github.taspdjl.attention.TaspAttentionBlock;
import io.github.taspdjl.runtime.SequenceParallelGroup;

/**
 * One Llama decoder layer: {@code x + attention(rmsNorm(x))}, then {@code x + swiGlu(rmsNorm(x))}.
 * The attention is a causal, grouped-query {@link TaspAttentionBlock} without biases, with rotary
 * embeddings on queries and keys; so it runs on one device, on a rank's shard inside {@code
 * RankContext.run}, or through a group, like every TASP block. Everything else works per token.
 */
public final class LlamaDecoderLayer extends AbstractBlock {

    private static final byte VERSION = 1;

    private final int hiddenSize;
    private final RmsNorm inputNorm;
    private final TaspAttentionBlock attention;
    private final RmsNorm postAttentionNorm;
    private final SwiGluMlp mlp;

    /**
     * @param group runs attention over the whole sequence through this group, or null (one device,
     *     or a rank's shard inside {@code RankContext.run})
     */
    public LlamaDecoderLayer(LlamaConfig config, SequenceParallelGroup group) {
        super(VERSION);
        this.hiddenSize = config.hiddenSize();
        this.inputNorm = addChildBlock("inputNorm", new RmsNorm(config.hiddenSize(), config.rmsNormEps()));
        this.attention = addChildBlock("attention", TaspAttentionBlock.builder().setEmbeddingSize(config.hiddenSize())
                .setHeadCount(config.heads()).optKvHeadCount(config.kvHeads()).optBias(false).optCausal(true)
                .optAttentionProbsDropoutProb(0f)
                .optPositionEncoding(new RotaryEmbedding(config.headDim(), config.ropeTheta())).optGroup(group)
                .build());
        this.postAttentionNorm =
                addChildBlock("postAttentionNorm", new RmsNorm(config.hiddenSize(), config.rmsNormEps()));
        this.mlp = addChildBlock("mlp", new SwiGluMlp(config.hiddenSize(), config.intermediateSize()));
    }

    public RmsNorm getInputNorm() {
        return inputNorm;
    }

    public TaspAttentionBlock getAttention() {
        return attention;
    }

    public RmsNorm getPostAttentionNorm() {
        return postAttentionNorm;
    }

    public SwiGluMlp getMlp() {
        return mlp;
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {inputShapes[0]};
    }

    @Override
    protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
        for (Block child : children.values()) { // every child takes (B, S, hidden)
            child.initialize(manager, dataType, inputShapes[0]);
        }
    }

    @Override
    protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray x = inputs.singletonOrThrow();
        if (x.getShape().dimension() != 3 || x.getShape().get(2) != hiddenSize) {
            throw new IllegalArgumentException(
                    "a Llama layer takes (batch, sequence, " + hiddenSize + "), got " + x.getShape());
        }
        NDList normed = inputNorm.forward(ps, new NDList(x), training, params);
        x = x.add(attention.forward(ps, normed, training, params).head());
        NDList normed2 = postAttentionNorm.forward(ps, new NDList(x), training, params);
        return new NDList(x.add(mlp.forward(ps, normed2, training, params).head()));
    }
}
