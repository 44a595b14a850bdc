package io.github.taspdjl.jni;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;

/**
 * Arithmetic with a constant that autograd may keep until the backward.
 *
 * <p>Why: in DJL 0.36's PyTorch engine, {@code NDArray.mul(Number)} (and {@code div}, {@code pow},
 * {@code maximum}, {@code minimum} with a number, and {@code Activation.swish}, which multiplies by
 * its beta) makes a 0-dimensional tensor over a Java direct buffer ({@code torch::from_blob}, no
 * copy: the Java array keeps the buffer alive), applies the operation and closes that array at
 * once. When an input requires gradients, libtorch's autograd saves the constant for the backward
 * (d(c x)/dx = c), still pointing into the buffer; once the closed array is garbage-collected the
 * buffer is freed, and a later backward multiplies by whatever the freed memory holds: another
 * constant (gradients off by a factor) or allocator bookkeeping (values like 1e17 or 1e28). It
 * depends on when the GC runs, so it shows up rarely and anywhere in a long JVM. Here the constant
 * is a tensor libtorch owns (a copy), so autograd's reference stays valid. Use these on every path
 * that may be differentiated.
 */
public final class ScalarOps {

    private ScalarOps() {}

    /** {@code x * c}, differentiable, with a constant libtorch owns. The result has x's dtype. */
    public static NDArray mul(NDArray x, double c) {
        try (NDArray constant = owned(x.getManager(), c)) {
            return x.mul(constant);
        }
    }

    /** {@code x / c}, differentiable, with a constant libtorch owns. The result has x's dtype. */
    public static NDArray div(NDArray x, double c) {
        try (NDArray constant = owned(x.getManager(), c)) {
            return x.div(constant);
        }
    }

    /**
     * A float64 0-dimensional array whose memory libtorch allocated (a clone of DJL's buffer-backed
     * scalar). A 0-dimensional operand does not change the other operand's dtype.
     */
    private static NDArray owned(NDManager manager, double c) {
        try (NDArray borrowed = manager.create(c)) {
            return borrowed.duplicate();
        }
    }
}
