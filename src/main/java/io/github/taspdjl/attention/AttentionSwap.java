package io.github.taspdjl.attention;

import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.transformer.ScaledDotProductAttentionBlock;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;

/**
 * Replaces DJL's {@link ScaledDotProductAttentionBlock}s in an existing block tree by {@link
 * TaspAttentionBlock}s that share their projections (so no weights are copied), where it can.
 *
 * <p>A block can be swapped when its parent reaches it only through its child list or through
 * fields typed {@code Block} or {@code AbstractBlock} (as DJL's {@code SequentialBlock} and most
 * custom blocks do). A parent that keeps it in a field typed {@code ScaledDotProductAttentionBlock}
 * (DJL's own {@code TransformerEncoderBlock}, for one) cannot hold a different class there; such
 * blocks are left alone and reported with the reason.
 */
public final class AttentionSwap {

    private AttentionSwap() {}

    /** What was swapped and what was not, by path in the block tree ("encoder/layer0/attention"). */
    public record Report(List<String> swapped, List<String> notSwapped) {
        @Override
        public String toString() {
            StringBuilder sb = new StringBuilder("swapped " + swapped.size() + " attention block(s)");
            for (String s : swapped) {
                sb.append("\n  swapped: ").append(s);
            }
            for (String s : notSwapped) {
                sb.append("\n  not swapped: ").append(s);
            }
            return sb.toString();
        }
    }

    /**
     * Swaps every reachable {@link ScaledDotProductAttentionBlock} under {@code root}.
     *
     * @param causal whether the new blocks are causal (DJL's block has no such option)
     * @param group the group the new blocks run in, or null for single-device flash attention
     */
    public static Report swap(Block root, boolean causal, SequenceParallelGroup group) {
        List<String> swapped = new ArrayList<>();
        List<String> not = new ArrayList<>();
        if (root instanceof ScaledDotProductAttentionBlock) {
            not.add("(root): the root block itself; wrap it with TaspAttentionBlock.from(...) instead");
            return new Report(swapped, not);
        }
        walk(root, "", causal, group, swapped, not);
        return new Report(List.copyOf(swapped), List.copyOf(not));
    }

    private static void walk(Block parent, String path, boolean causal, SequenceParallelGroup group,
            List<String> swapped, List<String> not) {
        BlockList children = parent.getChildren();
        for (int i = 0; i < children.size(); i++) {
            String name = children.get(i).getKey();
            Block child = children.get(i).getValue();
            String childPath = path.isEmpty() ? name : path + "/" + name;
            if (child instanceof ScaledDotProductAttentionBlock) {
                String why = replace(parent, i, (ScaledDotProductAttentionBlock) child, causal, group);
                if (why == null) {
                    swapped.add(childPath);
                } else {
                    not.add(childPath + ": " + why);
                }
            } else {
                walk(child, childPath, causal, group, swapped, not);
            }
        }
    }

    /** Replaces child {@code index} of {@code parent}; returns null on success, else the reason. */
    private static String replace(Block parent, int index, ScaledDotProductAttentionBlock old, boolean causal,
            SequenceParallelGroup group) {
        if (!(parent instanceof AbstractBlock)) {
            return "its parent " + parent.getClass().getName() + " is not an AbstractBlock";
        }
        List<Field> holders = new ArrayList<>();
        for (Class<?> c = parent.getClass(); c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                if (Modifier.isStatic(f.getModifiers()) || f.getType().isPrimitive()) {
                    continue;
                }
                try {
                    f.setAccessible(true);
                    if (f.get(parent) == old) {
                        if (!f.getType().isAssignableFrom(TaspAttentionBlock.class)) {
                            return "its parent " + parent.getClass().getSimpleName() + " keeps it in field '"
                                    + f.getName() + "' of type " + f.getType().getSimpleName();
                        }
                        holders.add(f);
                    }
                } catch (ReflectiveOperationException | RuntimeException e) {
                    return "cannot inspect field '" + f.getName() + "' of " + parent.getClass().getName() + ": " + e;
                }
            }
        }
        TaspAttentionBlock replacement = TaspAttentionBlock.from(old, causal, group);
        try {
            Field childrenField = AbstractBlock.class.getDeclaredField("children");
            childrenField.setAccessible(true);
            BlockList list = (BlockList) childrenField.get(parent);
            list.values().set(index, replacement);
            for (Field f : holders) {
                f.set(parent, replacement);
            }
        } catch (ReflectiveOperationException | RuntimeException e) {
            return "cannot replace it in " + parent.getClass().getName() + ": " + e;
        }
        return null;
    }
}
