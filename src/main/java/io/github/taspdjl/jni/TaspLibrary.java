package io.github.taspdjl.jni;

/**
 * The native methods of {@code libtasp.so}, and nothing else (see {@link NativeOps} for the checked
 * Java-friendly wrappers and {@link NativeLoader} for loading). Tensors cross as the {@code long}
 * handles of DJL's PtNDArray ({@code torch::Tensor*}); returned handles are new and must be wrapped
 * exactly once so that an NDManager frees them.
 */
final class TaspLibrary {

    private TaspLibrary() {}

    /** Resolves the libtorch C shim from the loaded libtorch; {@code libtorchDir} is a fallback. */
    static native void init(String libtorchDir);

    /** "cpu" or "cuda". */
    static native String flavor();

    static native String version();

    /** Returns {out, lse, backend}. */
    static native long[] attentionForward(long q, long k, long v, boolean causal, boolean hasScale, double scale);

    /** Returns {dq, dk, dv}. */
    static native long[] attentionBackward(
            long dout, long q, long k, long v, long out, long lse, boolean causal, boolean hasScale, double scale);

    /** A contiguous copy in another dtype: 0 float32, 1 float16, 2 bfloat16, 3 float64. */
    static native long cast(long t, int dtype);

    /** The dtype code (as for {@link #cast}) of a tensor, -1 for other types. */
    static native int dtype(long t);

    /** In-place fp32 log-sum-exp merge of a partial result into an accumulator. */
    static native void mergePartial(long accOut, long accLse, long blockOut, long blockLse);
}
