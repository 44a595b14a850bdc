package io.github.taspdjl.attention;

import ai.djl.ndarray.NDArray;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.runtime.RankContext;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The record of one training step's cuts in the autograd graph, for a segmented backward. libtorch's
 * autograd cannot differentiate sequence-parallel attention (its kernels run below autograd, across
 * ranks), so inside a group each attention cuts the graph: q, k and v are detached, the output O
 * becomes a fresh leaf, and this tape remembers (q, k, v, O, LSE).
 *
 * <p>{@link #backward} then runs, on the thread that recorded: autograd from the loss (keeping the
 * graph); then for each attention in reverse order the distributed backward (dq, dk, dv from O's
 * gradient, with the global output and LSE), fed back into autograd as {@code sum(q dq + k dk + v
 * dv)}. Each seed adds its share to the parameters' gradients (and to lower attentions' O), so the
 * sum is the gradient of the whole graph. Layers below an attention are traversed once per seed
 * above them (DJL 0.36 cannot tell from Java whether a non-leaf array has gradient history, which
 * cutting at layer inputs would need).
 *
 * <p>A tape is active on one thread between {@link #open} and {@link #close} (the training
 * collector of {@code io.github.taspdjl.training.TaspTrainer} does both).
 */
public final class SegmentedTape implements AutoCloseable {

    private static final ThreadLocal<SegmentedTape> ACTIVE = new ThreadLocal<>();

    private interface Cut {
        void backward();
    }

    private final List<Cut> cuts = new ArrayList<>();

    private SegmentedTape() {}

    /** Starts recording on this thread. */
    public static SegmentedTape open() {
        if (ACTIVE.get() != null) {
            throw new IllegalStateException("a segmented tape is already recording on this thread");
        }
        SegmentedTape tape = new SegmentedTape();
        ACTIVE.set(tape);
        return tape;
    }

    /** The tape recording on this thread, if any. */
    public static Optional<SegmentedTape> active() {
        return Optional.ofNullable(ACTIVE.get());
    }

    /**
     * Attention over the whole sequence through {@code group}, cut out of the autograd graph and
     * recorded for the backward. Returns O (B, H, S, D), a leaf that requires gradients.
     */
    NDArray attention(SequenceParallelGroup group, NDArray q, NDArray k, NDArray v, boolean causal) {
        NDArray qd = q.stopGradient();
        NDArray kd = k.stopGradient();
        NDArray vd = v.stopGradient();
        TaspAttention.Result r = TaspAttention.forward(group, qd, kd, vd, causal, null);
        NDArray out = r.output();
        out.setRequiresGradient(true);
        NDArray lse = r.lse();
        cuts.add(() -> {
            NDArray dout = out.getGradient();
            TaspAttention.Gradients g = TaspAttention.backward(group, dout, qd, kd, vd, out, lse, causal, null);
            NDArray seed = q.mul(g.dq()).sum().add(k.mul(g.dk()).sum()).add(v.mul(g.dv()).sum());
            JniUtils.backward((PtNDArray) seed, (PtNDArray) seed.onesLike(), true, false);
        });
        return out;
    }

    /**
     * This rank's part of attention inside a {@link RankContext} (its shard; the group's other ranks,
     * threads or processes, run theirs), cut out of the autograd graph and recorded: the backward
     * runs this rank's part of the distributed backward, so every rank must run its backward too, in
     * the same order. Returns O (B, H, local tokens, D), a leaf that requires gradients.
     */
    NDArray attention(RankContext c, NDArray q, NDArray k, NDArray v, boolean causal) {
        NDArray qd = q.stopGradient();
        NDArray kd = k.stopGradient();
        NDArray vd = v.stopGradient();
        TaspAttention.RankResult r = TaspAttention.forward(c.group(), c.rank(), qd, kd, vd, causal, null, c.seqLen());
        NDArray out = r.output();
        out.setRequiresGradient(true);
        NDArray lse = r.lse();
        cuts.add(() -> {
            NDArray dout = out.getGradient();
            NativeGroup.RankGradients g =
                    TaspAttention.backward(c.group(), c.rank(), dout, qd, kd, vd, out, lse, causal, null, c.seqLen());
            NDArray seed = q.mul(g.dq()).sum().add(k.mul(g.dk()).sum()).add(v.mul(g.dv()).sum());
            JniUtils.backward((PtNDArray) seed, (PtNDArray) seed.onesLike(), true, false);
        });
        return out;
    }

    /** The segmented backward of {@code loss} (a scalar): see the class comment. */
    public void backward(NDArray loss) {
        backward(loss, 1f);
    }

    /**
     * The segmented backward of {@code weight * loss}: the weight scales the seed, so every gradient
     * downstream, the attention cuts' output gradients included, is that of the weighted loss.
     */
    public void backward(NDArray loss, float weight) {
        JniUtils.backward((PtNDArray) loss, (PtNDArray) loss.onesLike().mul(weight), true, false);
        for (int i = cuts.size() - 1; i >= 0; i--) {
            cuts.get(i).backward();
        }
        cuts.clear();
    }

    /** Stops recording on this thread. */
    @Override
    public void close() {
        cuts.clear();
        if (ACTIVE.get() == this) {
            ACTIVE.remove();
        }
    }
}
