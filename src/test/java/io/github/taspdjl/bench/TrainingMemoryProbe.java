package io.github.taspdjl.bench;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.transformer.ScaledDotProductAttentionBlock;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.attention.TaspAttentionBlock;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Peak resident memory growth of one attention block's forward plus backward in training mode, on
 * one device: DJL's ScaledDotProductAttentionBlock or TaspAttentionBlock (recorded flash attention).
 * Run each in a fresh JVM (peak memory is per process), from the repository root after a build:
 *
 * <pre>
 * java -Dai.djl.offline=true -cp "target/test-classes:target/classes:target/lib/*" \
 *     io.github.taspdjl.bench.TrainingMemoryProbe djl|tasp [seq] [embedding] [heads]
 * </pre>
 */
public final class TrainingMemoryProbe {

    private TrainingMemoryProbe() {}

    public static void main(String[] args) throws Exception {
        String which = args.length > 0 ? args[0] : "tasp";
        long seq = args.length > 1 ? Long.parseLong(args[1]) : 8192;
        int e = args.length > 2 ? Integer.parseInt(args[2]) : 256;
        int heads = args.length > 3 ? Integer.parseInt(args[3]) : 4;
        try (NDManager m = NDManager.newBaseManager("PyTorch")) {
            Engine.getEngine("PyTorch").setRandomSeed(1);
            Shape shape = new Shape(1, seq, e);
            AbstractBlock block = which.equals("djl")
                    ? ScaledDotProductAttentionBlock.builder().setEmbeddingSize(e).setHeadCount(heads)
                            .optAttentionProbsDropoutProb(0f).build()
                    : TaspAttentionBlock.builder().setEmbeddingSize(e).setHeadCount(heads)
                            .optAttentionProbsDropoutProb(0f).build();
            block.initialize(m, DataType.FLOAT32, shape);
            NDArray x = m.randomNormal(shape);
            x.setRequiresGradient(true);
            long before = peakRss();
            long t0 = System.nanoTime();
            try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
                NDArray y = block.forward(new ParameterStore(m, false), new NDList(x), true).singletonOrThrow();
                gc.backward(y.mul(y).mean());
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            long growth = peakRss() - before;
            System.out.printf("%s block, S=%d, E=%d, %d heads: peak RSS growth %d MiB, forward+backward %.1f s, "
                    + "|dx| max %.3g%n", which, seq, e, heads, growth >> 20, seconds,
                    x.getGradient().abs().max().getFloat());
        }
    }

    private static long peakRss() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmHWM in /proc/self/status");
    }
}
