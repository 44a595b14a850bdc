package io.github.taspdjl.cli;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.FlashAttention;
import io.github.taspdjl.jni.NativeOps;
import io.github.taspdjl.jni.ScalarOps;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code tasp attention}: one attention call through the native bridge into libtorch's fused
 * kernel, forward and backward, checked against attention written with DJL's own operations (which
 * materializes the S x S scores), with both timed once. A smoke test of the whole stack on this
 * machine, not a benchmark.
 */
@Command(
        name = "attention",
        mixinStandardHelpOptions = true,
        versionProvider = VersionCommand.Provider.class,
        description = "Run single-device flash attention through tasp's native bridge and check it against "
                + "DJL's own operations.")
public final class AttentionCommand implements Callable<Integer> {

    @Option(names = "--seq", defaultValue = "2048", description = "sequence length (default ${DEFAULT-VALUE})")
    int seq;

    @Option(names = "--heads", defaultValue = "8", description = "query heads (default ${DEFAULT-VALUE})")
    int heads;

    @Option(names = "--kv-heads", defaultValue = "2", description = "key/value heads (default ${DEFAULT-VALUE})")
    int kvHeads;

    @Option(names = "--head-dim", defaultValue = "64", description = "head dimension (default ${DEFAULT-VALUE})")
    int headDim;

    @Option(names = "--batch", defaultValue = "1", description = "batch size (default ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--causal", description = "causal mask")
    boolean causal;

    @Option(names = "--seed", defaultValue = "42", description = "random seed (default ${DEFAULT-VALUE})")
    int seed;

    @Override
    public Integer call() {
        Engine engine = Engine.getEngine("PyTorch");
        engine.setRandomSeed(seed);
        var lib = NativeOps.loaded();
        System.out.printf(Locale.ROOT, "libtorch %s, tasp native %s flavor, device %s%n", lib.libtorchVersion(),
                lib.flavor(), engine.defaultDevice());
        System.out.printf(Locale.ROOT, "q (%d, %d, %d, %d), k/v (%d, %d, %d, %d), float32, %s%n", batch, heads, seq,
                headDim, batch, kvHeads, seq, headDim, causal ? "causal" : "full mask");
        try (NDManager m = NDManager.newBaseManager(engine.defaultDevice(), "PyTorch")) {
            NDArray q = m.randomNormal(new Shape(batch, heads, seq, headDim));
            NDArray k = m.randomNormal(new Shape(batch, kvHeads, seq, headDim));
            NDArray v = m.randomNormal(new Shape(batch, kvHeads, seq, headDim));
            NDArray dout = m.randomNormal(new Shape(batch, heads, seq, headDim));

            long t0 = System.nanoTime();
            FlashAttention.Result ours = FlashAttention.forward(q, k, v, causal);
            FlashAttention.Gradients grads =
                    FlashAttention.backward(dout, q, k, v, ours.output(), ours.lse(), causal, null);
            long t1 = System.nanoTime();
            Reference ref = Reference.compute(engine, q, k, v, dout, causal, heads / kvHeads);
            long t2 = System.nanoTime();

            double errOut = maxAbs(ours.output(), ref.out);
            double errLse = maxAbs(ours.lse(), ref.lse);
            double errDq = maxAbs(grads.dq(), ref.dq);
            double errDk = maxAbs(grads.dk(), ref.dk);
            double errDv = maxAbs(grads.dv(), ref.dv);
            System.out.printf(Locale.ROOT, "kernel: %s%n", ours.backend());
            System.out.printf(Locale.ROOT, "max abs error: out %.2e, lse %.2e, dq %.2e, dk %.2e, dv %.2e%n", errOut,
                    errLse, errDq, errDk, errDv);
            System.out.printf(Locale.ROOT,
                    "time (one run, forward + backward): tasp %.1f ms, DJL reference %.1f ms "
                            + "(reference holds %d MiB of scores per copy)%n",
                    (t1 - t0) / 1e6, (t2 - t1) / 1e6, (long) batch * heads * seq * seq * 4 / (1 << 20));
            double worst = Math.max(Math.max(errOut, errLse), Math.max(errDq, Math.max(errDk, errDv)));
            System.out.printf(Locale.ROOT, "max error = %.2e%n", worst);
            return worst <= 1e-4 ? 0 : 1;
        }
    }

    private static double maxAbs(NDArray a, NDArray b) {
        return a.sub(b).abs().max().getFloat();
    }

    /** Attention and its gradients from DJL's own operations and autograd. */
    private static final class Reference {
        NDArray out;
        NDArray lse;
        NDArray dq;
        NDArray dk;
        NDArray dv;

        static Reference compute(
                Engine engine, NDArray q0, NDArray k0, NDArray v0, NDArray dout, boolean causal, int group) {
            Reference r = new Reference();
            NDArray q = q0.duplicate();
            NDArray k = k0.duplicate();
            NDArray v = v0.duplicate();
            q.setRequiresGradient(true);
            k.setRequiresGradient(true);
            v.setRequiresGradient(true);
            try (var gc = engine.newGradientCollector()) {
                NDArray kk = group > 1 ? k.repeat(1, group) : k;
                NDArray vv = group > 1 ? v.repeat(1, group) : v;
                NDArray scores = ScalarOps.mul(q.matMul(kk.transpose(0, 1, 3, 2)), 1.0 / Math.sqrt(q.getShape().get(3)));
                if (causal) {
                    long s = q.getShape().get(2);
                    NDManager m = q.getManager();
                    NDArray above = m.arange(0, (int) s, 1, DataType.INT64).reshape(1, s)
                            .gt(m.arange(0, (int) s, 1, DataType.INT64).reshape(s, 1));
                    scores = scores.sub(above.toType(DataType.FLOAT32, false).mul(1e30f));
                }
                NDArray max = scores.max(new int[] {-1}, true).stopGradient();
                NDArray e = scores.sub(max).exp();
                NDArray sum = e.sum(new int[] {-1}, true);
                NDArray out = e.div(sum).matMul(vv);
                r.out = out.stopGradient();
                r.lse = sum.log().add(max).squeeze(-1).stopGradient();
                gc.backward(out.mul(dout).sum());
            }
            r.dq = q.getGradient().duplicate();
            r.dk = k.getGradient().duplicate();
            r.dv = v.getGradient().duplicate();
            return r;
        }
    }
}
