package io.github.taspdjl.runtime;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.index.NDIndex;
import io.github.taspdjl.plan.SequenceLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

/**
 * Moves a full sequence into each rank's part for a plan's layout and back. The sequence axis is
 * axis 2 of attention tensors (B, H, S, D) and LSEs (B, H, S) ({@link #HEADS_AXIS}), and axis 1 of
 * token embeddings (B, S, E) ({@link #TOKENS_AXIS}). A rank's part is its blocks concatenated in
 * layout order (contiguous: block r; zigzag: blocks r and 2n-1-r). Any length works: block b is
 * tokens [floor(b*S/blocks), floor((b+1)*S/blocks)). Each call leaves only what it returns in the
 * input's manager.
 */
public final class Sharding {

    /** The sequence axis of (B, H, S, D) and (B, H, S) tensors. */
    public static final int HEADS_AXIS = 2;
    /** The sequence axis of (B, S, E) token embeddings. */
    public static final int TOKENS_AXIS = 1;

    private Sharding() {}

    /** Rank r's part of {@code full} (B, H, S, ...), shaped (B, H, localTokens, ...). */
    public static NDArray shard(NDArray full, SequenceLayout layout, int rank) {
        return shard(full, layout, rank, HEADS_AXIS);
    }

    /** Rank r's part of {@code full} along {@code axis}. */
    public static NDArray shard(NDArray full, SequenceLayout layout, int rank, int axis) {
        long seqLen = sequenceLength(full, axis);
        NDList parts = new NDList();
        for (int b : layout.blocksOfRank(rank)) {
            long[] range = layout.blockRange(b, seqLen);
            parts.add(full.get(slice(full, axis, range[0], range[1])));
        }
        if (parts.size() == 1) {
            return parts.get(0);
        }
        NDArray joined = NDArrays.concat(parts, axis);
        closeTemporaries(parts, full, joined); // views for the concat; only the rank's part stays
        return joined;
    }

    /** Every rank's part, indexed by rank. */
    public static List<NDArray> shardAll(NDArray full, SequenceLayout layout) {
        return shardAll(full, layout, HEADS_AXIS);
    }

    /** Every rank's part along {@code axis}, indexed by rank. */
    public static List<NDArray> shardAll(NDArray full, SequenceLayout layout, int axis) {
        List<NDArray> out = new ArrayList<>();
        for (int r = 0; r < layout.worldSize(); r++) {
            out.add(shard(full, layout, r, axis));
        }
        return out;
    }

    /** The inverse of {@link #shardAll}: puts each rank's blocks back in sequence order. */
    public static NDArray gather(List<NDArray> parts, SequenceLayout layout, long seqLen) {
        return gather(parts, layout, seqLen, HEADS_AXIS);
    }

    /** The inverse of {@link #shardAll} along {@code axis}. */
    public static NDArray gather(List<NDArray> parts, SequenceLayout layout, long seqLen, int axis) {
        if (parts.size() != layout.worldSize()) {
            throw new IllegalArgumentException(
                    "gather needs one part per rank: " + parts.size() + " parts for " + layout.worldSize() + " ranks");
        }
        TreeMap<Long, NDArray> byStart = new TreeMap<>();
        for (int r = 0; r < parts.size(); r++) {
            NDArray part = parts.get(r);
            long expected = RankProgram.localTokens(layout, r, seqLen);
            if (part.getShape().dimension() <= axis || part.getShape().get(axis) != expected) {
                throw new IllegalArgumentException("rank " + r + "'s part " + part.getShape() + " should hold "
                        + expected + " tokens on axis " + axis);
            }
            long at = 0;
            for (int b : layout.blocksOfRank(r)) {
                long[] range = layout.blockRange(b, seqLen);
                long len = range[1] - range[0];
                byStart.put(range[0], part.get(slice(part, axis, at, at + len)));
                at += len;
            }
        }
        NDList pieces = new NDList(byStart.values().toArray(new NDArray[0]));
        NDArray full = NDArrays.concat(pieces, axis);
        closeTemporaries(pieces, full, parts.toArray(new NDArray[0])); // views into the parts
        return full;
    }

    /** Closes the temporary arrays of a shard or gather, never one the caller holds or gets. */
    private static void closeTemporaries(NDList temporaries, NDArray keep, NDArray... alsoKeep) {
        for (NDArray t : temporaries) {
            boolean kept = t == keep;
            for (NDArray k : alsoKeep) {
                kept |= t == k;
            }
            if (!kept) {
                t.close();
            }
        }
    }

    private static long sequenceLength(NDArray full, int axis) {
        if (full.getShape().dimension() <= axis) {
            throw new IllegalArgumentException(
                    "expected the sequence on axis " + axis + ", got shape " + full.getShape());
        }
        return full.getShape().get(axis);
    }

    private static NDIndex slice(NDArray a, int axis, long from, long to) {
        StringBuilder sb = new StringBuilder();
        for (int d = 0; d < a.getShape().dimension(); d++) {
            sb.append(d == 0 ? "" : ", ").append(d == axis ? from + ":" + to : ":");
        }
        return new NDIndex(sb.toString());
    }
}
