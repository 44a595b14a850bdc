package io.github.taspdjl.jni;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

/**
 * Checked wrappers over {@link TaspLibrary}: arguments are validated in Java first (so bad input is an
 * {@link IllegalArgumentException} naming the shapes, never a native crash), handles are taken
 * from DJL's PtNDArray and results are wrapped once into PtNDArrays owned by the first input's
 * manager.
 */
public final class NativeOps {

    private static final Set<DataType> ATTENTION_TYPES =
            EnumSet.of(DataType.FLOAT32, DataType.FLOAT16, DataType.BFLOAT16);
    /** Index = the native dtype code (TASP_DTYPE_* in tasp.h). */
    private static final List<DataType> NATIVE_TYPES =
            List.of(DataType.FLOAT32, DataType.FLOAT16, DataType.BFLOAT16, DataType.FLOAT64);

    private NativeOps() {}

    /** Raw forward result: output, fp32 LSE and the backend code from tasp.h. */
    public record Forward(NDArray output, NDArray lse, int backend) {}

    /** Raw backward result. */
    public record Backward(NDArray dq, NDArray dk, NDArray dv) {}

    public static Forward attentionForward(NDArray q, NDArray k, NDArray v, boolean causal, Float scale) {
        checkAttention(q, k, v, causal, scale);
        NativeLoader.load();
        long[] r = TaspLibrary.attentionForward(
                handle(q, "q"), handle(k, "k"), handle(v, "v"), causal, scale != null, scale == null ? 0 : scale);
        PtNDManager manager = (PtNDManager) q.getManager();
        return new Forward(new PtNDArray(manager, r[0]), new PtNDArray(manager, r[1]), (int) r[2]);
    }

    /**
     * Attention recorded by libtorch's autograd: the result has a gradient function when grad mode is
     * on (a {@code GradientCollector} on this thread) and an input requires gradients. Grouped-query
     * keys and values are expanded to q's head count first, by DJL operations (so recorded too).
     */
    public static NDArray attentionForwardRecorded(NDArray q, NDArray k, NDArray v, boolean causal, Float scale) {
        checkAttention(q, k, v, causal, scale);
        NativeLoader.load();
        long group = q.getShape().get(1) / k.getShape().get(1);
        NDArray kx = expandHeads(k, group);
        NDArray vx = expandHeads(v, group);
        long r = TaspLibrary.attentionForwardRecorded(
                handle(q, "q"), handle(kx, "k"), handle(vx, "v"), causal, scale != null, scale == null ? 0 : scale);
        return new PtNDArray((PtNDManager) q.getManager(), r);
    }

    /** (B, Hkv, S, D) -> (B, Hkv * group, S, D), query head h reading key/value head h / group. */
    private static NDArray expandHeads(NDArray kv, long group) {
        if (group == 1) {
            return kv;
        }
        Shape s = kv.getShape();
        return kv.reshape(s.get(0), s.get(1), 1, s.get(2), s.get(3))
                .broadcast(s.get(0), s.get(1), group, s.get(2), s.get(3))
                .reshape(s.get(0), s.get(1) * group, s.get(2), s.get(3));
    }

    /**
     * Sets the calling thread's autograd grad mode (libtorch keeps it per thread: off on the thread
     * that loaded the engine, on by default on every other thread); returns the previous mode.
     */
    public static boolean setGradMode(boolean enabled) {
        NativeLoader.load();
        return TaspLibrary.setGradMode(enabled);
    }

    public static Backward attentionBackward(
            NDArray dout, NDArray q, NDArray k, NDArray v, NDArray out, NDArray lse, boolean causal, Float scale) {
        checkAttention(q, k, v, causal, scale);
        if (!out.getShape().equals(q.getShape()) || !dout.getShape().equals(q.getShape())) {
            throw new IllegalArgumentException("attention backward: out " + out.getShape() + " and dout "
                    + dout.getShape() + " must have q's shape " + q.getShape());
        }
        DataType qt = dataType(q);
        if (dataType(out) != qt || dataType(dout) != qt) {
            throw new IllegalArgumentException("attention backward: out (" + dataType(out) + ") and dout ("
                    + dataType(dout) + ") must have q's dtype " + qt);
        }
        Shape lseShape = new Shape(q.getShape().get(0), q.getShape().get(1), q.getShape().get(2));
        if (!lse.getShape().equals(lseShape) || lse.getDataType() != DataType.FLOAT32) {
            throw new IllegalArgumentException("attention backward: lse must be float32 " + lseShape + ", got "
                    + lse.getDataType() + " " + lse.getShape());
        }
        checkSameDevice("attention backward", q, dout, out, lse);
        NativeLoader.load();
        long[] r = TaspLibrary.attentionBackward(handle(dout, "dout"), handle(q, "q"), handle(k, "k"),
                handle(v, "v"), handle(out, "out"), handle(lse, "lse"), causal, scale != null,
                scale == null ? 0 : scale);
        PtNDManager manager = (PtNDManager) q.getManager();
        return new Backward(new PtNDArray(manager, r[0]), new PtNDArray(manager, r[1]), new PtNDArray(manager, r[2]));
    }

    /**
     * Folds {@code (blockOut, blockLse)} into the fp32 accumulators {@code (accOut, accLse)} in
     * place. An accumulator row with LSE {@code -inf} is empty.
     */
    public static void mergePartial(NDArray accOut, NDArray accLse, NDArray blockOut, NDArray blockLse) {
        Shape o = accOut.getShape();
        if (o.dimension() != 4 || !blockOut.getShape().equals(o)) {
            throw new IllegalArgumentException(
                    "merge: outputs must be equal 4-D shapes, got " + o + " and " + blockOut.getShape());
        }
        Shape rows = new Shape(o.get(0), o.get(1), o.get(2));
        if (!accLse.getShape().equals(rows) || !blockLse.getShape().equals(rows)) {
            throw new IllegalArgumentException("merge: lse must be " + rows + ", got " + accLse.getShape() + " and "
                    + blockLse.getShape());
        }
        if (accOut.getDataType() != DataType.FLOAT32 || accLse.getDataType() != DataType.FLOAT32
                || blockLse.getDataType() != DataType.FLOAT32 || !ATTENTION_TYPES.contains(dataType(blockOut))) {
            throw new IllegalArgumentException("merge: accumulators and lse must be float32, block output "
                    + "float32/float16/bfloat16; got " + accOut.getDataType() + ", " + accLse.getDataType() + ", "
                    + dataType(blockOut) + ", " + blockLse.getDataType());
        }
        checkSameDevice("merge", accOut, accLse, blockOut, blockLse);
        NativeLoader.load();
        TaspLibrary.mergePartial(
                handle(accOut, "accOut"), handle(accLse, "accLse"), handle(blockOut, "blockOut"),
                handle(blockLse, "blockLse"));
    }

    /**
     * A contiguous copy of {@code a} in float32, float16, bfloat16 or float64, on the same device.
     * Use this rather than {@code toType} for bfloat16: DJL 0.36's PyTorch engine aborts the JVM when
     * {@code toType(BFLOAT16)} is called.
     */
    public static NDArray cast(NDArray a, DataType type) {
        int code = NATIVE_TYPES.indexOf(type);
        if (code < 0) {
            throw new IllegalArgumentException(
                    "cast: " + type + " is not supported (float32, float16, bfloat16, float64)");
        }
        NativeLoader.load();
        return new PtNDArray((PtNDManager) a.getManager(), TaspLibrary.cast(handle(a, "a"), code));
    }

    /**
     * The element type of {@code a}. DJL 0.36 reports bfloat16 PyTorch tensors as {@code UNKNOWN};
     * this asks libtorch in that case.
     */
    public static DataType dataType(NDArray a) {
        DataType t = a.getDataType();
        if (t != DataType.UNKNOWN || !(a instanceof PtNDArray)) {
            return t;
        }
        NativeLoader.load();
        int code = TaspLibrary.dtype(((PtNDArray) a).getHandle());
        return code >= 0 && code < NATIVE_TYPES.size() ? NATIVE_TYPES.get(code) : DataType.UNKNOWN;
    }

    /** The shape checks every attention entry point shares; messages give all three shapes. */
    public static void checkAttention(NDArray q, NDArray k, NDArray v, boolean causal, Float scale) {
        Shape qs = q.getShape();
        Shape ks = k.getShape();
        Shape vs = v.getShape();
        String shapes = " [q " + qs + ", k " + ks + ", v " + vs + "]";
        if (qs.dimension() != 4 || ks.dimension() != 4 || vs.dimension() != 4) {
            throw new IllegalArgumentException(
                    "attention: q, k and v must be 4-D (batch, heads, sequence, head_dim)" + shapes);
        }
        if (!ks.equals(vs)) {
            throw new IllegalArgumentException("attention: k and v must have the same shape" + shapes);
        }
        if (qs.get(0) != ks.get(0)) {
            throw new IllegalArgumentException("attention: batch sizes differ" + shapes);
        }
        if (qs.get(3) != ks.get(3)) {
            throw new IllegalArgumentException("attention: head dimensions differ" + shapes);
        }
        if (qs.get(2) == 0 || ks.get(2) == 0) {
            throw new IllegalArgumentException("attention: zero-length sequence" + shapes);
        }
        if (qs.get(0) == 0 || qs.get(1) == 0 || ks.get(1) == 0 || qs.get(3) == 0) {
            throw new IllegalArgumentException("attention: a batch, head or head_dim dimension is zero" + shapes);
        }
        if (qs.get(1) % ks.get(1) != 0) {
            throw new IllegalArgumentException(
                    "attention: query heads (" + qs.get(1) + ") must be a multiple of key/value heads ("
                            + ks.get(1) + ")" + shapes);
        }
        if (causal && qs.get(2) != ks.get(2)) {
            throw new IllegalArgumentException("attention: causal attention needs equal query and key lengths"
                    + shapes + "; with cached keys every key is visible to a new query, so pass causal=false");
        }
        DataType dt = dataType(q);
        if (dataType(k) != dt || dataType(v) != dt) {
            throw new IllegalArgumentException("attention: dtypes differ: q " + dt + ", k " + dataType(k)
                    + ", v " + dataType(v) + shapes);
        }
        if (!ATTENTION_TYPES.contains(dt)) {
            throw new IllegalArgumentException(
                    "attention: dtype " + dt + " is not supported (float32, float16, bfloat16)" + shapes);
        }
        if (scale != null && !(scale > 0 && Float.isFinite(scale))) {
            throw new IllegalArgumentException("attention: scale must be positive and finite, got " + scale);
        }
        checkSameDevice("attention", q, k, v);
    }

    private static void checkSameDevice(String what, NDArray first, NDArray... rest) {
        for (NDArray a : rest) {
            if (!a.getDevice().equals(first.getDevice())) {
                StringBuilder sb = new StringBuilder(what).append(": inputs are on different devices: ")
                        .append(first.getDevice());
                for (NDArray b : rest) {
                    sb.append(", ").append(b.getDevice());
                }
                throw new IllegalArgumentException(sb.toString());
            }
        }
    }

    static long handle(NDArray a, String name) {
        if (!(a instanceof PtNDArray)) {
            throw new IllegalArgumentException(name + " must be an NDArray of DJL's PyTorch engine, got "
                    + a.getClass().getName() + " (create it with a PyTorch NDManager)");
        }
        return ((PtNDArray) a).getHandle();
    }

    /** The flavor and versions of the loaded library. */
    public static NativeLoader.LoadedLibrary loaded() {
        return NativeLoader.load();
    }
}
