package io.github.taspdjl.attention;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.index.NDIndex;
import io.github.taspdjl.jni.NativeOps;
import io.github.taspdjl.runtime.PackedSequence;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Attention on one device through libtorch's fused kernels, for DJL NDArrays of the PyTorch
 * engine: flash attention on the CPU; on CUDA flash attention, or the memory-efficient kernel for
 * shapes flash does not take (fp32, head_dim over 256 or not a multiple of 8). Neither materializes
 * the S x S score matrix.
 *
 * <p>Shapes: q (B, Hq, Sq, D); k and v (B, Hkv, Sk, D) with Hq a multiple of Hkv (grouped-query
 * attention). Types: float32, float16, bfloat16. {@code causal} uses the square mask (query i sees
 * keys 0..i) and needs Sq == Sk. {@code scale} null means 1/sqrt(D).
 *
 * <p>{@link #forward} calls the kernels below PyTorch's autograd, so a DJL {@code GradientCollector}
 * does not see them: {@link #backward} gives the gradients explicitly from a forward's output and
 * LSE. {@link #forwardRecorded} goes through the dispatcher instead, so autograd records it.
 *
 * <p>bfloat16: DJL 0.36 reports bfloat16 tensors as {@code UNKNOWN} and aborts on {@code
 * toType(BFLOAT16)}; use {@link NativeOps#cast} and {@link NativeOps#dataType} for them.
 */
public final class FlashAttention {

    private static final Logger logger = LoggerFactory.getLogger(FlashAttention.class);

    private FlashAttention() {}

    /** Output (B, Hq, Sq, D) in the input dtype and log-sum-exp (B, Hq, Sq) in float32 (natural log). */
    public record Result(NDArray output, NDArray lse, Backend backend) {}

    /** dq, dk, dv with the shapes of q, k, v. */
    public record Gradients(NDArray dq, NDArray dk, NDArray dv) {}

    /** Which libtorch kernel ran. */
    public enum Backend {
        CPU_FLASH,
        CUDA_FLASH,
        CUDA_MEMORY_EFFICIENT;

        static Backend of(int code) {
            switch (code) {
                case 1:
                    return CPU_FLASH;
                case 2:
                    return CUDA_FLASH;
                case 3:
                    return CUDA_MEMORY_EFFICIENT;
                default:
                    throw new IllegalStateException("unknown backend code " + code);
            }
        }
    }

    public static Result forward(NDArray q, NDArray k, NDArray v, boolean causal, Float scale) {
        NativeOps.Forward f = NativeOps.attentionForward(q, k, v, causal, scale);
        Backend backend = Backend.of(f.backend());
        if (logger.isDebugEnabled()) {
            logger.debug("attention q {} k {} {} causal={} ran {}", q.getShape(), k.getShape(), NativeOps.dataType(q),
                    causal, backend);
        }
        return new Result(f.output(), f.lse(), backend);
    }

    public static Result forward(NDArray q, NDArray k, NDArray v, boolean causal) {
        return forward(q, k, v, causal, null);
    }

    /**
     * Attention over a packed sequence: each document's queries attend only to its own keys (causal
     * or not), one kernel call per document. q, k and v hold the whole packed sequence (Sq == Sk ==
     * {@code documents.length()}); null documents: {@link #forward(NDArray, NDArray, NDArray, boolean,
     * Float)}.
     */
    public static Result forward(NDArray q, NDArray k, NDArray v, boolean causal, Float scale,
            PackedSequence documents) {
        if (documents == null) {
            return forward(q, k, v, causal, scale);
        }
        if (q.getShape().dimension() != 4 || k.getShape().dimension() != 4) {
            throw new IllegalArgumentException("packed attention takes (B, H, S, D) q, k, v; got q " + q.getShape()
                    + ", k " + k.getShape());
        }
        if (q.getShape().get(2) != k.getShape().get(2)) {
            throw new IllegalArgumentException("packed attention is self-attention: q " + q.getShape() + " and k "
                    + k.getShape() + " must have the same length");
        }
        documents.requireLength(q.getShape().get(2));
        NDList outs = new NDList();
        NDList lses = new NDList();
        Backend backend = null;
        for (int d = 0; d < documents.documentCount(); d++) {
            NDIndex range = new NDIndex(":, :, {}:{}", documents.start(d), documents.end(d));
            Result r = forward(q.get(range), k.get(range), v.get(range), causal, scale);
            outs.add(r.output());
            lses.add(r.lse());
            backend = r.backend();
        }
        return new Result(NDArrays.concat(outs, 2), NDArrays.concat(lses, 2), backend);
    }

    /**
     * Attention recorded by libtorch's autograd, for training on one device: inside a DJL {@code
     * GradientCollector} the result has a gradient function, so {@code collector.backward} reaches q,
     * k and v like any other op, and no S x S score matrix is built (CPU: libtorch's flash kernel;
     * CUDA: its scaled_dot_product_attention, which picks flash or memory-efficient). Grouped-query
     * keys and values are expanded to q's head count first. No dropout.
     */
    public static NDArray forwardRecorded(NDArray q, NDArray k, NDArray v, boolean causal, Float scale) {
        return NativeOps.attentionForwardRecorded(q, k, v, causal, scale);
    }

    /**
     * Gradients of attention given {@code dout} and the forward's {@code out} and {@code lse}. When
     * out and lse are those of attention over a longer key sequence (a sequence-parallel forward),
     * the result is that block's exact share of the gradients.
     */
    public static Gradients backward(
            NDArray dout, NDArray q, NDArray k, NDArray v, NDArray out, NDArray lse, boolean causal, Float scale) {
        NativeOps.Backward b = NativeOps.attentionBackward(dout, q, k, v, out, lse, causal, scale);
        return new Gradients(b.dq(), b.dk(), b.dv());
    }
}
