package io.github.taspdjl.models;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.Initializer;
import ai.djl.util.PairList;

/**
 * Root-mean-square normalization over the last axis: {@code x / sqrt(mean(x^2) + eps) * weight},
 * computed in float32. Per token, so it runs on any shard of a sequence.
 */
public final class RmsNorm extends AbstractBlock {

    private static final byte VERSION = 1;

    private final int size;
    private final float eps;
    private final Parameter weight;

    public RmsNorm(int size, double eps) {
        super(VERSION);
        if (size <= 0 || !(eps > 0)) {
            throw new IllegalArgumentException("RMSNorm needs a positive size and epsilon, got " + size + ", " + eps);
        }
        this.size = size;
        this.eps = (float) eps;
        this.weight = addParameter(Parameter.builder().setName("weight").setType(Parameter.Type.GAMMA)
                .optShape(new Shape(size)).optInitializer(Initializer.ONES).build());
    }

    public Parameter getWeight() {
        return weight;
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {inputShapes[0]};
    }

    @Override
    protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray x = inputs.singletonOrThrow();
        if (x.getShape().getLastDimension() != size) {
            throw new IllegalArgumentException("RMSNorm of size " + size + " got " + x.getShape());
        }
        NDArray w = ps.getValue(weight, x.getDevice(), training);
        NDArray meanSquare = x.square().mean(new int[] {-1}, true);
        return new NDList(x.div(meanSquare.add(eps).sqrt()).mul(w));
    }
}
