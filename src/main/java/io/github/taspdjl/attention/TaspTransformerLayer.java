package io.github.taspdjl.attention;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.github.taspdjl.runtime.RankContext;
import io.github.taspdjl.runtime.SequenceParallelGroup;

/**
 * A pre-norm transformer layer on {@link TaspAttentionBlock}, for long-context models:
 * {@code x + attention(norm(x))}, then {@code x + mlp(norm(x))} with a GELU MLP of {@code
 * mlpRatio * E} hidden units. Input and output (B, S, E). Everything but attention works per token
 * (its LayerNorms normalize over the embedding axis only), so inside {@code RankContext.run} the
 * layer runs on a rank's shard of the sequence; built with a group and given the full sequence, it
 * shards it, runs on every rank and gathers (see {@link SequenceParallelBlock}).
 */
public final class TaspTransformerLayer extends AbstractBlock {

    private static final byte VERSION = 1;

    private final int embeddingSize;
    private final boolean causal;
    private final SequenceParallelGroup group;
    private final LayerNorm attentionNorm;
    private final TaspAttentionBlock attention;
    private final LayerNorm mlpNorm;
    private final Linear mlpIn;
    private final Linear mlpOut;

    private TaspTransformerLayer(Builder b) {
        super(VERSION);
        if (b.mlpRatio < 1) {
            throw new IllegalArgumentException("mlp ratio must be at least 1, got " + b.mlpRatio);
        }
        this.embeddingSize = b.embeddingSize;
        this.causal = b.causal;
        this.group = b.group;
        this.attentionNorm = addChildBlock("attentionNorm", LayerNorm.builder().axis(2).build());
        this.attention = addChildBlock("attention", TaspAttentionBlock.builder().setEmbeddingSize(b.embeddingSize)
                .setHeadCount(b.headCount).optCausal(b.causal).optAttentionProbsDropoutProb(0f).optGroup(b.group)
                .build());
        this.mlpNorm = addChildBlock("mlpNorm", LayerNorm.builder().axis(2).build());
        this.mlpIn = addChildBlock("mlpIn", Linear.builder().setUnits((long) b.mlpRatio * b.embeddingSize).build());
        this.mlpOut = addChildBlock("mlpOut", Linear.builder().setUnits(b.embeddingSize).build());
    }

    public static Builder builder() {
        return new Builder();
    }

    public TaspAttentionBlock getAttention() {
        return attention;
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {inputShapes[0]};
    }

    @Override
    protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
        Shape x = inputShapes[0];
        attentionNorm.initialize(manager, dataType, x);
        attention.initialize(manager, dataType, x);
        mlpNorm.initialize(manager, dataType, x);
        mlpIn.initialize(manager, dataType, x);
        mlpOut.initialize(manager, dataType, mlpIn.getOutputShapes(new Shape[] {x})[0]);
    }

    @Override
    protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        if (training) {
            return layer(ps, inputs, true, params);
        }
        if (group != null && RankContext.current().isEmpty()) {
            // the whole layer on every rank's shard, as runRanks by hand would
            return SequenceParallelBlock.runSharded(group, causal, this, ps, inputs, false, params);
        }
        return ForwardScope.run(inputs, () -> layer(ps, inputs, false, params));
    }

    private NDList layer(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray x = inputs.singletonOrThrow();
        if (x.getShape().dimension() != 3 || x.getShape().get(2) != embeddingSize) {
            throw new IllegalArgumentException(
                    "TaspTransformerLayer takes (batch, sequence, " + embeddingSize + "), got " + x.getShape());
        }
        NDArray a = attention.forward(ps, attentionNorm.forward(ps, new NDList(x), training, params), training, params)
                .head();
        x = x.add(a);
        NDArray h = mlpIn.forward(ps, mlpNorm.forward(ps, new NDList(x), training, params), training, params).head();
        NDArray m = mlpOut.forward(ps, new NDList(Activation.gelu(h)), training, params).head();
        return new NDList(x.add(m));
    }

    /** Builds a {@link TaspTransformerLayer}. */
    public static final class Builder {
        private int embeddingSize;
        private int headCount;
        private int mlpRatio = 4;
        private boolean causal = true;
        private SequenceParallelGroup group;

        private Builder() {}

        public Builder setEmbeddingSize(int embeddingSize) {
            this.embeddingSize = embeddingSize;
            return this;
        }

        public Builder setHeadCount(int headCount) {
            this.headCount = headCount;
            return this;
        }

        /** Hidden units of the MLP as a multiple of the embedding size (default 4). */
        public Builder optMlpRatio(int ratio) {
            this.mlpRatio = ratio;
            return this;
        }

        /** Causal self-attention (default true: a decoder layer). */
        public Builder optCausal(boolean causal) {
            this.causal = causal;
            return this;
        }

        /** Runs attention over the whole sequence through this group (see {@link TaspAttentionBlock}). */
        public Builder optGroup(SequenceParallelGroup group) {
            this.group = group;
            return this;
        }

        public TaspTransformerLayer build() {
            return new TaspTransformerLayer(this);
        }
    }
}
