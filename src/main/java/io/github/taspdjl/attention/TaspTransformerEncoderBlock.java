package io.github.taspdjl.attention;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.transformer.ScaledDotProductAttentionBlock;
import ai.djl.nn.transformer.TransformerEncoderBlock;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import java.lang.reflect.Field;
import java.util.function.Function;

/**
 * DJL's {@link TransformerEncoderBlock} with TASP attention: DJL's block keeps its attention in a
 * field typed {@code ScaledDotProductAttentionBlock} (a final class), so the swap happens one level
 * up. This subclass fits wherever DJL's block is expected (DJL's {@code BertBlock} keeps a {@code
 * List<TransformerEncoderBlock>}), reuses the original block's children and parameters in the same
 * order (under the same names, the attention's with {@link AttentionSwap#NAME_SUFFIX}), with a {@link TaspAttentionBlock} sharing the attention's
 * projections in place of DJL's attention, and computes what DJL's block computes. Its saved
 * parameters are DJL's format: a model saved with it loads back into DJL's plain block and the other
 * way round.
 */
public final class TaspTransformerEncoderBlock extends TransformerEncoderBlock {

    private final TaspAttentionBlock attention;
    private final Block attentionDropout;
    private final Block attentionNorm;
    private final Block feedForward;
    private final Block feedForwardDropout;
    private final Block outputNorm;

    private TaspTransformerEncoderBlock(TransformerEncoderBlock djl, TaspAttentionBlock attention) {
        // DJL's constructor builds children of its own; the smallest ones it accepts, dropped below.
        super(1, 1, 1, 0f, Function.identity());
        this.attention = attention;
        this.attentionDropout = field(djl, "selfAttentionDropout");
        this.attentionNorm = field(djl, "attentionNorm");
        this.feedForward = field(djl, "pointWisefullyConnected");
        this.feedForwardDropout = field(djl, "fullyConnectedDropout");
        this.outputNorm = field(djl, "outputNorm");
        // Same children, same names, same order as the original: the parameter stream is DJL's.
        BlockList original = djl.getChildren();
        children = new BlockList();
        for (int i = 0; i < original.size(); i++) {
            Block child = original.get(i).getValue();
            String key = original.get(i).getKey();
            if (child instanceof ScaledDotProductAttentionBlock) {
                children.add(key + AttentionSwap.NAME_SUFFIX, attention);
            } else {
                children.add(key, child);
            }
        }
        if (djl.isInitialized()) {
            inputShapes = djl.getInputShapes();
            inputNames = new java.util.ArrayList<>(djl.describeInput().keys());
        }
    }

    /**
     * A TASP encoder block sharing every child and parameter of {@code djl}.
     *
     * @param causal whether attention is causal (DJL's encoder is not)
     * @param group the group attention runs in, or null (one device, or a rank inside {@code
     *     RankContext.run})
     */
    public static TaspTransformerEncoderBlock from(TransformerEncoderBlock djl, boolean causal,
            SequenceParallelGroup group) {
        if (djl.getClass() != TransformerEncoderBlock.class) {
            throw new IllegalArgumentException("only DJL's own TransformerEncoderBlock can be rebuilt, not "
                    + djl.getClass().getName());
        }
        ScaledDotProductAttentionBlock old = field(djl, "selfAttentionBlock");
        return new TaspTransformerEncoderBlock(djl, TaspAttentionBlock.from(old, causal, group));
    }

    @SuppressWarnings("unchecked")
    private static <T> T field(TransformerEncoderBlock djl, String name) {
        try {
            Field f = TransformerEncoderBlock.class.getDeclaredField(name);
            f.setAccessible(true);
            return (T) f.get(djl);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("cannot read " + name + " of DJL's TransformerEncoderBlock "
                    + "(a DJL version this code does not know?): " + e, e);
        }
    }

    public TaspAttentionBlock getAttention() {
        return attention;
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
        attention.initialize(manager, dataType, inputShapes);
        attentionNorm.initialize(manager, dataType, inputShapes);
        feedForward.initialize(manager, dataType, inputShapes);
        outputNorm.initialize(manager, dataType, inputShapes);
    }

    @Override
    protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        // DJL's encoder step by step, DJL's quirk included: the second residual adds the block's
        // input, not the normalized attention output.
        NDArray embedding = inputs.head();
        NDList attended = attention.forward(ps, inputs, training, params);
        NDArray withResidual = attentionDropout.forward(ps, attended, training, params).singletonOrThrow()
                .add(embedding);
        NDList normalized = attentionNorm.forward(ps, new NDList(withResidual), training, params);
        NDList fed = feedForwardDropout.forward(ps, feedForward.forward(ps, normalized, training, params), training,
                params);
        return outputNorm.forward(ps, new NDList(fed.singletonOrThrow().add(embedding)), training, params);
    }
}
