package io.github.taspdjl.runtime;

import static io.github.taspdjl.NDAsserts.assertClose;
import static io.github.taspdjl.NDAsserts.assertRelative;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.jni.NativeOps;
import io.github.taspdjl.jni.TaspNativeException;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.DataProvider;
import org.testng.annotations.Test;

/**
 * TASP attention over virtual CPU ranks equals attention over the whole sequence on one device
 * (DJL's own operations), for every strategy, world sizes 1 to 16, both masks, fp32 and bf16,
 * grouped-query ratios 1, 2 and 8, and sequence lengths divisible by nothing convenient.
 */
public class TaspAttentionTest {

    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(11);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    @DataProvider
    public Object[][] flat() {
        List<Object[]> cases = new ArrayList<>();
        Strategy[] strategies = {Strategy.RING, Strategy.ZIGZAG_RING, Strategy.TASP, Strategy.TASP_CAUSAL,
            Strategy.DIRECT};
        int[] worlds = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
        int i = 0;
        for (int n : worlds) {
            for (Strategy s : strategies) {
                for (boolean causal : new boolean[] {false, true}) {
                    int ratio = new int[] {1, 2, 8}[i % 3];
                    long seq = 4L * n * Math.max(1, n - 1) + 7 + (i % 5); // odd, prime-ish lengths
                    cases.add(new Object[] {n, s, causal, ratio, seq});
                    i++;
                }
            }
        }
        return cases.toArray(new Object[0][]);
    }

    @Test(dataProvider = "flat")
    public void equalsSingleDeviceAttentionInFloat32(int n, Strategy strategy, boolean causal, int ratio, long seq) {
        try (SequenceParallelGroup group =
                        SequenceParallelGroup.builder().worldSize(n).strategy(strategy).timeout(20_000).build();
                NDManager m = manager.newSubManager()) {
            checkAgainstReference(group, m, causal, ratio, seq, DataType.FLOAT32);
        }
    }

    @Test
    public void bfloat16MatchesWithinOnePercent() {
        for (Strategy s : new Strategy[] {Strategy.TASP, Strategy.TASP_CAUSAL, Strategy.RING}) {
            for (boolean causal : new boolean[] {false, true}) {
                try (SequenceParallelGroup group =
                                SequenceParallelGroup.builder().worldSize(5).strategy(s).timeout(20_000).build();
                        NDManager m = manager.newSubManager()) {
                    checkAgainstReference(group, m, causal, 2, 173, DataType.BFLOAT16);
                }
            }
        }
    }

    @Test
    public void hierarchicalPlansOnTwoAndThreeNodes() {
        // {gpus per node, nodes}: 2 nodes x 4 have rail-aligned rings; 3 nodes x 2 and 2 nodes x 3
        // have none (m = 2 with odd u, m = 3) and take the documented flat fallback.
        int[][] shapes = {{4, 2}, {2, 3}, {3, 2}};
        for (int[] shape : shapes) {
            Topology cluster = Topology.cluster(Topology.virtualCpu(shape[0]), shape[1], 5.0);
            for (boolean causal : new boolean[] {false, true}) {
                try (SequenceParallelGroup group = SequenceParallelGroup.builder().topology(cluster)
                                .strategy(Strategy.TASP_HIERARCHICAL).timeout(20_000).build();
                        NDManager m = manager.newSubManager()) {
                    if (shape[0] == 4) {
                        assertEquals(group.plan(causal).strategy(), Strategy.TASP_HIERARCHICAL,
                                "plan notes: " + group.plan(causal).notes());
                    } else {
                        assertTrue(group.plan(causal).notes().toString().contains("no rail-aligned"),
                                "fallback reason: " + group.plan(causal).notes());
                    }
                    checkAgainstReference(group, m, causal, 8, 211, DataType.FLOAT32);
                }
            }
        }
    }

    @Test
    public void perRankCallsFromTheCallersOwnThreads() throws Exception {
        int n = 4;
        long seq = 101;
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(n).timeout(20_000).build();
                NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(2, 4, seq, 8));
            NDArray k = m.randomNormal(new Shape(2, 2, seq, 8));
            NDArray v = m.randomNormal(new Shape(2, 2, seq, 8));
            var layout = group.plan(true).layout();
            ExecutorService pool = Executors.newFixedThreadPool(n);
            try {
                List<Future<TaspAttention.RankResult>> futures = new ArrayList<>();
                for (int r = 0; r < n; r++) {
                    final int rank = r;
                    futures.add(pool.submit(() -> TaspAttention.forward(group, rank,
                            Sharding.shard(q, layout, rank), Sharding.shard(k, layout, rank),
                            Sharding.shard(v, layout, rank), true, null, seq)));
                }
                List<NDArray> outs = new ArrayList<>();
                for (Future<TaspAttention.RankResult> f : futures) {
                    outs.add(f.get().output());
                }
                ReferenceAttention.Result ref = ReferenceAttention.compute(q, k, v, true, null);
                assertClose(Sharding.gather(outs, layout, seq), ref.output(), 1e-5, "per-rank output");
            } finally {
                pool.shutdownNow();
            }
        }
    }

    @Test
    public void aSilentRankFailsEveryRankWithinTheTimeout() {
        int threadsBefore = taspThreads();
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4).timeout(1500).build();
                NDManager m = manager.newSubManager()) {
            group.makeSilent(2);
            NDArray q = m.randomNormal(new Shape(1, 2, 64, 8));
            long start = System.nanoTime();
            TaspNativeException e = expectThrows(TaspNativeException.class,
                    () -> TaspAttention.forward(group, q, q, q, false, null));
            double seconds = (System.nanoTime() - start) / 1e9;
            assertEquals(e.code(), TaspNativeException.GROUP, e.getMessage());
            assertTrue(e.getMessage().contains("no progress within 1500 ms"), e.getMessage());
            assertTrue(seconds < 5, "failed after " + seconds + " s");
            // Every other rank failed too (suppressed), with the same group failure.
            assertEquals(e.getSuppressed().length, 3, "all four ranks should fail");
        }
        assertEquals(taspThreads(), threadsBefore, "rank threads leaked");
    }

    @Test
    public void badInputIsRejectedOnEveryPath() {
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(3).build();
                NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(1, 2, 5, 8));
            IllegalArgumentException shortSeq = expectThrows(IllegalArgumentException.class,
                    () -> TaspAttention.forward(group, q, q, q, false, null));
            assertTrue(shortSeq.getMessage().contains("shorter than"), shortSeq.getMessage());
            NDArray big = m.randomNormal(new Shape(1, 2, 60, 8));
            IllegalArgumentException wrongShard = expectThrows(IllegalArgumentException.class,
                    () -> TaspAttention.forward(group, 0, big, big, big, false, null, 60));
            assertTrue(wrongShard.getMessage().contains("holds 20 tokens"), wrongShard.getMessage());
            expectThrows(IllegalArgumentException.class,
                    () -> TaspAttention.forward(group, 3, big, big, big, false, null, 60));
            expectThrows(IllegalArgumentException.class,
                    () -> TaspAttention.forward(group, big, m.randomNormal(new Shape(1, 2, 61, 8)),
                            m.randomNormal(new Shape(1, 2, 61, 8)), false, null));
        }
    }

    private void checkAgainstReference(
            SequenceParallelGroup group, NDManager m, boolean causal, int ratio, long seq, DataType dt) {
        int kvHeads = 1 + (int) (seq % 2);
        int heads = kvHeads * ratio;
        NDArray q = NativeOps.cast(m.randomNormal(new Shape(1, heads, seq, 8)), dt);
        NDArray k = NativeOps.cast(m.randomNormal(new Shape(1, kvHeads, seq, 8)), dt);
        NDArray v = NativeOps.cast(m.randomNormal(new Shape(1, kvHeads, seq, 8)), dt);
        TaspAttention.Result ours = TaspAttention.forward(group, q, k, v, causal, null);
        ReferenceAttention.Result ref = ReferenceAttention.compute(q.toType(DataType.FLOAT32, true),
                k.toType(DataType.FLOAT32, true), v.toType(DataType.FLOAT32, true), causal, null);
        String what = group.plan(causal).strategy() + " n=" + group.worldSize() + " causal=" + causal + " seq=" + seq
                + " heads " + heads + "/" + kvHeads + " " + dt;
        if (dt == DataType.FLOAT32) {
            assertClose(ours.output(), ref.output(), 1e-5, what + " output");
            assertClose(ours.lse(), ref.lse(), 1e-5, what + " lse");
        } else {
            assertRelative(ours.output().toType(DataType.FLOAT32, false), ref.output(), 1e-2, what + " output");
            assertRelative(ours.lse(), ref.lse(), 1e-2, what + " lse");
        }
    }

    private static int taspThreads() {
        return (int) Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith("tasp-group") && t.isAlive())
                .count();
    }
}
