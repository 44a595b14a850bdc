package io.github.taspdjl.training;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.training.loss.L2Loss;
import ai.djl.training.loss.Loss;
import io.github.taspdjl.jni.ScalarOps;

/**
 * DJL losses whose gradients stay right whenever the garbage collector runs. DJL 0.36's
 * {@code L2Loss} multiplies by its weight with {@code NDArray.mul(Number)}, whose constant autograd
 * keeps in memory the GC may free before the backward (see {@link ScalarOps}): now and then every
 * gradient of a step is scaled by garbage. These compute the same values with constants libtorch
 * owns.
 */
public final class Losses {

    private Losses() {}

    /** DJL's {@code Loss.l2Loss()}: mean of {@code 1/2 (label - prediction)^2}, named "L2Loss". */
    public static Loss l2Loss() {
        return l2Loss("L2Loss", 0.5f);
    }

    /** DJL's {@code Loss.l2Loss(name, weight)}: mean of {@code weight (label - prediction)^2}. */
    public static Loss l2Loss(String name, float weight) {
        return new L2Loss(name, weight) {
            @Override
            public NDArray evaluate(NDList label, NDList prediction) {
                NDArray pred = prediction.singletonOrThrow();
                NDArray labelReshaped = label.singletonOrThrow().reshape(pred.getShape());
                return ScalarOps.mul(labelReshaped.sub(pred).square(), weight).mean();
            }
        };
    }
}
