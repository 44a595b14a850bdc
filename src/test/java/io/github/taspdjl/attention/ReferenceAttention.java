package io.github.taspdjl.attention;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import io.github.taspdjl.jni.ScalarOps;

/**
 * Attention written with DJL's own operations over the whole sequence, materializing the scores:
 * the independent reference every test compares against. Computes in the dtype it is given
 * (tests pass float32 or float64 copies).
 */
public final class ReferenceAttention {

    private ReferenceAttention() {}

    /** Output and log-sum-exp of softmax(q k^T * scale [+ causal mask]) v. */
    public record Result(NDArray output, NDArray lse) {}

    public static Result compute(NDArray q, NDArray k, NDArray v, boolean causal, Float scale) {
        long heads = q.getShape().get(1);
        long kvHeads = k.getShape().get(1);
        long qLen = q.getShape().get(2);
        long kLen = k.getShape().get(2);
        double s = scale != null ? scale : 1.0 / Math.sqrt(q.getShape().get(3));
        if (heads != kvHeads) {
            // query head h reads key/value head h / group
            k = k.repeat(1, heads / kvHeads);
            v = v.repeat(1, heads / kvHeads);
        }
        // Not mul(Number): autograd would keep a constant whose memory the GC frees (ScalarOps).
        NDArray scores = ScalarOps.mul(q.matMul(k.transpose(0, 1, 3, 2)), s);
        if (causal) {
            NDManager m = q.getManager();
            NDArray rows = m.arange(0, (int) qLen, 1, DataType.INT64).reshape(qLen, 1);
            NDArray cols = m.arange(0, (int) kLen, 1, DataType.INT64).reshape(1, kLen);
            NDArray hidden = cols.gt(rows);
            NDArray minusInf = m.full(scores.getShape(), Float.NEGATIVE_INFINITY, scores.getDataType());
            scores = NDArrays.where(hidden.broadcast(scores.getShape()), minusInf, scores);
        }
        NDArray max = scores.max(new int[] {-1}, true);
        NDArray shifted = scores.sub(max);
        NDArray sumExp = shifted.exp().sum(new int[] {-1}, true);
        NDArray probs = shifted.exp().div(sumExp);
        NDArray lse = sumExp.log().add(max).squeeze(-1);
        return new Result(probs.matMul(v), lse);
    }
}
