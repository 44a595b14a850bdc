package io.github.taspdjl.serving;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;

/**
 * What the serving layer needs of a causal decoder language model: its vocabulary, the longest
 * prompt it takes, its DJL block and next-token logits. Everything but attention must work per
 * token, so that the same call runs on a rank's shard of a long prompt inside {@code
 * SequenceParallelGroup.runRanks}; the model takes each token's position from the thread's rank
 * context ({@code TokenPositions}), so a shard gets the positions its tokens have in the whole
 * sequence.
 */
public interface DecoderModel {

    int vocabularySize();

    int maxLength();

    Block block();

    /** Next-token logits (B, s, vocabulary) for token ids (B, s); row i predicts the token after i. */
    NDArray logits(ParameterStore ps, NDArray tokens);
}
