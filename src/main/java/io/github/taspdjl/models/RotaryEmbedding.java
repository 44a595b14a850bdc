package io.github.taspdjl.models;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.PositionEncoding;

/**
 * Rotary position embeddings as Hugging Face's Llama applies them ("rotate half"): dimension i of
 * the first half and dimension i of the second half of each head form a pair rotated by angle
 * {@code position * theta^(-2i / headDim)}. Angles are computed in float64 on the host from each
 * token's own position, so a token gets the same rotation whichever rank holds it.
 */
public final class RotaryEmbedding implements PositionEncoding {

    private final int headDim;
    private final double[] inverseFrequencies;

    public RotaryEmbedding(int headDim, double theta) {
        if (headDim <= 0 || headDim % 2 != 0) {
            throw new IllegalArgumentException("rotary embeddings need a positive even head size, got " + headDim);
        }
        this.headDim = headDim;
        this.inverseFrequencies = new double[headDim / 2];
        for (int i = 0; i < headDim / 2; i++) {
            inverseFrequencies[i] = Math.pow(theta, -2.0 * i / headDim);
        }
    }

    @Override
    public NDArray apply(NDArray x, long[] positions) {
        Shape s = x.getShape();
        if (s.dimension() != 4 || s.get(3) != headDim || s.get(2) != positions.length) {
            throw new IllegalArgumentException("rotary embeddings take (B, heads, " + positions.length + ", "
                    + headDim + "), got " + s);
        }
        int half = headDim / 2;
        float[] cos = new float[positions.length * half];
        float[] sin = new float[positions.length * half];
        for (int p = 0; p < positions.length; p++) {
            for (int i = 0; i < half; i++) {
                double angle = positions[p] * inverseFrequencies[i];
                cos[p * half + i] = (float) Math.cos(angle);
                sin[p * half + i] = (float) Math.sin(angle);
            }
        }
        NDManager m = x.getManager();
        Shape table = new Shape(positions.length, half);
        NDArray c = m.create(cos, table).toDevice(x.getDevice(), false).toType(x.getDataType(), false);
        NDArray n = m.create(sin, table).toDevice(x.getDevice(), false).toType(x.getDataType(), false);
        NDArray x1 = x.get(new NDIndex("..., :{}", half));
        NDArray x2 = x.get(new NDIndex("..., {}:", half));
        return NDArrays.concat(new NDList(x1.mul(c).sub(x2.mul(n)), x2.mul(c).add(x1.mul(n))), -1);
    }
}
