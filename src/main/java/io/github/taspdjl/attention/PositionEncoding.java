package io.github.taspdjl.attention;

import ai.djl.ndarray.NDArray;

/**
 * A position encoding applied to queries and keys inside {@link TaspAttentionBlock}, after the
 * projections and before attention (rotary embeddings, for one). It gets each token's position as
 * {@link io.github.taspdjl.runtime.TokenPositions} computes it: global under every sequence-parallel
 * layout, restarting per document in a packed sequence.
 */
@FunctionalInterface
public interface PositionEncoding {

    /**
     * Encodes {@code x} (B, heads, S, head_dim) whose S tokens sit at {@code positions} (length S).
     */
    NDArray apply(NDArray x, long[] positions);
}
