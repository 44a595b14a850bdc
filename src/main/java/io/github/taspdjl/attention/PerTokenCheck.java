package io.github.taspdjl.attention;

import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Convolution;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.nn.recurrent.RecurrentBlock;
import ai.djl.nn.transformer.ScaledDotProductAttentionBlock;
import java.lang.reflect.Field;
import java.util.Arrays;
import java.util.Map;

/**
 * Refuses, before any work, a model that cannot run on a rank's shard of the sequence: running
 * sequence-parallel, every block except {@link TaspAttentionBlock} sees only the rank's tokens, so it
 * must work per token. The check walks the block tree and names the first block that mixes tokens
 * along the sequence axis (axis 1 of (batch, sequence, ...) inputs) with its fix:
 *
 * <ul>
 *   <li>{@link LayerNorm} over axes that include the sequence axis (DJL's default {@code
 *       LayerNorm.builder().build()} normalizes over every axis but the batch): build it with {@code
 *       .axis(2)} for (batch, sequence, embedding) inputs (per token);
 *   <li>{@link BatchNorm} over the sequence axis (its parameters are per position);
 *   <li>DJL's {@link ScaledDotProductAttentionBlock}: it would attend over the shard only; swap it
 *       with {@link AttentionSwap};
 *   <li>recurrent blocks and convolutions, which carry state or mix neighbours along the sequence.
 * </ul>
 *
 * <p>Blocks it does not know (a lambda, a block of your own) pass: the check cannot see inside them.
 */
public final class PerTokenCheck {

    /** The sequence axis of (batch, sequence, ...) token tensors. */
    public static final int SEQUENCE_AXIS = 1;

    private PerTokenCheck() {}

    /**
     * Throws {@link IllegalArgumentException} naming the first block of {@code model} that mixes
     * tokens along the sequence axis of inputs with {@code inputRank} dimensions.
     */
    public static void requirePerToken(Block model, int inputRank) {
        walk(model, model.getClass().getSimpleName(), inputRank);
    }

    private static void walk(Block block, String path, int inputRank) {
        if (block instanceof TaspAttentionBlock) {
            return; // the one block that sees the whole sequence, through the group
        }
        String reason = mixing(block, inputRank);
        if (reason != null) {
            throw new IllegalArgumentException("block " + path + " cannot run sequence-parallel: " + reason
                    + " (every block but TaspAttentionBlock sees only its rank's shard of the sequence; see the "
                    + "README, \"Running a model sequence-parallel\")");
        }
        for (Map.Entry<String, Block> child : block.getChildren().toMap().entrySet()) {
            walk(child.getValue(), path + "/" + child.getKey(), inputRank);
        }
    }

    private static String mixing(Block block, int inputRank) {
        if (block instanceof LayerNorm) {
            int[] axes = (int[]) field(LayerNorm.class, block, "axis");
            if (axes == null) {
                return "DJL's default LayerNorm normalizes over every axis but the batch, the sequence included; "
                        + "build it per token with LayerNorm.builder().axis(" + (inputRank - 1) + ").build() (the embedding axis; DJL's "
                        + "LayerNorm takes no negative axis)";
            }
            for (int a : axes) {
                if (normalize(a, inputRank) == SEQUENCE_AXIS) {
                    return "LayerNorm over axes " + Arrays.toString(axes) + " includes the sequence axis "
                            + SEQUENCE_AXIS + "; build it per token with LayerNorm.builder().axis(" + (inputRank - 1) + ").build() (the embedding axis; DJL's "
                        + "LayerNorm takes no negative axis)";
                }
            }
            return null;
        }
        if (block instanceof BatchNorm) {
            int axis = (Integer) field(BatchNorm.class, block, "axis");
            if (normalize(axis, inputRank) == SEQUENCE_AXIS) {
                return "BatchNorm over axis " + axis + " keeps one statistic per sequence position; build it "
                        + "with BatchNorm.builder().optAxis(" + (inputRank - 1) + ") (per feature)";
            }
            return null;
        }
        if (block instanceof ScaledDotProductAttentionBlock) {
            return "DJL's ScaledDotProductAttentionBlock would attend over the shard only; swap it for a "
                    + "TaspAttentionBlock with AttentionSwap.swap(model, causal, null)";
        }
        if (block instanceof RecurrentBlock) {
            return block.getClass().getSimpleName() + " carries state along the sequence";
        }
        if (block instanceof Convolution) {
            return block.getClass().getSimpleName() + " mixes neighbouring positions";
        }
        return null;
    }

    private static int normalize(int axis, int rank) {
        return axis < 0 ? axis + rank : axis;
    }

    private static Object field(Class<?> owner, Block block, String name) {
        try {
            Field f = owner.getDeclaredField(name);
            f.setAccessible(true);
            return f.get(block);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("cannot read " + owner.getSimpleName() + "." + name
                    + " (a DJL version this code does not know?): " + e, e);
        }
    }
}
