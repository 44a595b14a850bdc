package io.github.taspdjl.runtime;

import static io.github.taspdjl.NDAsserts.assertClose;
import static io.github.taspdjl.NDAsserts.assertRelative;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertNotNull;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.NativeOps;
import io.github.taspdjl.plan.Strategy;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.DataProvider;
import org.testng.annotations.Test;

/**
 * Ulysses and hybrid (Ulysses x ring/TASP) attention over virtual CPU ranks equals attention over the whole
 * sequence on one device (DJL's own operations, fp32, 1e-5): world sizes 2 to 16, both masks, grouped-query
 * ratios 1 to 8, key/value heads fewer than ranks, and query heads whose key/value heads straddle members.
 */
public class HeadParallelAttentionTest {

    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(23);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    private static int lcm(int a, int b) {
        int x = a;
        int y = b;
        while (y != 0) {
            int t = x % y;
            x = y;
            y = t;
        }
        return a / x * b;
    }

    @DataProvider
    public Object[][] ulysses() {
        List<Object[]> cases = new ArrayList<>();
        int i = 0;
        for (int n = 2; n <= 16; n++) {
            for (boolean causal : new boolean[] {false, true}) {
                int ratio = 1 + (i % 8);
                int heads = lcm(n, ratio);
                cases.add(new Object[] {n, causal, heads, heads / ratio, 3L * n + 1 + (i % 4)});
                i++;
            }
        }
        // key/value heads fewer than ranks, and key/value heads straddling members (expanded locally)
        cases.add(new Object[] {8, true, 8, 1, 45L});
        cases.add(new Object[] {8, false, 16, 2, 37L});
        cases.add(new Object[] {8, true, 24, 6, 29L});
        cases.add(new Object[] {4, false, 12, 3, 19L});
        return cases.toArray(new Object[0][]);
    }

    @Test(dataProvider = "ulysses")
    public void ulyssesEqualsSingleDeviceAttention(int n, boolean causal, int heads, int kvHeads, long seq) {
        try (SequenceParallelGroup group =
                        SequenceParallelGroup.builder().worldSize(n).strategy(Strategy.ULYSSES).timeout(20_000).build();
                NDManager m = manager.newSubManager()) {
            check(group, m, causal, heads, kvHeads, seq);
        }
    }

    @DataProvider
    public Object[][] hybrids() {
        // {ranks, Ulysses degree, inner strategy, query heads, key/value heads}
        Object[][] shapes = {
            {8, 2, Strategy.TASP, 8, 2}, {8, 4, Strategy.RING, 8, 1}, {8, 2, Strategy.RING, 4, 4}, {8, 4, Strategy.TASP, 16, 8},
            {4, 2, Strategy.RING, 6, 3}, {4, 2, Strategy.TASP, 2, 1}, {6, 3, Strategy.RING, 3, 1}, {6, 2, Strategy.TASP, 8, 4},
            {12, 3, Strategy.TASP, 6, 2}, {12, 4, Strategy.RING, 8, 1}, {16, 4, Strategy.TASP, 8, 8}, {16, 8, Strategy.RING, 24, 6},
            {9, 3, Strategy.TASP, 3, 3}, {10, 5, Strategy.RING, 10, 2}};
        List<Object[]> cases = new ArrayList<>();
        int i = 0;
        for (Object[] s : shapes) {
            for (boolean causal : new boolean[] {false, true}) {
                cases.add(new Object[] {s[0], s[1], s[2], causal, s[3], s[4], 6L * (int) s[0] + 5 + (i++ % 3)});
            }
        }
        return cases.toArray(new Object[0][]);
    }

    @Test(dataProvider = "hybrids")
    public void hybridEqualsSingleDeviceAttention(int n, int degree, Strategy inner, boolean causal, int heads, int kvHeads,
            long seq) {
        try (SequenceParallelGroup group =
                        SequenceParallelGroup.builder().worldSize(n).hybrid(degree, inner).timeout(20_000).build();
                NDManager m = manager.newSubManager()) {
            assertEquals(group.plan(causal).headParallel().degree(), degree);
            check(group, m, causal, heads, kvHeads, seq);
        }
    }

    @Test
    public void hybridPickedByTheCostModelAndEmulatedLinksStayExact() {
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(8).strategy(Strategy.HYBRID)
                        .emulateLinks(20).timeout(20_000).build();
                NDManager m = manager.newSubManager()) {
            assertNotNull(group.plan(true).headParallel());
            check(group, m, true, 8, 2, 77);
            check(group, m, false, 8, 2, 64); // the group runs again, with another plan
        }
    }

    @Test
    public void bfloat16MatchesWithinOnePercent() {
        for (SequenceParallelGroup.Builder b : List.of(SequenceParallelGroup.builder().worldSize(4).strategy(Strategy.ULYSSES),
                SequenceParallelGroup.builder().worldSize(8).hybrid(2, Strategy.TASP))) {
            for (boolean causal : new boolean[] {false, true}) {
                try (SequenceParallelGroup group = b.timeout(20_000).build(); NDManager m = manager.newSubManager()) {
                    NDArray q = NativeOps.cast(m.randomNormal(new Shape(1, 8, 61, 8)), DataType.BFLOAT16);
                    NDArray k = NativeOps.cast(m.randomNormal(new Shape(1, 2, 61, 8)), DataType.BFLOAT16);
                    NDArray v = NativeOps.cast(m.randomNormal(new Shape(1, 2, 61, 8)), DataType.BFLOAT16);
                    TaspAttention.Result ours = TaspAttention.forward(group, q, k, v, causal, null);
                    ReferenceAttention.Result ref = ReferenceAttention.compute(q.toType(DataType.FLOAT32, true),
                            k.toType(DataType.FLOAT32, true), v.toType(DataType.FLOAT32, true), causal, null);
                    String what = group.plan(causal) + " bf16";
                    assertRelative(ours.output().toType(DataType.FLOAT32, false), ref.output(), 1e-2, what + " output");
                    assertRelative(ours.lse(), ref.lse(), 1e-2, what + " lse");
                }
            }
        }
    }

    @Test
    public void headsThatDoNotDivideFailEveryRankWithTheConstraint() {
        try (SequenceParallelGroup group =
                        SequenceParallelGroup.builder().worldSize(8).strategy(Strategy.ULYSSES).timeout(5_000).build();
                NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(1, 12, 40, 8));
            NDArray k = m.randomNormal(new Shape(1, 4, 40, 8));
            long t0 = System.nanoTime();
            IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                    () -> TaspAttention.forward(group, q, k, k, false, null));
            assertTrue(e.getMessage().contains("12 query heads do not divide") && e.getMessage().contains("Ulysses degree 8"),
                    e.getMessage());
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(4), "failed at once, not by timeout");
        }
    }

    @Test
    public void headParallelPlansLowerOnlyTheirInnerPlan() {
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                () -> RankProgram.lowerAll(io.github.taspdjl.plan.Planner.ulysses(4, false), 64));
        assertTrue(e.getMessage().contains("only its inner plan lowers to programs (RankProgram.liftAll"), e.getMessage());
    }

    @Test(timeOut = 30_000)
    public void allToAllRanksThatDisagreeOrStayAwayFailEveryRank() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(3);
        try (NDManager m = manager.newSubManager()) {
            NDArray a = m.ones(new Shape(2, 3));
            // rank 0 sends (2, 3) to rank 1, which expects (2, 4): both fail at once, naming the pair
            try (NativeGroup g = new NativeGroup(2, 5_000)) {
                Future<?> r0 = pool.submit(() -> g.allToAll(0, new NDArray[] {null, a}, new long[][] {null, {2, 3}}, a));
                Future<?> r1 = pool.submit(() -> g.allToAll(1, new NDArray[] {a, null}, new long[][] {{2, 4}, null}, a));
                for (Future<?> f : List.of(r0, r1)) {
                    Throwable t = expectThrows(java.util.concurrent.ExecutionException.class, f::get).getCause();
                    assertTrue(t instanceof IllegalArgumentException && t.getMessage().contains("disagree"), String.valueOf(t));
                }
            }
            // rank 2 never comes: ranks 0 and 1 fail after the timeout, every wait has a deadline
            try (NativeGroup g = new NativeGroup(3, 500)) {
                long t0 = System.nanoTime();
                Future<?> r0 = pool.submit(() -> g.allToAll(0, new NDArray[] {null, a, null}, new long[][] {null, {2, 3}, null}, a));
                Future<?> r1 = pool.submit(() -> g.allToAll(1, new NDArray[] {a, null, null}, new long[][] {{2, 3}, null, null}, a));
                for (Future<?> f : List.of(r0, r1)) {
                    Throwable t = expectThrows(java.util.concurrent.ExecutionException.class, f::get).getCause();
                    assertTrue(t.getMessage().contains("no progress within 500 ms"), String.valueOf(t));
                }
                assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5));
            }
            // and ranks that agree exchange exactly what was sent
            try (NativeGroup g = new NativeGroup(2, 5_000)) {
                NDArray b = m.arange(6f).reshape(2, 3);
                Future<NativeGroup.Exchanged> r0 = pool.submit(() -> g.allToAll(0, new NDArray[] {null, b},
                        new long[][] {null, {3}}, b.get(0)));
                Future<NativeGroup.Exchanged> r1 = pool.submit(() -> g.allToAll(1, new NDArray[] {b.get(1), null},
                        new long[][] {{2, 3}, null}, b));
                assertClose(r1.get().received()[0], b, 0, "rank 1 got rank 0's piece");
                assertClose(r0.get().received()[1], b.get(1), 0, "rank 0 got rank 1's piece");
            }
        } finally {
            pool.shutdownNow();
        }
    }

    private static void check(SequenceParallelGroup group, NDManager m, boolean causal, int heads, int kvHeads, long seq) {
        NDArray q = m.randomNormal(new Shape(2, heads, seq, 8));
        NDArray k = m.randomNormal(new Shape(2, kvHeads, seq, 8));
        NDArray v = m.randomNormal(new Shape(2, kvHeads, seq, 8));
        TaspAttention.Result ours = TaspAttention.forward(group, q, k, v, causal, null);
        ReferenceAttention.Result ref = ReferenceAttention.compute(q, k, v, causal, null);
        String what = group.plan(causal) + " seq=" + seq + " heads " + heads + "/" + kvHeads;
        assertClose(ours.output(), ref.output(), 1e-5, what + " output");
        assertClose(ours.lse(), ref.lse(), 1e-5, what + " lse");
    }
}
