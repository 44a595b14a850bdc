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
 * axis 2 of (B, H, S, D) tensors and of (B, H, S) LSEs. A rank's part is its blocks concatenated in
 * layout order (contiguous: block r; zigzag: blocks r and 2n-1-r). Any length works: block b is
 * tokens [floor(b*S/blocks), floor((b+1)*S/blocks)).
 */
public final class Sharding {

    private static final int SEQ_AXIS = 2;

    private Sharding() {}

    /** Rank r's part of {@code full}, shaped (B, H, localTokens, ...). */
    public static NDArray shard(NDArray full, SequenceLayout layout, int rank) {
        long seqLen = sequenceLength(full);
        NDList parts = new NDList();
        for (int b : layout.blocksOfRank(rank)) {
            long[] range = layout.blockRange(b, seqLen);
            parts.add(full.get(slice(full, range[0], range[1])));
        }
        return parts.size() == 1 ? parts.get(0) : NDArrays.concat(parts, SEQ_AXIS);
    }

    /** Every rank's part, indexed by rank. */
    public static List<NDArray> shardAll(NDArray full, SequenceLayout layout) {
        List<NDArray> out = new ArrayList<>();
        for (int r = 0; r < layout.worldSize(); r++) {
            out.add(shard(full, layout, r));
        }
        return out;
    }

    /** The inverse of {@link #shardAll}: puts each rank's blocks back in sequence order. */
    public static NDArray gather(List<NDArray> parts, SequenceLayout layout, long seqLen) {
        if (parts.size() != layout.worldSize()) {
            throw new IllegalArgumentException(
                    "gather needs one part per rank: " + parts.size() + " parts for " + layout.worldSize() + " ranks");
        }
        TreeMap<Long, NDArray> byStart = new TreeMap<>();
        for (int r = 0; r < parts.size(); r++) {
            NDArray part = parts.get(r);
            long expected = RankProgram.localTokens(layout, r, seqLen);
            if (part.getShape().dimension() <= SEQ_AXIS || part.getShape().get(SEQ_AXIS) != expected) {
                throw new IllegalArgumentException("rank " + r + "'s part " + part.getShape() + " should hold "
                        + expected + " tokens on axis " + SEQ_AXIS);
            }
            long at = 0;
            for (int b : layout.blocksOfRank(r)) {
                long[] range = layout.blockRange(b, seqLen);
                long len = range[1] - range[0];
                byStart.put(range[0], part.get(slice(part, at, at + len)));
                at += len;
            }
        }
        return NDArrays.concat(new NDList(byStart.values().toArray(new NDArray[0])), SEQ_AXIS);
    }

    private static long sequenceLength(NDArray full) {
        if (full.getShape().dimension() <= SEQ_AXIS) {
            throw new IllegalArgumentException(
                    "expected (batch, heads, sequence, ...) with the sequence on axis 2, got " + full.getShape());
        }
        return full.getShape().get(SEQ_AXIS);
    }

    private static NDIndex slice(NDArray a, long from, long to) {
        StringBuilder sb = new StringBuilder(":, :, ").append(from).append(':').append(to);
        for (int d = SEQ_AXIS + 1; d < a.getShape().dimension(); d++) {
            sb.append(", :");
        }
        return new NDIndex(sb.toString());
    }
}
