package io.github.taspdjl.serving;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.models.LlamaModel;

/** A {@link LlamaModel} served with a maximum prompt length. */
public record ServedLlama(LlamaModel model, int maxLength) implements DecoderModel {

    @Override
    public int vocabularySize() {
        return model.getConfig().vocabSize();
    }

    @Override
    public Block block() {
        return model;
    }

    @Override
    public NDArray logits(ParameterStore ps, NDArray tokens) {
        return model.forward(ps, new NDList(tokens), false).head();
    }
}
