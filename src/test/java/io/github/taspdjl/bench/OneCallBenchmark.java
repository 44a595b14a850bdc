package io.github.taspdjl.bench;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.ParameterList;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.attention.SequenceParallelBlock;
import io.github.taspdjl.attention.TaspTransformerLayer;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.runtime.Sharding;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;

/**
 * The one call for a full sequence against the manual path, side by side in one JVM, for
 * docs/PERFORMANCE.md: a causal transformer (TaspTransformerLayer, E=64, 4 heads) over {@code seq}
 * tokens on 8 virtual ranks, run (a) by hand (shard, {@code runRanks}, gather), (b) through {@link
 * SequenceParallelBlock} and (c) as layers built with {@code optGroup} given the full sequence; the
 * three alternate, and the median of each is printed. Run after {@code mvn -B -o -DskipTests
 * test-compile}:
 *
 * <pre>
 * mvn -B -o -q dependency:build-classpath -Dmdep.outputFile=cp.txt
 * java -Dai.djl.offline=true -cp target/test-classes:target/classes:$(cat cp.txt) io.github.taspdjl.bench.OneCallBenchmark 32768 2 3
 * </pre>
 * (arguments: sequence length, layers, rounds).
 */
public final class OneCallBenchmark {

    private OneCallBenchmark() {}

    public static void main(String[] args) {
        long seq = args.length > 0 ? Long.parseLong(args[0]) : 32_768;
        int layers = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 3;
        int e = 64;
        Engine.getEngine("PyTorch").setRandomSeed(5);
        try (NDManager manager = NDManager.newBaseManager("PyTorch");
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(8).timeout(600_000).build()) {
            SequentialBlock plain = new SequentialBlock();
            SequentialBlock grouped = new SequentialBlock();
            for (int i = 0; i < layers; i++) {
                plain.add(TaspTransformerLayer.builder().setEmbeddingSize(e).setHeadCount(4).build());
                grouped.add(TaspTransformerLayer.builder().setEmbeddingSize(e).setHeadCount(4).optGroup(group).build());
            }
            plain.initialize(manager, DataType.FLOAT32, new Shape(1, seq, e));
            grouped.initialize(manager, DataType.FLOAT32, new Shape(1, seq, e));
            ParameterList from = plain.getParameters();
            ParameterList to = grouped.getParameters();
            for (int i = 0; i < from.size(); i++) {
                to.get(i).getValue().getArray().set(from.get(i).getValue().getArray().toFloatArray());
            }
            ParameterStore ps = new ParameterStore(manager, false);
            NDArray x = manager.randomNormal(new Shape(1, seq, e));
            SequenceLayout layout = group.plan(true).layout();
            SequenceParallelBlock oneCall = SequenceParallelBlock.wrap(plain, group, true);

            Supplier<NDArray> byHand = () -> {
                List<NDArray> shards = Sharding.shardAll(x, layout, Sharding.TOKENS_AXIS);
                List<NDArray> outs = group.runRanks(seq, true,
                        r -> plain.forward(ps, new NDList(shards.get(r)), false).singletonOrThrow());
                return Sharding.gather(outs, layout, seq, Sharding.TOKENS_AXIS);
            };
            Supplier<NDArray> wrapped = () -> oneCall.forward(ps, new NDList(x), false).singletonOrThrow();
            Supplier<NDArray> optGroup = () -> grouped.forward(ps, new NDList(x), false).singletonOrThrow();
            String[] names = {"by hand (runRanks)", "SequenceParallelBlock", "layers built with optGroup"};
            List<Supplier<NDArray>> runs = List.of(byHand, wrapped, optGroup);
            double[][] ms = new double[3][rounds];
            NDArray reference = byHand.get(); // warm-up, and the output the others must match
            for (int round = 0; round < rounds; round++) {
                for (int i = 0; i < 3; i++) {
                    long t0 = System.nanoTime();
                    NDArray out = runs.get(i).get();
                    out.toFloatArray();
                    ms[i][round] = (System.nanoTime() - t0) / 1e6;
                    float diff = out.sub(reference).abs().max().getFloat();
                    System.out.printf(Locale.ROOT, "round %d %-28s %8.0f ms  max diff %.1e%n", round, names[i],
                            ms[i][round], diff);
                }
            }
            double base = median(ms[0]);
            System.out.printf(Locale.ROOT, "seq %d, %d layers, 8 ranks, %d rounds (median ms, ratio to by hand):%n",
                    seq, layers, rounds);
            for (int i = 0; i < 3; i++) {
                System.out.printf(Locale.ROOT, "  %-28s %8.0f  %.3f%n", names[i], median(ms[i]), median(ms[i]) / base);
            }
        }
    }

    private static double median(double[] values) {
        double[] v = values.clone();
        Arrays.sort(v);
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }
}
