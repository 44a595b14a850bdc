package io.github.taspdjl.runtime;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertNotNull;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;
import static org.testng.Assert.fail;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.NativeOps;
import io.github.taspdjl.jni.TaspNativeException;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.plan.Strategy;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.Test;

/**
 * What a group promises under disagreement, failure, concurrent use and misuse (docs/ARCHITECTURE.md,
 * "What a group promises"): no crash, no hang, no stale or misleading error. Every case runs on
 * virtual CPU ranks with a long group timeout and asserts that the failure came long before it.
 */
public class GroupFaultTest {

    /** Long on purpose: a failure that waited for it would show as slow. */
    private static final long LONG_TIMEOUT_MS = 20_000;
    /** How soon a failure that needs no timeout must reach every rank. */
    private static final double PROMPT_SECONDS = 5;

    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(5);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    /** One rank's inputs for a per-rank call. */
    private record Inputs(NDArray q, NDArray k, NDArray v, boolean causal, long seqLen) {}

    private Inputs shardOf(NDManager m, SequenceParallelGroup group, int rank, int batch, int heads, int kvHeads,
            int dim, long seqLen, boolean causal) {
        SequenceLayout layout = group.plan(causal).layout();
        NDArray q = m.randomNormal(new Shape(batch, heads, seqLen, dim));
        NDArray k = m.randomNormal(new Shape(batch, kvHeads, seqLen, dim));
        NDArray v = m.randomNormal(new Shape(batch, kvHeads, seqLen, dim));
        return new Inputs(Sharding.shard(q, layout, rank), Sharding.shard(k, layout, rank),
                Sharding.shard(v, layout, rank), causal, seqLen);
    }

    /** Every rank's failure from runRanks: the first, then the suppressed ones. */
    private static List<Throwable> allFailures(RuntimeException e) {
        List<Throwable> all = new ArrayList<>();
        all.add(e);
        all.addAll(Arrays.asList(e.getSuppressed()));
        return all;
    }

    @Test
    public void ranksThatDisagreeFailEveryRankAtOnceNamingTheRankAndWhatDiffers() {
        // {what rank 2 gets differently, text the message must contain}
        Object[][] cases = {
            {"sequence length", "rank 2"},
            {"batch", "batch size"},
            {"head size", "head size"},
            {"kv heads", "key/value heads"},
            {"mask", "mask"},
            {"scale", "scale"},
        };
        int n = 4;
        for (Object[] c : cases) {
            String what = (String) c[0];
            try (SequenceParallelGroup group =
                            SequenceParallelGroup.builder().worldSize(n).timeout(LONG_TIMEOUT_MS).build();
                    NDManager m = manager.newSubManager()) {
                List<Inputs> inputs = new ArrayList<>();
                for (int r = 0; r < n; r++) {
                    boolean odd = r == 2;
                    long seq = odd && what.equals("sequence length") ? 97 : 101;
                    int batch = odd && what.equals("batch") ? 2 : 1;
                    int dim = odd && what.equals("head size") ? 16 : 8;
                    int kvHeads = odd && what.equals("kv heads") ? 1 : 2;
                    boolean causal = odd && what.equals("mask");
                    inputs.add(shardOf(m, group, r, batch, 4, kvHeads, dim, seq, causal));
                }
                long start = System.nanoTime();
                RuntimeException e = expectThrows(RuntimeException.class, () -> group.runRanks(101, false, rank -> {
                    Inputs in = inputs.get(rank);
                    Float scale = rank == 2 && what.equals("scale") ? 0.5f : null;
                    return TaspAttention.forward(group, rank, in.q(), in.k(), in.v(), in.causal(), scale, in.seqLen());
                }));
                double seconds = (System.nanoTime() - start) / 1e9;
                assertTrue(seconds < PROMPT_SECONDS, what + ": the ranks failed after " + seconds + " s");
                List<Throwable> failures = allFailures(e);
                assertEquals(failures.size(), n, what + ": every rank must fail: " + failures);
                for (Throwable f : failures) {
                    assertTrue(f instanceof IllegalArgumentException, what + ": " + f);
                    assertTrue(f.getMessage().contains(c[1].toString()), what + ": " + f.getMessage());
                }
                assertTrue(e.getMessage().contains("rank 2"), what + ": " + e.getMessage());
            }
        }
    }

    @Test
    public void aRankFailingMidRunFailsEveryRankAndLeavesMemoryIntact() {
        for (int attempt = 0; attempt < 4; attempt++) {
            // Slow links keep the peers copying into the failing rank's buffers while it fails.
            try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4)
                            .timeout(LONG_TIMEOUT_MS).emulateLinks(0.05).build();
                    NDManager m = manager.newSubManager()) {
                group.injectFault(1, 1 + attempt % 2);
                NDArray q = m.randomNormal(new Shape(1, 4, 4096, 16));
                long start = System.nanoTime();
                RuntimeException e = expectThrows(RuntimeException.class,
                        () -> TaspAttention.forward(group, q, q, q, false, null));
                double seconds = (System.nanoTime() - start) / 1e9;
                assertTrue(seconds < PROMPT_SECONDS, "failed after " + seconds + " s");
                List<Throwable> failures = allFailures(e);
                assertEquals(failures.size(), 4, "every rank must fail: " + failures);
                for (Throwable f : failures) {
                    assertTrue(f.getMessage().contains("injected fault"), f.getMessage());
                }
            }
        }
        // The process is intact: a fresh group computes the right answer.
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4).build();
                NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(1, 4, 203, 8));
            NDArray k = m.randomNormal(new Shape(1, 2, 203, 8));
            NDArray v = m.randomNormal(new Shape(1, 2, 203, 8));
            TaspAttention.Result r = TaspAttention.forward(group, q, k, v, true, null);
            assertClose(r.output(), ReferenceAttention.compute(q, k, v, true, null).output(), 1e-5, "after faults");
        }
    }

    // ---- Hand-made programs on the native group: capacities, buffers, malformed programs -----------

    private static final long MAGIC = 0x7A5B0001L;

    /**
     * A two-step program for rank {@code rank} of 2: step 0 sends {@code sendCount} of its
     * {@code tokens} tokens to the peer, receives {@code recvCount} into buffer 0, and attends to its
     * own tokens; step 1 attends to what arrived. {@code sendFrom}: the buffer the send reads.
     */
    private static long[] program(int rank, long tokens, long capacity, long sendCount, long recvCount,
            long step1SendFrom) {
        int peer = 1 - rank;
        List<Long> w = new ArrayList<>(List.of(MAGIC, 1L, (long) rank, 2L, 2L, tokens, tokens, capacity));
        // step 0: one send, one receive, one task over the own shard
        w.addAll(List.of(1L, 1L, 1L));
        w.addAll(List.of((long) peer, 2L, 0L, sendCount, 0L, 0L));
        w.addAll(List.of((long) peer, 0L, 0L, recvCount));
        w.addAll(List.of(0L, tokens, 2L, 0L, tokens, 0L));
        // step 1: optionally a send (to show which buffers it may read), one task over buffer 0
        if (step1SendFrom >= 0) {
            w.addAll(List.of(1L, 0L, 1L));
            w.addAll(List.of((long) peer, step1SendFrom, 0L, 1L, 1L, 0L));
        } else {
            w.addAll(List.of(0L, 0L, 1L));
        }
        w.addAll(List.of(0L, tokens, 0L, 0L, recvCount, 0L));
        return w.stream().mapToLong(Long::longValue).toArray();
    }

    /** Runs both ranks of a native group with their programs; returns each rank's outcome. */
    private List<Object> runBoth(NativeGroup group, long[][] programs, NDArray[][] qkv) throws InterruptedException {
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            List<Future<NativeGroup.RankOutput>> futures = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                final int rank = r;
                futures.add(pool.submit(() -> group.rankForward(rank, programs[rank], qkv[rank][0], qkv[rank][1],
                        qkv[rank][2], null)));
            }
            List<Object> outcomes = new ArrayList<>();
            for (Future<NativeGroup.RankOutput> f : futures) {
                try {
                    outcomes.add(f.get(60, TimeUnit.SECONDS));
                } catch (ExecutionException e) {
                    outcomes.add(e.getCause());
                } catch (java.util.concurrent.TimeoutException e) {
                    fail("a rank hung");
                }
            }
            return outcomes;
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    public void sendsAreCheckedAgainstWhatTheReceiverPublished() throws Exception {
        try (NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(1, 2, 8, 8));
            NDArray k = m.randomNormal(new Shape(1, 2, 8, 8));
            NDArray v = m.randomNormal(new Shape(1, 2, 8, 8));
            NDArray[][] qkv = new NDArray[2][];
            for (int r = 0; r < 2; r++) {
                qkv[r] = new NDArray[] {q.get("..., " + 4 * r + ":" + (4 * r + 4) + ", :"),
                    k.get("..., " + 4 * r + ":" + (4 * r + 4) + ", :"), v.get("..., " + 4 * r + ":" + (4 * r + 4) + ", :")};
            }
            // A well-formed hand-made program computes attention over all 8 tokens.
            try (NativeGroup group = new NativeGroup(2, LONG_TIMEOUT_MS)) {
                List<Object> ok = runBoth(group, new long[][] {program(0, 4, 4, 4, 4, -1), program(1, 4, 4, 4, 4, -1)},
                        qkv);
                NDArray expected = ReferenceAttention.compute(q, k, v, false, null).output();
                for (int r = 0; r < 2; r++) {
                    assertTrue(ok.get(r) instanceof NativeGroup.RankOutput, "rank " + r + ": " + ok.get(r));
                    assertClose(((NativeGroup.RankOutput) ok.get(r)).output(),
                            expected.get("..., " + 4 * r + ":" + (4 * r + 4) + ", :"), 1e-5, "hand program rank " + r);
                }
            }
            // Rank 0 sends 4 tokens where rank 1 has room for (and expects) 2: refused before any copy.
            try (NativeGroup group = new NativeGroup(2, LONG_TIMEOUT_MS)) {
                long start = System.nanoTime();
                List<Object> out = runBoth(group, new long[][] {program(0, 4, 4, 4, 4, -1), program(1, 4, 2, 4, 2, -1)},
                        qkv);
                assertTrue((System.nanoTime() - start) / 1e9 < PROMPT_SECONDS, "too slow");
                for (Object o : out) {
                    assertTrue(o instanceof IllegalArgumentException, String.valueOf(o));
                    assertTrue(((Throwable) o).getMessage().contains("what rank 0 sends to rank 1 is not what rank 1 "
                            + "expects"), ((Throwable) o).getMessage());
                }
            }
            // A send of step 1 that reads buffer 1, which step 1 receives into: malformed, and the peer
            // fails at once instead of waiting for a rank that never starts.
            try (NativeGroup group = new NativeGroup(2, LONG_TIMEOUT_MS)) {
                long start = System.nanoTime();
                List<Object> out = runBoth(group, new long[][] {program(0, 4, 4, 4, 4, 1), program(1, 4, 4, 4, 4, -1)},
                        qkv);
                assertTrue((System.nanoTime() - start) / 1e9 < PROMPT_SECONDS, "too slow");
                assertTrue(out.get(0) instanceof IllegalArgumentException, String.valueOf(out.get(0)));
                assertTrue(((Throwable) out.get(0)).getMessage().contains("which that step receives into"),
                        ((Throwable) out.get(0)).getMessage());
                assertTrue(out.get(1) instanceof TaspNativeException, String.valueOf(out.get(1)));
                assertTrue(((Throwable) out.get(1)).getMessage().contains("rank 0"), ((Throwable) out.get(1)).getMessage());
            }
        }
    }

    @Test
    public void mixedDtypesAreRejectedOnEveryRankAndBytesFollowTheKeyValueDtype() throws Exception {
        try (NDManager m = manager.newSubManager()) {
            // Below the Java checks: rank 0's q is float32, its k and v bfloat16.
            NDArray q = m.randomNormal(new Shape(1, 2, 4, 8));
            NDArray kv = NativeOps.cast(m.randomNormal(new Shape(1, 2, 4, 8)), DataType.BFLOAT16);
            NDArray[][] qkv = {{q, kv, kv}, {q, q, q}};
            try (NativeGroup group = new NativeGroup(2, LONG_TIMEOUT_MS)) {
                long start = System.nanoTime();
                List<Object> out = runBoth(group, new long[][] {program(0, 4, 4, 4, 4, -1), program(1, 4, 4, 4, 4, -1)},
                        qkv);
                assertTrue((System.nanoTime() - start) / 1e9 < PROMPT_SECONDS, "too slow");
                assertTrue(out.get(0) instanceof IllegalArgumentException, String.valueOf(out.get(0)));
                assertTrue(((Throwable) out.get(0)).getMessage().contains("one dtype"), String.valueOf(out.get(0)));
                assertTrue(out.get(1) instanceof RuntimeException, String.valueOf(out.get(1)));
                assertTrue(((Throwable) out.get(1)).getMessage().contains("rank 0"), String.valueOf(out.get(1)));
            }
            // bf16 keys and values: every byte count is 2 bytes per element.
            int n = 3;
            try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(n).build()) {
                NDArray qb = NativeOps.cast(m.randomNormal(new Shape(1, 4, 90, 8)), DataType.BFLOAT16);
                NDArray kvb = NativeOps.cast(m.randomNormal(new Shape(1, 2, 90, 8)), DataType.BFLOAT16);
                TaspAttention.Result r = TaspAttention.forward(group, qb, kvb, kvb, false, null);
                long sent = r.stats().stream().mapToLong(NativeGroup.RankStats::bytesSent).sum();
                // full mask: every rank's 30 tokens reach the 2 others; k and v, 2 heads x 8 values, 2 bytes.
                assertEquals(sent, (long) n * (n - 1) * 30 * 2 * 2 * 8 * 2);
            }
        }
    }

    @Test
    public void errorsBeforeTheRunFailThePeersAtOnce() throws Exception {
        int n = 3;
        // Per-rank API from the caller's own threads: rank 1's shard is the wrong size.
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(n).timeout(LONG_TIMEOUT_MS).build();
                NDManager m = manager.newSubManager()) {
            List<Inputs> inputs = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                inputs.add(shardOf(m, group, r, 1, 2, 2, 8, r == 1 ? 50 : 99, false));
            }
            ExecutorService pool = Executors.newFixedThreadPool(n);
            try {
                long start = System.nanoTime();
                List<Future<TaspAttention.RankResult>> futures = new ArrayList<>();
                for (int r = 0; r < n; r++) {
                    final int rank = r;
                    Inputs in = inputs.get(r);
                    futures.add(pool.submit(() -> TaspAttention.forward(group, rank, in.q(), in.k(), in.v(), false,
                            null, 99)));
                }
                for (int r = 0; r < n; r++) {
                    ExecutionException e = expectThrows(ExecutionException.class, futures.get(r)::get);
                    String message = e.getCause().getMessage();
                    assertTrue(message.contains("rank 1"), "rank " + r + ": " + message);
                }
                double seconds = (System.nanoTime() - start) / 1e9;
                assertTrue(seconds < PROMPT_SECONDS, "the peers waited " + seconds + " s for a rank that never joined");
            } finally {
                pool.shutdownNow();
            }
        }
        // forwardAll: any exception on a rank fails the others, not only IllegalArgumentException.
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(n).timeout(LONG_TIMEOUT_MS).build();
                NDManager m = manager.newSubManager()) {
            NDArray x = m.randomNormal(new Shape(1, 2, 30, 8));
            List<NDArray> qs = new ArrayList<>(List.of(x, x, x));
            qs.set(1, null);
            long start = System.nanoTime();
            RuntimeException e = expectThrows(RuntimeException.class,
                    () -> group.forwardAll(qs, List.of(x, x, x), List.of(x, x, x), false, null, 90));
            double seconds = (System.nanoTime() - start) / 1e9;
            assertTrue(seconds < PROMPT_SECONDS, "the peers waited " + seconds + " s");
            assertEquals(allFailures(e).size(), n, String.valueOf(allFailures(e)));
        }
    }

    @Test
    public void aSharedGroupSerializesCallersAndAFailedOrClosedGroupSaysSo() throws Exception {
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4).timeout(LONG_TIMEOUT_MS).build();
                NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(1, 4, 150, 8));
            NDArray k = m.randomNormal(new Shape(1, 2, 150, 8));
            NDArray v = m.randomNormal(new Shape(1, 2, 150, 8));
            NDArray expected = ReferenceAttention.compute(q, k, v, true, null).output();
            ExecutorService callers = Executors.newFixedThreadPool(2);
            try {
                List<Future<NDArray>> results = new ArrayList<>();
                for (int i = 0; i < 6; i++) {
                    results.add(callers.submit(() -> TaspAttention.forward(group, q, k, v, true, null).output()));
                }
                for (Future<NDArray> f : results) {
                    assertClose(f.get(60, TimeUnit.SECONDS), expected, 1e-5, "shared group");
                }
            } finally {
                callers.shutdownNow();
            }
            // A collective started from inside one of the group's rank threads would deadlock.
            IllegalStateException nested = expectThrows(IllegalStateException.class,
                    () -> group.runRanks(150, true, rank -> group.runRanks(150, true, r -> r)));
            assertTrue(nested.getMessage().contains("own rank threads"), nested.getMessage());
        }
        // A failed group says so, at once, with its first failure.
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(3).timeout(1000).build();
                NDManager m = manager.newSubManager()) {
            group.makeSilent(2);
            NDArray q = m.randomNormal(new Shape(1, 2, 60, 8));
            TaspNativeException first = expectThrows(TaspNativeException.class,
                    () -> TaspAttention.forward(group, q, q, q, false, null));
            long start = System.nanoTime();
            IllegalStateException again = expectThrows(IllegalStateException.class,
                    () -> TaspAttention.forward(group, q, q, q, false, null));
            assertTrue((System.nanoTime() - start) / 1e9 < 0.5, "a failed group must fail at once");
            assertTrue(again.getMessage().contains("failed earlier"), again.getMessage());
            assertTrue(again.getMessage().contains(first.getMessage()), again.getMessage());
            assertNotNull(group.failure());
            group.close();
            IllegalStateException closed = expectThrows(IllegalStateException.class,
                    () -> TaspAttention.forward(group, q, q, q, false, null));
            assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
        }
    }

    @Test
    public void aRankEnteredTwiceAtOnceFailsTheGroupAtOnce() throws Exception {
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(2).timeout(LONG_TIMEOUT_MS).build();
                NDManager m = manager.newSubManager()) {
            Inputs in = shardOf(m, group, 0, 1, 2, 2, 8, 40, false);
            ExecutorService pool = Executors.newFixedThreadPool(2);
            try {
                long start = System.nanoTime();
                Future<?> first = pool.submit(() -> TaspAttention.forward(group, 0, in.q(), in.k(), in.v(), false, null,
                        40));
                Thread.sleep(200); // the first caller is waiting for rank 1 to join
                Future<?> second = pool.submit(() -> TaspAttention.forward(group, 0, in.q(), in.k(), in.v(), false,
                        null, 40));
                for (Future<?> f : List.of(first, second)) {
                    ExecutionException e = expectThrows(ExecutionException.class, () -> f.get(60, TimeUnit.SECONDS));
                    assertTrue(e.getCause().getMessage().contains("second caller"), e.getCause().getMessage());
                }
                assertTrue((System.nanoTime() - start) / 1e9 < PROMPT_SECONDS, "too slow");
            } finally {
                pool.shutdownNow();
            }
        }
    }

    @Test
    public void runRanksWithAHungRankReturnsWithinAboutOneTimeout() {
        long timeoutMs = 2000;
        CountDownLatch never = new CountDownLatch(1);
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4).timeout(timeoutMs).build();
                NDManager m = manager.newSubManager()) {
            List<Inputs> inputs = new ArrayList<>();
            for (int r = 0; r < 4; r++) {
                inputs.add(shardOf(m, group, r, 1, 2, 2, 8, 80, false));
            }
            long start = System.nanoTime();
            RuntimeException e = expectThrows(RuntimeException.class, () -> group.runRanks(80, false, rank -> {
                if (rank == 3) {
                    never.await(); // user code that hangs
                }
                Inputs in = inputs.get(rank);
                return TaspAttention.forward(group, rank, in.q(), in.k(), in.v(), false, null, 80);
            }));
            double seconds = (System.nanoTime() - start) / 1e9;
            assertTrue(seconds < 2 * timeoutMs / 1000.0 + 0.5, "runRanks returned after " + seconds + " s");
            List<Throwable> failures = allFailures(e);
            assertEquals(failures.size(), 4, String.valueOf(failures));
            assertTrue(failures.stream().anyMatch(f -> f.getMessage().contains("rank 3 did not return")),
                    String.valueOf(failures));
        } finally {
            never.countDown();
        }
    }

    @Test
    public void aSlowIncomingLinkDelaysItsReceiver() {
        // Rank 0 -> 1 is slow; 1 -> 0 is unlimited. Rank 1's own sends finish at once, but it must wait
        // until rank 0's transfer has crossed the slow link.
        double gbps = 0.0005; // 0.5 MB/s
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(2).strategy(Strategy.RING)
                        .emulateLink(0, 1, gbps).build();
                NDManager m = manager.newSubManager()) {
            NDArray x = m.randomNormal(new Shape(1, 2, 2000, 16));
            TaspAttention.Result r = TaspAttention.forward(group, x, x, x, false, null);
            NativeGroup.RankStats sender = r.stats().get(0);
            NativeGroup.RankStats receiver = r.stats().get(1);
            double expectedMs = sender.bytesSent() / (gbps * 1e9) * 1000;
            assertTrue(expectedMs > 200, "the test needs a visible delay, got " + expectedMs + " ms");
            assertTrue(receiver.totalMs() >= 0.8 * expectedMs,
                    "rank 1 took " + receiver.totalMs() + " ms; its incoming link needs " + expectedMs + " ms");
            assertTrue(receiver.waitMs() >= 0.8 * expectedMs - receiver.computeMs(),
                    "rank 1 waited " + receiver.waitMs() + " ms for a " + expectedMs + " ms transfer");
        }
    }

    @Test
    public void anUnclosedGroupIsFreedByTheCleaner() throws Exception {
        long before = NativeGroup.liveNativeObjects()[0];
        createAndDrop();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (NativeGroup.liveNativeObjects()[0] > before && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(50);
        }
        assertEquals(NativeGroup.liveNativeObjects()[0], before, "the native group of an unreachable NativeGroup");
    }

    private static void createAndDrop() {
        NativeGroup g = new NativeGroup(2, 1000);
        assertEquals(g.worldSize(), 2);
    }
}
