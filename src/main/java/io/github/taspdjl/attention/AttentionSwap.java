package io.github.taspdjl.attention;

import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.BlockList;
import ai.djl.nn.transformer.ScaledDotProductAttentionBlock;
import ai.djl.nn.transformer.TransformerEncoderBlock;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.List;

/**
 * Replaces DJL's attention in an existing block tree by TASP attention that shares its projections
 * (so no weights are copied), where it can, and reports every swap and every refusal.
 *
 * <ul>
 *   <li>A {@link ScaledDotProductAttentionBlock} becomes a {@link TaspAttentionBlock} when its parent
 *       reaches it only through its child list or through fields (or lists) whose type can hold a
 *       {@code TaspAttentionBlock} (as DJL's {@code SequentialBlock} and most custom blocks do).
 *   <li>DJL's own {@link TransformerEncoderBlock} (used by DJL's {@code BertBlock}) keeps its
 *       attention in a field typed with the final {@code ScaledDotProductAttentionBlock}; the encoder
 *       block itself is replaced one level up by a {@link TaspTransformerEncoderBlock}, a subclass
 *       that reuses its children and parameters, so it fits wherever DJL's encoder is expected.
 * </ul>
 *
 * <p>A swapped attention block's child name gets the suffix {@value #NAME_SUFFIX}, so {@code
 * toString} of the model (which DJL prints by child names) shows where TASP runs; DJL's parameter
 * files do not store names, so this changes nothing in what is saved. A swapped model saves with {@code Model.save} in DJL's format and loads back into the swapped
 * form and into DJL's plain form.
 */
public final class AttentionSwap {

    /** Appended to the child name of every attention block that was swapped. */
    public static final String NAME_SUFFIX = "_TaspAttentionBlock";

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
     * Swaps every reachable DJL attention under {@code root}.
     *
     * @param causal whether the new blocks are causal (DJL's block has no such option)
     * @param group the group the new blocks run in, or null for single-device flash attention (or a
     *     rank's part inside {@code RankContext.run})
     */
    public static Report swap(Block root, boolean causal, SequenceParallelGroup group) {
        List<String> swapped = new ArrayList<>();
        List<String> not = new ArrayList<>();
        if (root instanceof ScaledDotProductAttentionBlock) {
            not.add("(root): the root block itself; wrap it with TaspAttentionBlock.from(...) instead");
            return new Report(swapped, not);
        }
        if (root.getClass() == TransformerEncoderBlock.class) {
            not.add("(root): the root block itself; wrap it with TaspTransformerEncoderBlock.from(...) instead");
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
                String why = replace(parent, i, child,
                        TaspAttentionBlock.from((ScaledDotProductAttentionBlock) child, causal, group),
                        name + NAME_SUFFIX);
                if (why == null) {
                    swapped.add(childPath);
                } else {
                    not.add(childPath + ": " + why);
                }
            } else if (child.getClass() == TransformerEncoderBlock.class) {
                TaspTransformerEncoderBlock rebuilt =
                        TaspTransformerEncoderBlock.from((TransformerEncoderBlock) child, causal, group);
                String why = replace(parent, i, child, rebuilt, name);
                String attention = childPath + "/" + attentionName(rebuilt);
                if (why == null) {
                    swapped.add(attention + " (its TransformerEncoderBlock rebuilt as TaspTransformerEncoderBlock)");
                } else {
                    not.add(attention + ": its TransformerEncoderBlock could not be replaced: " + why);
                }
            } else {
                walk(child, childPath, causal, group, swapped, not);
            }
        }
    }

    private static String attentionName(TaspTransformerEncoderBlock block) {
        for (var child : block.getChildren()) {
            if (child.getValue() == block.getAttention()) {
                return child.getKey();
            }
        }
        return "selfAttention";
    }

    /**
     * Replaces child {@code index} of {@code parent} (which is {@code old}) by {@code replacement}
     * (under {@code key}) in the child list and in every field or list field of the parent that
     * holds it; returns null on success, else the reason.
     */
    private static String replace(Block parent, int index, Block old, Block replacement, String key) {
        if (!(parent instanceof AbstractBlock)) {
            return "its parent " + parent.getClass().getName() + " is not an AbstractBlock";
        }
        List<Field> holders = new ArrayList<>();
        List<List<Object>> lists = new ArrayList<>();
        for (Class<?> c = parent.getClass(); c != null && c != Object.class; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                if (Modifier.isStatic(f.getModifiers()) || f.getType().isPrimitive()) {
                    continue;
                }
                try {
                    f.setAccessible(true);
                    Object value = f.get(parent);
                    if (value == old) {
                        if (!f.getType().isInstance(replacement)) {
                            return "its parent " + parent.getClass().getSimpleName() + " keeps it in field '"
                                    + f.getName() + "' of type " + f.getType().getSimpleName();
                        }
                        holders.add(f);
                    } else if (value instanceof List<?> list && list.stream().anyMatch(x -> x == old)) {
                        if (!listCanHold(f, replacement)) {
                            return "its parent " + parent.getClass().getSimpleName() + " keeps it in list '"
                                    + f.getName() + "' of type " + f.getGenericType().getTypeName();
                        }
                        @SuppressWarnings("unchecked")
                        List<Object> objects = (List<Object>) list;
                        lists.add(objects);
                    }
                } catch (ReflectiveOperationException | RuntimeException e) {
                    return "cannot inspect field '" + f.getName() + "' of " + parent.getClass().getName() + ": " + e;
                }
            }
        }
        try {
            Field childrenField = AbstractBlock.class.getDeclaredField("children");
            childrenField.setAccessible(true);
            BlockList list = (BlockList) childrenField.get(parent);
            for (List<Object> l : lists) {
                for (int i = 0; i < l.size(); i++) {
                    if (l.get(i) == old) {
                        l.set(i, replacement);
                    }
                }
            }
            list.values().set(index, replacement);
            list.keys().set(index, key);
            for (Field f : holders) {
                f.set(parent, replacement);
            }
        } catch (ReflectiveOperationException | RuntimeException e) {
            return "cannot replace it in " + parent.getClass().getName() + ": " + e;
        }
        return null;
    }

    /** Whether a list field's declared element type accepts the replacement (no heap pollution). */
    private static boolean listCanHold(Field f, Block replacement) {
        Type t = f.getGenericType();
        if (t instanceof ParameterizedType p && p.getActualTypeArguments().length == 1
                && p.getActualTypeArguments()[0] instanceof Class<?> element) {
            return element.isInstance(replacement);
        }
        return false;
    }
}
