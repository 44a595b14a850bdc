package io.github.taspdjl.runtime;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Planner;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import org.testng.annotations.Test;

/**
 * {@link ProcessRank}, what {@link NcclGroup} (and {@link ProcessGroup} over TCP) runs for its rank, over an
 * in-process transport: the code NCCL ranks run, exercised where no GPU is. A hybrid's forward and backward
 * through it give single-device results; a rank whose heads do not divide fails, and its rejection fails
 * every peer at once with its message.
 */
public class ProcessRankTest extends RankThreadsTest {

    @Override
    protected int seed() {
        return 47;
    }

    private static ProcessRank rank(NativeGroup group, int rank, Plan plan) {
        return new ProcessRank(rank, causal -> plan, RankTransport.of(group, rank), why -> group.fail("rank " + rank + ": " + why));
    }

    private <T> List<T> onRanks(int n, IntFunction<T> body) throws Exception {
        List<Future<T>> futures = new ArrayList<>();
        for (int r = 0; r < n; r++) {
            final int rank = r;
            futures.add(pool.submit(() -> body.apply(rank)));
        }
        List<T> out = new ArrayList<>();
        for (Future<T> f : futures) {
            out.add(f.get(60, TimeUnit.SECONDS));
        }
        return out;
    }

    @Test
    public void aHybridForwardAndBackwardEqualOneDevice() throws Exception {
        int n = 4;
        long seq = 53;
        Plan plan = Planner.hybrid(Topology.virtualCpu(n), 2, Strategy.TASP, true);
        SequenceLayout layout = plan.layout();
        try (NDManager m = manager.newSubManager(); NativeGroup group = new NativeGroup(n, 20_000)) {
            NDArray q = m.randomNormal(new Shape(2, 4, seq, 8));
            NDArray k = m.randomNormal(new Shape(2, 1, seq, 8));
            NDArray v = m.randomNormal(new Shape(2, 1, seq, 8));
            NDArray dout = m.randomNormal(new Shape(2, 4, seq, 8));
            List<NDArray[]> results = onRanks(n, r -> {
                ProcessRank self = rank(group, r, plan);
                NDArray[] s = {Sharding.shard(q, layout, r), Sharding.shard(k, layout, r), Sharding.shard(v, layout, r),
                    Sharding.shard(dout, layout, r)};
                NativeGroup.RankOutput fwd = self.forward(s[0], s[1], s[2], true, null, seq, null);
                NativeGroup.RankGradients g = self.backward(s[3], s[0], s[1], s[2], fwd.output(), fwd.lse(), true, null, seq);
                return new NDArray[] {fwd.output(), g.dq(), g.dk(), g.dv()};
            });
            NDArray[] whole = new NDArray[4];
            for (int i = 0; i < 4; i++) {
                List<NDArray> parts = new ArrayList<>();
                for (NDArray[] r : results) {
                    parts.add(r[i]);
                }
                whole[i] = Sharding.gather(parts, layout, seq);
            }
            assertClose(whole[0], ReferenceAttention.compute(q, k, v, true, null).output(), 1e-5, "output");
            double err = DistributedBackwardTest.gradientError(q, k, v, dout, true,
                    new io.github.taspdjl.attention.TaspAttention.Gradients(whole[1], whole[2], whole[3], List.of()));
            assertTrue(err <= 1e-5, "gradients' relative error " + err);
        }
    }

    @Test
    public void aRankWhoseHeadsDoNotDivideFailsEveryRankAtOnce() throws Exception {
        int n = 3;
        long seq = 40;
        Plan plan = Planner.ulysses(n, false);
        SequenceLayout layout = plan.layout();
        long start = System.nanoTime();
        try (NDManager m = manager.newSubManager(); NativeGroup group = new NativeGroup(n, 20_000)) {
            List<String> errors = onRanks(n, r -> {
                NDArray q = Sharding.shard(m.randomNormal(new Shape(1, r == 2 ? 4 : 3, seq, 8)), layout, r);
                NDArray kv = Sharding.shard(m.randomNormal(new Shape(1, 1, seq, 8)), layout, r);
                try {
                    rank(group, r, plan).forward(q, kv, kv, false, null, seq, null);
                    return "no failure";
                } catch (RuntimeException e) {
                    return e.getMessage();
                }
            });
            for (String e : errors) {
                assertTrue(e.contains("4 query heads do not divide among the 3 ranks"), e);
            }
        }
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(15), "failed at once, not by the 20 s timeout");
    }
}
