package io.github.taspdjl.serving;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;

/**
 * What the serving layer needs of a causal decoder language model: its shape, its DJL block (whose
 * parameters a served folder saves and loads) and next-token logits for token ids at given
 * positions. Everything but attention must work per token, so that the same call runs on a rank's
 * shard of a long prompt inside {@code RankContext.run} (the positions say where each token of the
 * shard sits in the whole sequence).
 */
public interface DecoderModel {

    DecoderConfig config();

    Block block();

    /**
     * Next-token logits (B, s, vocabulary) for token ids (B, s) at sequence positions (B, s), both
     * int32 on the model's device; row i predicts the token after position i.
     */
    NDArray logits(ParameterStore ps, NDArray tokens, NDArray positions);
}
