package io.github.taspdjl.serving;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.util.PairList;
import io.github.taspdjl.attention.TaspTransformerLayer;
import java.util.ArrayList;
import java.util.List;

/**
 * The demo's causal transformer ({@link TaspTransformerLayer} blocks) made a language model: a token
 * embedding plus sine/cosine position encodings in front, a final LayerNorm and a linear head over
 * the vocabulary behind. Inputs (tokens, positions), both (B, s) int32; output logits (B, s, V).
 * Position encodings are computed from the positions given, not from the array index, so a rank's
 * shard of a long sequence (see {@code Sharding}) gets exactly the encodings its tokens have in the
 * whole sequence; that is also why they are computed rather than learned: any position up to the
 * maximum length costs no parameters.
 */
public final class DemoDecoder extends AbstractBlock implements DecoderModel {

    private static final byte VERSION = 1;

    private final DecoderConfig config;
    private final Parameter tokenEmbedding;
    private final List<TaspTransformerLayer> layers = new ArrayList<>();
    private final LayerNorm finalNorm;
    private final Linear head;
    private final float[] inverseFrequencies;

    public DemoDecoder(DecoderConfig config) {
        super(VERSION);
        this.config = config;
        this.tokenEmbedding = addParameter(Parameter.builder().setName("tokenEmbedding").setType(Parameter.Type.WEIGHT)
                .optShape(new Shape(config.vocabularySize(), config.embeddingSize()))
                .optInitializer(new NormalInitializer(1f)).build());
        for (int i = 0; i < config.layerCount(); i++) {
            layers.add(addChildBlock("layer" + i, TaspTransformerLayer.builder().setEmbeddingSize(config.embeddingSize())
                    .setHeadCount(config.headCount()).optCausal(true).build()));
        }
        this.finalNorm = addChildBlock("finalNorm", LayerNorm.builder().axis(2).build());
        this.head = addChildBlock("head", Linear.builder().setUnits(config.vocabularySize()).optBias(false).build());
        int half = config.embeddingSize() / 2;
        this.inverseFrequencies = new float[half];
        for (int j = 0; j < half; j++) {
            inverseFrequencies[j] = (float) Math.pow(10_000.0, -2.0 * j / config.embeddingSize());
        }
    }

    @Override
    public DecoderConfig config() {
        return config;
    }

    @Override
    public Block block() {
        return this;
    }

    @Override
    public NDArray logits(ParameterStore ps, NDArray tokens, NDArray positions) {
        return forward(ps, new NDList(tokens, positions), false).singletonOrThrow();
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape t = inputShapes[0];
        return new Shape[] {new Shape(t.get(0), t.get(1), config.vocabularySize())};
    }

    @Override
    protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
        Shape t = inputShapes[0];
        Shape x = new Shape(t.get(0), t.get(1), config.embeddingSize());
        for (TaspTransformerLayer layer : layers) {
            layer.initialize(manager, dataType, x);
        }
        finalNorm.initialize(manager, dataType, x);
        head.initialize(manager, dataType, x);
    }

    @Override
    protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        if (inputs.size() != 2) {
            throw new IllegalArgumentException("DemoDecoder takes (tokens, positions), got " + inputs.size() + " arrays");
        }
        NDArray tokens = inputs.get(0);
        NDArray positions = inputs.get(1);
        if (tokens.getShape().dimension() != 2 || !tokens.getShape().equals(positions.getShape())) {
            throw new IllegalArgumentException("tokens and positions must both be (batch, sequence), got "
                    + tokens.getShape() + " and " + positions.getShape());
        }
        long b = tokens.getShape().get(0);
        long s = tokens.getShape().get(1);
        int e = config.embeddingSize();
        NDArray table = ps.getValue(tokenEmbedding, tokens.getDevice(), training);
        NDArray x = table.get(tokens.flatten().toType(DataType.INT64, false)).reshape(b, s, e);
        x = x.add(positionEncoding(positions));
        for (TaspTransformerLayer layer : layers) {
            x = layer.forward(ps, new NDList(x), training, params).head();
        }
        x = finalNorm.forward(ps, new NDList(x), training, params).head();
        return head.forward(ps, new NDList(x), training, params);
    }

    /** sin(p * f_j) in the first half of the embedding, cos(p * f_j) in the second. */
    private NDArray positionEncoding(NDArray positions) {
        NDManager m = positions.getManager();
        NDArray freq = m.create(inverseFrequencies).toDevice(positions.getDevice(), false);
        NDArray angles = positions.toType(DataType.FLOAT32, false).expandDims(2).mul(freq.reshape(1, 1, -1));
        return NDArrays.concat(new NDList(angles.sin(), angles.cos()), 2);
    }
}
