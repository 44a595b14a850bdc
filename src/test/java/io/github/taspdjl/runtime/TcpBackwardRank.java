package io.github.taspdjl.runtime;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.github.taspdjl.RankJvms;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.plan.Strategy;
import java.time.Duration;

/**
 * One rank of {@link MultiProcessBackwardTest}, run as its own JVM: joins a {@link ProcessGroup}
 * over TCP for each strategy (ring, tasp, ulysses, and the hybrid of degree 2 with a ring inside, each
 * on its own rendezvous port), runs the forward and the distributed backward of its shard, causal and
 * not, and prints its shard's largest difference from the single-device output and backward (DJL
 * autograd over {@link ReferenceAttention}, fp64, on the whole sequence), relative to the largest
 * reference gradient. Queries have 4 heads and keys 2, fewer than the ranks. Last, on a Ulysses group of
 * its own, a forward with 6 query heads, which do not divide among 4 ranks: it prints each rank's failure.
 *
 * <p>Arguments: world, rank, then the rendezvous ports of ring, tasp, ulysses, the hybrid and the failure.
 */
public final class TcpBackwardRank {

    static final long SEQ = 203;

    private TcpBackwardRank() {}

    public static void main(String[] args) throws Exception {
        int world = Integer.parseInt(args[0]);
        int rank = Integer.parseInt(args[1]);
        Strategy[] strategies = {Strategy.RING, Strategy.TASP, Strategy.ULYSSES, Strategy.HYBRID};
        try (NDManager m = NDManager.newBaseManager("PyTorch")) {
            NDArray q = RankJvms.gaussian(m, 1, new Shape(2, 4, SEQ, 8));
            NDArray k = RankJvms.gaussian(m, 2, new Shape(2, 2, SEQ, 8));
            NDArray v = RankJvms.gaussian(m, 3, new Shape(2, 2, SEQ, 8));
            NDArray dout = RankJvms.gaussian(m, 4, new Shape(2, 4, SEQ, 8));
            for (int i = 0; i < strategies.length; i++) {
                ProcessGroup.Builder b = builder(world, rank, Integer.parseInt(args[2 + i]));
                try (ProcessGroup g = (strategies[i] == Strategy.HYBRID ? b.hybrid(2, Strategy.RING)
                        : b.strategy(strategies[i])).join()) {
                    for (boolean causal : new boolean[] {true, false}) {
                        double[] err = relativeErrors(g, rank, q, k, v, dout, causal);
                        System.out.printf("[rank %d] %s causal=%s over %s: forward error = %.3e, relative error = %.3e%n",
                                rank, strategies[i].cliName(), causal, g.transport(), err[0], err[1]);
                    }
                }
            }
            int port = Integer.parseInt(args[2 + strategies.length]);
            try (ProcessGroup g = builder(world, rank, port).strategy(Strategy.ULYSSES).join()) {
                refuseSixHeads(g, rank, m);
            }
        }
        System.out.flush();
        System.exit(0);
    }

    private static ProcessGroup.Builder builder(int world, int rank, int port) {
        LaunchEnvironment env = new LaunchEnvironment("torchrun", rank, world, rank, world, "127.0.0.1", port);
        return ProcessGroup.builder().environment(env).gpu(false).timeout(30_000).rendezvousTimeout(Duration.ofSeconds(120));
    }

    private static void refuseSixHeads(ProcessGroup g, int rank, NDManager m) {
        SequenceLayout layout = g.plan(false).layout();
        NDArray q6 = Sharding.shard(RankJvms.gaussian(m, 5, new Shape(1, 6, SEQ, 8)), layout, rank);
        NDArray kv = Sharding.shard(RankJvms.gaussian(m, 6, new Shape(1, 2, SEQ, 8)), layout, rank);
        try {
            TaspAttention.forward(g, rank, q6, kv, kv, false, null, SEQ);
            System.out.printf("[rank %d] six heads: no failure%n", rank);
        } catch (RuntimeException e) {
            System.out.printf("[rank %d] six heads failed: %s%n", rank, e.getMessage());
        }
    }

    /** {forward output error, gradients' error}, each relative to the largest reference value. */
    private static double[] relativeErrors(ProcessGroup g, int rank, NDArray q, NDArray k, NDArray v, NDArray dout,
            boolean causal) {
        try (NDManager m = q.getManager().newSubManager()) {
            SequenceLayout layout = g.plan(causal).layout();
            NDArray qs = Sharding.shard(q, layout, rank);
            NDArray ks = Sharding.shard(k, layout, rank);
            NDArray vs = Sharding.shard(v, layout, rank);
            NDArray ds = Sharding.shard(dout, layout, rank);
            for (NDArray a : new NDArray[] {qs, ks, vs, ds}) {
                a.attach(m);
            }
            TaspAttention.RankResult fwd = TaspAttention.forward(g, rank, qs, ks, vs, causal, null, SEQ);
            NativeGroup.RankGradients ours =
                    TaspAttention.backward(g, rank, ds, qs, ks, vs, fwd.output(), fwd.lse(), causal, null, SEQ);

            NDArray q64 = q.toType(DataType.FLOAT64, true);
            NDArray k64 = k.toType(DataType.FLOAT64, true);
            NDArray v64 = v.toType(DataType.FLOAT64, true);
            for (NDArray a : new NDArray[] {q64, k64, v64}) {
                a.attach(m);
                a.setRequiresGradient(true);
            }
            double forward;
            try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
                NDArray out = ReferenceAttention.compute(q64, k64, v64, causal, null).output();
                NDArray mine = Sharding.shard(out, layout, rank);
                forward = fwd.output().toType(DataType.FLOAT64, false).sub(mine).abs().max().getDouble()
                        / out.abs().max().getDouble();
                gc.backward(out.mul(dout.toType(DataType.FLOAT64, true)).sum());
            }
            NDArray[] expected = {q64.getGradient(), k64.getGradient(), v64.getGradient()};
            NDArray[] actual = {ours.dq(), ours.dk(), ours.dv()};
            double largest = 0;
            double worst = 0;
            for (int i = 0; i < 3; i++) {
                largest = Math.max(largest, expected[i].abs().max().getDouble());
                NDArray shard = Sharding.shard(expected[i], layout, rank);
                if (!shard.getShape().equals(actual[i].getShape())) {
                    throw new IllegalStateException("gradient " + i + " has shape " + actual[i].getShape()
                            + ", expected " + shard.getShape());
                }
                worst = Math.max(worst, actual[i].toType(DataType.FLOAT64, false).sub(shard).abs().max().getDouble());
            }
            return new double[] {forward, worst / largest};
        }
    }
}
