package io.github.taspdjl.runtime;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.fail;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.attention.TaspAttentionBlock;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.TaspNativeException;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Planner;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.testng.annotations.Test;

/**
 * Ranks that each join a {@link ProcessGroup} as separate processes would (own rendezvous card, own
 * TCP mesh, loopback only), run here as threads of one JVM so that the results can be compared with
 * attention over the whole sequence. Real processes: {@code cli.MultiProcessDemoTest}.
 */
public class ProcessGroupTest extends RankThreadsTest {

    @Override
    protected int seed() {
        return 21;
    }

    interface RankBody<T> {
        T run(int rank) throws Exception;
    }

    @Test
    public void ranksOverTcpEqualAttentionOnTheWholeSequence() throws Exception {
        Object[][] cases = {{4, Strategy.TASP, true, 203L}, {4, Strategy.TASP, false, 150L}, {3, Strategy.RING, true, 61L},
            {5, Strategy.TASP_CAUSAL, true, 251L}, {1, Strategy.TASP, true, 17L}};
        for (Object[] c : cases) {
            int world = (Integer) c[0];
            Strategy strategy = (Strategy) c[1];
            boolean causal = (Boolean) c[2];
            long seq = (Long) c[3];
            try (NDManager m = manager.newSubManager()) {
                NDArray q = m.randomNormal(new Shape(2, 4, seq, 8));
                NDArray k = m.randomNormal(new Shape(2, 2, seq, 8));
                NDArray v = m.randomNormal(new Shape(2, 2, seq, 8));
                int port = freePort();
                List<NDArray> outs = onRanks(world, rank -> {
                    try (ProcessGroup g = join(world, rank, port, strategy, "same", 20_000, Duration.ofSeconds(20))) {
                        SequenceLayout layout = g.plan(causal).layout();
                        NDArray out = null;
                        for (int call = 0; call < 2; call++) { // two runs over the same mesh
                            out = TaspAttention.forward(g, rank, Sharding.shard(q, layout, rank),
                                    Sharding.shard(k, layout, rank), Sharding.shard(v, layout, rank), causal, null, seq)
                                    .output();
                        }
                        assertEquals(g.transport(), "tcp");
                        return out;
                    }
                });
                SequenceLayout layout = Planner.plan(Topology.virtualCpu(world), strategy, causal).layout();
                ReferenceAttention.Result ref = ReferenceAttention.compute(q, k, v, causal, null);
                assertClose(Sharding.gather(outs, layout, seq), ref.output(), 1e-5,
                        strategy + " over " + world + " TCP ranks, causal " + causal);
            }
        }
    }

    @Test
    public void allReduceSumsOverTcpAndRefusesRanksThatDisagree() throws Exception {
        int world = 3;
        int port = freePort();
        List<float[]> sums = onRanks(world, rank -> {
            try (ProcessGroup g = join(world, rank, port, Strategy.TASP, "", 20_000, Duration.ofSeconds(20));
                    NDManager m = manager.newSubManager()) {
                NDArray a = m.create(new float[] {rank, 10f * rank, 0.5f}, new Shape(3));
                NDArray b = m.create(new float[][] {{1f + rank, 2f}, {3f, -rank}});
                g.allReduceSum(List.of(a, b));
                float[] first = concat(a.toFloatArray(), b.toFloatArray());
                // a rank that passes other sizes: every rank fails, naming the sizes
                NDArray c = m.create(new float[rank == 1 ? 2 : 3]);
                TaspNativeException e = org.testng.Assert.expectThrows(TaspNativeException.class,
                        () -> g.allReduceSum(List.of(c)));
                assertTrue(e.getMessage().contains("all-reduces"), e.getMessage());
                return first;
            }
        });
        float[] expected = {0 + 1 + 2, 0 + 10 + 20, 1.5f, 1 + 2 + 3, 6, 9, -3};
        for (float[] s : sums) {
            org.testng.Assert.assertEquals(s, expected, 0f);
        }
    }

    private static float[] concat(float[] a, float[] b) {
        float[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    public void packedDocumentsStayApartOverTcp() throws Exception {
        PackedSequence docs = PackedSequence.ofLengths(61, 7, 133);
        long seq = docs.length();
        // tasp, and a hybrid whose inner programs are lifted per packing; 2 key/value heads: one per member
        for (int degree : new int[] {0, 2}) {
            try (NDManager m = manager.newSubManager()) {
                NDArray q = m.randomNormal(new Shape(1, 4, seq, 8));
                NDArray k = m.randomNormal(new Shape(1, 2, seq, 8));
                NDArray v = m.randomNormal(new Shape(1, 2, seq, 8));
                int port = freePort();
                List<NDArray> outs = onRanks(4, rank -> {
                    ProcessGroup.Builder b = builder(4, rank, port, 20_000);
                    try (ProcessGroup g = (degree == 0 ? b.strategy(Strategy.TASP) : b.hybrid(degree, Strategy.TASP)).join()) {
                        SequenceLayout layout = g.plan(true).layout();
                        return TaspAttention.forward(g, rank, Sharding.shard(q, layout, rank), Sharding.shard(k, layout, rank),
                                Sharding.shard(v, layout, rank), true, null, seq, docs).output();
                    }
                });
                Plan plan = degree == 0 ? Planner.plan(Topology.virtualCpu(4), Strategy.TASP, true)
                        : Planner.hybrid(Topology.virtualCpu(4), degree, Strategy.TASP, true);
                NDArray out = Sharding.gather(outs, plan.layout(), seq);
                for (int d = 0; d < docs.documentCount(); d++) {
                    NDIndex range = new NDIndex(":, :, {}:{}", docs.start(d), docs.end(d));
                    assertClose(out.get(range), ReferenceAttention.compute(q.get(range), k.get(range), v.get(range), true,
                            null).output(), 1e-5, "document " + d + " over 4 TCP ranks, " + plan.strategy());
                }
            }
        }
    }

    /**
     * Ulysses and a hybrid (degree 2, ring inside) over 4 TCP ranks: outputs and LSE of the whole sequence
     * (fp32, 1e-5) and dq, dk, dv (fp64 autograd, 1e-5 of the largest), causal and not, with 2 key/value heads
     * for 4 ranks (Ulysses replicates each on two ranks and adds their gradients up).
     */
    @Test
    public void ulyssesAndHybridOverTcpGiveTheSingleDeviceOutputsAndGradients() throws Exception {
        int world = 4;
        long seq = 67;
        for (int degree : new int[] {world, 2}) {
            for (boolean causal : new boolean[] {false, true}) {
                try (NDManager m = manager.newSubManager()) {
                    NDArray q = m.randomNormal(new Shape(2, 4, seq, 8));
                    NDArray k = m.randomNormal(new Shape(2, 2, seq, 8));
                    NDArray v = m.randomNormal(new Shape(2, 2, seq, 8));
                    NDArray dout = m.randomNormal(new Shape(2, 4, seq, 8));
                    int port = freePort();
                    List<NDArray[]> results = onRanks(world, rank -> {
                        ProcessGroup.Builder b = builder(world, rank, port, 20_000);
                        try (ProcessGroup g = (degree == world ? b.strategy(Strategy.ULYSSES) : b.hybrid(degree, Strategy.RING))
                                .join()) {
                            SequenceLayout layout = g.plan(causal).layout();
                            NDArray[] s = {Sharding.shard(q, layout, rank), Sharding.shard(k, layout, rank),
                                Sharding.shard(v, layout, rank), Sharding.shard(dout, layout, rank)};
                            TaspAttention.RankResult fwd = TaspAttention.forward(g, rank, s[0], s[1], s[2], causal, null, seq);
                            NativeGroup.RankGradients grads = TaspAttention.backward(g, rank, s[3], s[0], s[1], s[2],
                                    fwd.output(), fwd.lse(), causal, null, seq);
                            return new NDArray[] {fwd.output(), fwd.lse(), grads.dq(), grads.dk(), grads.dv()};
                        }
                    });
                    Plan plan = degree == world ? Planner.ulysses(world, causal)
                            : Planner.hybrid(Topology.virtualCpu(world), degree, Strategy.RING, causal);
                    String what = plan.headParallel().label() + " over " + world + " TCP ranks, causal " + causal;
                    NDArray[] whole = new NDArray[5];
                    for (int i = 0; i < 5; i++) {
                        List<NDArray> parts = new ArrayList<>();
                        for (NDArray[] r : results) {
                            parts.add(r[i]);
                        }
                        whole[i] = Sharding.gather(parts, plan.layout(), seq);
                    }
                    ReferenceAttention.Result ref = ReferenceAttention.compute(q, k, v, causal, null);
                    assertClose(whole[0], ref.output(), 1e-5, what + " output");
                    assertClose(whole[1], ref.lse(), 1e-5, what + " lse");
                    double err = DistributedBackwardTest.gradientError(q, k, v, dout, causal,
                            new TaspAttention.Gradients(whole[2], whole[3], whole[4], List.of()));
                    assertTrue(err <= 1e-5, what + ": gradients' relative error " + err);
                }
            }
        }
    }

    /**
     * Keys and values that are one head of a larger tensor, in a batch of one, are dense token-major memory
     * whose unit dimensions have other strides: the executor reads them in place, and the TCP transport
     * accepts them (it once compared every stride and refused them).
     */
    @Test
    public void oneHeadSlicesOfABatchOfOneRunOverTcp() throws Exception {
        long seq = 50;
        try (NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(1, 2, seq, 8));
            NDArray kv = m.randomNormal(new Shape(1, 3, seq, 8));
            NDArray k = kv.get(new NDIndex(":, 1:2"));
            NDArray v = kv.get(new NDIndex(":, 2:3"));
            int port = freePort();
            List<NDArray> outs = onRanks(2, rank -> {
                try (ProcessGroup g = join(2, rank, port, Strategy.RING, "", 20_000, Duration.ofSeconds(20))) {
                    SequenceLayout layout = g.plan(false).layout();
                    // a contiguous shard of one rank is a slice along tokens of the slice along heads
                    NDArray ks = kv.get(new NDIndex(":, 1:2, {}:{}", rank * seq / 2, (rank + 1) * seq / 2));
                    NDArray vs = kv.get(new NDIndex(":, 2:3, {}:{}", rank * seq / 2, (rank + 1) * seq / 2));
                    return TaspAttention.forward(g, rank, Sharding.shard(q, layout, rank), ks, vs, false, null, seq)
                            .output();
                }
            });
            assertClose(Sharding.gather(outs, Planner.plan(Topology.virtualCpu(2), Strategy.RING, false).layout(), seq),
                    ReferenceAttention.compute(q, k, v, false, null).output(), 1e-5, "one-head slices over TCP");
        }
    }

    /**
     * One rank whose query heads do not divide among the Ulysses group fails; it tells its peers, which are
     * already waiting in the all-to-all, so every rank fails at once naming it and the constraint.
     */
    @Test
    public void headsThatDoNotDivideOnOneRankFailEveryRankAtOnce() throws Exception {
        int world = 3;
        long seq = 40;
        int port = freePort();
        long start = System.nanoTime();
        List<String> errors = onRanks(world, rank -> {
            try (ProcessGroup g = builder(world, rank, port, 20_000).strategy(Strategy.ULYSSES).join();
                    NDManager m = manager.newSubManager()) {
                SequenceLayout layout = g.plan(false).layout();
                NDArray q = Sharding.shard(m.randomNormal(new Shape(1, rank == 1 ? 4 : 3, seq, 8)), layout, rank);
                NDArray kv = Sharding.shard(m.randomNormal(new Shape(1, 1, seq, 8)), layout, rank);
                try {
                    TaspAttention.forward(g, rank, q, kv, kv, false, null, seq);
                    return "no failure";
                } catch (RuntimeException e) {
                    return e.getMessage();
                }
            }
        });
        for (String e : errors) {
            assertTrue(e.contains("4 query heads do not divide among the 3 ranks"), e);
        }
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(15), "failed at once, not by the 20 s timeout");
    }

    /** A model's TaspAttentionBlock inside a RankContext over a Ulysses ProcessGroup gives the single-device output. */
    @Test
    public void aBlockInsideARankContextRunsUlyssesOverTcp() throws Exception {
        long seq = 45;
        int world = 4;
        try (NDManager m = manager.newSubManager()) {
            TaspAttentionBlock block = TaspAttentionBlock.builder().setEmbeddingSize(32).setHeadCount(4).optKvHeadCount(2)
                    .optCausal(true).optAttentionProbsDropoutProb(0f).build();
            block.initialize(m, DataType.FLOAT32, new Shape(2, seq, 32));
            NDArray x = m.randomNormal(new Shape(2, seq, 32));
            NDArray single = block.forward(new ParameterStore(m, false), new NDList(x), false).singletonOrThrow();
            int port = freePort();
            List<NDArray> outs = onRanks(world, rank -> {
                try (ProcessGroup g = builder(world, rank, port, 20_000).strategy(Strategy.ULYSSES).join()) {
                    NDArray shard = Sharding.shard(x, g.plan(true).layout(), rank, Sharding.TOKENS_AXIS);
                    return RankContext.run(g, rank, seq, true, () -> block.forward(new ParameterStore(m, false),
                            new NDList(shard), false).singletonOrThrow());
                }
            });
            assertClose(Sharding.gather(outs, Planner.ulysses(world, true).layout(), seq, Sharding.TOKENS_AXIS), single,
                    1e-5, "a block over 4 ulysses TCP ranks");
        }
    }

    @Test
    public void ranksCalledWithDifferentShapesAllFailNamingItThenTheMeshStillWorks() throws Exception {
        long seq = 64;
        try (NDManager m = manager.newSubManager()) {
            NDArray x8 = m.randomNormal(new Shape(1, 2, seq, 8));
            NDArray x16 = m.randomNormal(new Shape(1, 2, seq, 16));
            int port = freePort();
            List<String> results = onRanks(3, rank -> {
                try (ProcessGroup g = join(3, rank, port, Strategy.TASP, "", 10_000, Duration.ofSeconds(20))) {
                    SequenceLayout layout = g.plan(false).layout();
                    NDArray mine = Sharding.shard(rank == 1 ? x16 : x8, layout, rank);
                    String first;
                    try {
                        TaspAttention.forward(g, rank, mine, mine, mine, false, null, seq);
                        first = "no failure";
                    } catch (IllegalArgumentException e) {
                        first = e.getMessage();
                    }
                    NDArray shard = Sharding.shard(x8, layout, rank); // every rank agrees now
                    NDArray out = TaspAttention.forward(g, rank, shard, shard, shard, false, null, seq).output();
                    NDArray ref = Sharding.shard(ReferenceAttention.compute(x8, x8, x8, false, null).output(), layout,
                            rank);
                    return first + " | second run max error " + out.sub(ref).abs().max().getFloat();
                }
            });
            for (String r : results) {
                assertTrue(r.contains("rank 1 has head size 16"), r);
                float error = Float.parseFloat(r.substring(r.lastIndexOf(' ') + 1));
                assertTrue(error < 1e-5, r);
            }
        }
    }

    @Test
    public void aRankThatStopsCallingFailsTheOthersNamingIt() throws Exception {
        int world = 3;
        int port = freePort();
        long start = System.nanoTime();
        List<String> errors = onRanks(world, rank -> {
            try (ProcessGroup g = join(world, rank, port, Strategy.TASP, "", 2_000, Duration.ofSeconds(20));
                    NDManager m = manager.newSubManager()) {
                if (rank == 2) {
                    Thread.sleep(6_000); // joined, but never runs its part
                    return "idle";
                }
                NDArray x = m.randomNormal(new Shape(1, 2, 64, 8));
                SequenceLayout layout = g.plan(false).layout();
                NDArray shard = Sharding.shard(x, layout, rank);
                try {
                    TaspAttention.forward(g, rank, shard, shard, shard, false, null, 64);
                    return "no failure";
                } catch (TaspNativeException e) {
                    return (System.nanoTime() - start) / 1e9 + " s: " + e.getMessage();
                }
            }
        });
        for (int r = 0; r < 2; r++) {
            assertTrue(errors.get(r).contains("rank(s) 2") || errors.get(r).contains("rank 2 took no data"),
                    "rank " + r + ": " + errors.get(r));
            assertTrue(Double.parseDouble(errors.get(r).split(" ")[0]) < 6, errors.get(r));
        }
    }

    @Test
    public void aRankThatLeavesIsNamedByTheOthers() throws Exception {
        int world = 3;
        int port = freePort();
        List<String> errors = onRanks(world, rank -> {
            try (NDManager m = manager.newSubManager()) {
                ProcessGroup g = join(world, rank, port, Strategy.TASP, "", 5_000, Duration.ofSeconds(20));
                if (rank == 1) {
                    g.close(); // says goodbye before the others run
                    return "left";
                }
                try (g) {
                    Thread.sleep(300);
                    NDArray x = m.randomNormal(new Shape(1, 2, 64, 8));
                    NDArray shard = Sharding.shard(x, g.plan(true).layout(), rank);
                    TaspAttention.forward(g, rank, shard, shard, shard, true, null, 64);
                    return "no failure";
                } catch (TaspNativeException e) {
                    return e.getMessage();
                }
            }
        });
        assertTrue(errors.get(0).contains("rank 1 left the group"), errors.get(0));
        assertTrue(errors.get(2).contains("rank 1 left the group"), errors.get(2));
    }

    @Test
    public void ranksThatDisagreeNeverStart() throws Exception {
        int world = 3;
        int port = freePort();
        List<String> errors = onRanks(world, rank -> {
            String problem = rank == 1 ? "seq 2048" : "seq 1024";
            try (ProcessGroup g = join(world, rank, port, Strategy.TASP, problem, 5_000, Duration.ofSeconds(20))) {
                return "joined";
            } catch (Rendezvous.RendezvousException e) {
                return e.getMessage();
            }
        });
        for (String e : errors) {
            assertTrue(e.contains("rank 1 disagrees with rank 0 on the problem: rank 1 has 'seq 2048', rank 0 has "
                    + "'seq 1024'"), e);
        }
        int port2 = freePort();
        List<String> plans = onRanks(2, rank -> {
            Strategy s = rank == 0 ? Strategy.TASP : Strategy.RING;
            try (ProcessGroup g = join(2, rank, port2, s, "", 5_000, Duration.ofSeconds(20))) {
                return "joined";
            } catch (Rendezvous.RendezvousException e) {
                return e.getMessage();
            }
        });
        for (String e : plans) {
            assertTrue(e.contains("rank 1 disagrees with rank 0 on the plan"), e);
        }
    }

    @Test
    public void aRankThatNeverComesIsNamedWithinTheRendezvousTimeout() throws Exception {
        int port = freePort();
        long start = System.nanoTime();
        List<String> errors = onRanks(2, rank -> { // world of 3: rank 2 never starts
            try (ProcessGroup g = join(3, rank, port, Strategy.TASP, "", 5_000, Duration.ofMillis(1500))) {
                return "joined";
            } catch (Rendezvous.RendezvousException e) {
                return e.getMessage();
            }
        });
        double seconds = (System.nanoTime() - start) / 1e9;
        for (String e : errors) {
            assertTrue(e.contains("rank(s) 2 did not join the rendezvous"), e);
        }
        assertTrue(seconds < 5, "took " + seconds + " s");
        // Without rank 0 nobody serves the rendezvous: the others name it.
        int port2 = freePort();
        Rendezvous.RendezvousException e = org.testng.Assert.expectThrows(Rendezvous.RendezvousException.class,
                () -> join(2, 1, port2, Strategy.TASP, "", 5_000, Duration.ofMillis(800)));
        assertTrue(e.getMessage().contains("rank 0 did not open the rendezvous"), e.getMessage());
    }

    @Test
    public void onGpusRankZerosNcclFailureReachesEveryRank() throws Exception {
        String old = System.getProperty("tasp.nccl.library");
        System.setProperty("tasp.nccl.library", "/nonexistent/libnccl.so.2");
        try {
            // Ulysses on GPUs runs over NCCL as well: it gets as far as the token-chunk strategies
            for (Strategy s : new Strategy[] {Strategy.TASP, Strategy.ULYSSES}) {
                int port = freePort();
                List<String> errors = onRanks(2, rank -> {
                    try (ProcessGroup g = ProcessGroup.builder().environment(env(2, rank, port)).gpu(true).strategy(s)
                            .nodeTopology(Topology.virtualCpu(2)).rendezvousTimeout(Duration.ofSeconds(20)).join()) {
                        return "joined";
                    } catch (RuntimeException e) {
                        return e.getMessage();
                    }
                });
                for (String e : errors) {
                    assertTrue(e.contains("/nonexistent/libnccl.so.2"), s + ": " + e);
                }
                assertTrue(errors.get(1).contains("rank 0 failed"), errors.get(1));
            }
        } finally {
            if (old == null) {
                System.clearProperty("tasp.nccl.library");
            } else {
                System.setProperty("tasp.nccl.library", old);
            }
        }
    }

    static LaunchEnvironment env(int world, int rank, int port) {
        return new LaunchEnvironment("torchrun", rank, world, rank, world, "127.0.0.1", port);
    }

    private static ProcessGroup.Builder builder(int world, int rank, int port, long timeoutMs) {
        return ProcessGroup.builder().environment(env(world, rank, port)).gpu(false).timeout(timeoutMs)
                .rendezvousTimeout(Duration.ofSeconds(20));
    }

    private static ProcessGroup join(int world, int rank, int port, Strategy s, String problem, long timeoutMs,
            Duration rendezvous) {
        return ProcessGroup.builder().environment(env(world, rank, port)).strategy(s).gpu(false).problem(problem)
                .timeout(timeoutMs).rendezvousTimeout(rendezvous).join();
    }

    private <T> List<T> onRanks(int world, RankBody<T> body) throws Exception {
        List<Future<T>> futures = new ArrayList<>();
        for (int r = 0; r < world; r++) {
            final int rank = r;
            futures.add(pool.submit(() -> body.run(rank)));
        }
        return results(futures);
    }

    /** What each rank's thread returned, in rank order; a rank that threw fails the test with its exception. */
    static <T> List<T> results(List<Future<T>> futures) throws Exception {
        List<T> results = new ArrayList<>();
        for (Future<T> f : futures) {
            try {
                results.add(f.get(60, TimeUnit.SECONDS));
            } catch (ExecutionException e) {
                fail("a rank failed: " + e.getCause(), e.getCause());
            }
        }
        return results;
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }
}
