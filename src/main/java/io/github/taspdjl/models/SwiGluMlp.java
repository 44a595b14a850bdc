package io.github.taspdjl.models;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/** Llama's MLP: {@code down(silu(gate(x)) * up(x))}, three projections without bias. Per token. */
public final class SwiGluMlp extends AbstractBlock {

    private static final byte VERSION = 1;

    private final Linear gate;
    private final Linear up;
    private final Linear down;

    public SwiGluMlp(int hiddenSize, int intermediateSize) {
        super(VERSION);
        this.gate = addChildBlock("gateProjection", Linear.builder().setUnits(intermediateSize).optBias(false).build());
        this.up = addChildBlock("upProjection", Linear.builder().setUnits(intermediateSize).optBias(false).build());
        this.down = addChildBlock("downProjection", Linear.builder().setUnits(hiddenSize).optBias(false).build());
    }

    public Linear getGateProjection() {
        return gate;
    }

    public Linear getUpProjection() {
        return up;
    }

    public Linear getDownProjection() {
        return down;
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {inputShapes[0]};
    }

    @Override
    protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
        Shape x = inputShapes[0];
        gate.initialize(manager, dataType, x);
        up.initialize(manager, dataType, x);
        down.initialize(manager, dataType, gate.getOutputShapes(new Shape[] {x})[0]);
    }

    @Override
    protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray g = gate.forward(ps, inputs, training, params).head();
        NDArray u = up.forward(ps, inputs, training, params).head();
        // SiLU as g * sigmoid(g): DJL's Activation.swish multiplies by beta through mul(Number), a
        // constant autograd keeps in memory the GC frees (ScalarOps says why).
        return down.forward(ps, new NDList(g.mul(Activation.sigmoid(g)).mul(u)), training, params);
    }
}
