package io.github.taspdjl.runtime;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.plan.HeadParallel;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Planner;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.DataProvider;
import org.testng.annotations.Test;

/**
 * A hybrid's inner attention runs as one world run: member j's copy of inner rank g is world rank {@code
 * hp.rank(g, j)} ({@link RankProgram#liftAll}). The lifting relabels exactly the header and the peers of a
 * program and of a return map; and hybrids whose inner attention runs with lifted programs over the whole
 * in-process group give the single-device output, LSE (fp32, 1e-5) and gradients (fp64 autograd, 1e-5 of the
 * largest), including key/value heads fewer than ranks and members that would hold different numbers of
 * key/value heads (all of them expand, so the world run agrees on its key/value heads).
 */
public class LiftedInnerPlanTest {

    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(43);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    /** A hybrid of degree 2 over 3 inner ranks (world 6). */
    private static HeadParallel degree2Of3() {
        return Planner.hybrid(Topology.virtualCpu(6), 2, Strategy.RING, false).headParallel();
    }

    @Test
    public void aProgramKeepsItsWordsButRankWorldAndPeers() {
        HeadParallel hp = degree2Of3();
        // inner rank 2 of 3, one step: a send to inner rank 0, a receive from inner rank 1, one task
        long[] inner = {RankProgram.MAGIC, RankProgram.VERSION, 2, 3, 1, 10, 10, 7,
            1, 1, 1,
            0, 2, 0, 5, 0, 3,
            1, 0, 0, 7,
            0, 10, 2, 0, 10, 1};
        long[] lifted = RankProgram.lift(inner, hp, 1); // member 1: inner rank r is world rank 2r + 1
        long[] expected = inner.clone();
        expected[2] = 5;
        expected[3] = 6;
        expected[11] = 1;
        expected[17] = 3;
        assertEquals(lifted, expected);
        assertEquals(RankProgram.lift(inner, hp, 0)[11], 0);
        assertEquals(RankProgram.lift(inner, hp, 0)[17], 2);
    }

    @Test
    public void aReturnMapKeepsItsWordsButPeers() {
        HeadParallel hp = degree2Of3();
        // forward steps 1, so backward steps 0 and 1: step 0 empty, step 1 one send to 2 and one receive from 0
        long[] inner = {RankProgram.RETURN_MAP_MAGIC, RankProgram.RETURN_MAP_VERSION, 1, 4,
            0, 0,
            1, 1,
            2, 0, 4, 0,
            0, 0, 4, RankProgram.RETURN_TO_KEYS, 3};
        long[] expected = inner.clone();
        expected[8] = 5;
        expected[12] = 1;
        assertEquals(RankProgram.liftReturnMap(inner, hp, 1), expected);
    }

    @Test
    public void liftedProgramsTalkOnlyInsideTheirMembersCopy() {
        Plan plan = Planner.hybrid(Topology.virtualCpu(8), 2, Strategy.TASP, true);
        HeadParallel hp = plan.headParallel();
        long[][] inner = RankProgram.lowerAll(hp.inner(), 77);
        long[][] lifted = RankProgram.liftAll(plan, 77, null);
        long[][] maps = RankProgram.liftReturnMapsAll(plan, 77);
        assertEquals(lifted.length, 8);
        for (int r = 0; r < 8; r++) {
            assertEquals(lifted[r][2], r, "header rank");
            assertEquals(lifted[r][3], 8, "header world");
            assertEquals(lifted[r].length, inner[hp.groupOf(r)].length);
            for (int i = 0; i < lifted[r].length; i++) {
                long was = inner[hp.groupOf(r)][i];
                long now = lifted[r][i];
                // a relabeled word is an inner rank's world rank in the same member's copy
                assertTrue(now == was || i <= 3 || (was < 4 && now == hp.rank((int) was, hp.memberOf(r))),
                        "rank " + r + " word " + i + ": " + was + " -> " + now);
            }
            assertEquals(maps[r].length, RankProgram.returnMapsAll(hp.inner(), 77)[hp.groupOf(r)].length);
        }
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                () -> RankProgram.liftAll(Planner.plan(Topology.virtualCpu(4), Strategy.TASP, false), 64, null));
        assertTrue(e.getMessage().contains("lowerAll"), e.getMessage());
        long[] truncated = java.util.Arrays.copyOf(inner[0], inner[0].length - 1);
        e = expectThrows(IllegalArgumentException.class, () -> RankProgram.lift(truncated, hp, 0));
        assertTrue(e.getMessage().contains("malformed program"), e.getMessage());
        e = expectThrows(IllegalArgumentException.class, () -> RankProgram.lift(lifted[1], hp, 0));
        assertTrue(e.getMessage().contains("not a program of a 4-rank inner plan"), e.getMessage());
    }

    @DataProvider
    public Object[][] hybrids() {
        // {ranks, Ulysses degree, inner strategy, query heads, key/value heads}
        Object[][] shapes = {
            {4, 2, Strategy.RING, 4, 1}, // 2x2, one key/value head for four ranks
            {8, 2, Strategy.TASP, 8, 2}, // 2x4
            {8, 4, Strategy.RING, 8, 2}, // 4x2
            {8, 4, Strategy.TASP, 12, 3}, // members would hold 1, 3, 3, 1 key/value heads: all expand
            {6, 3, Strategy.RING, 6, 2}, // 1, 2, 1: all expand
            {16, 4, Strategy.TASP, 8, 2}, // 4x4
            {16, 2, Strategy.TASP, 4, 1}}; // 2x8
        Object[][] cases = new Object[shapes.length * 2][];
        for (int i = 0; i < shapes.length; i++) {
            for (int c = 0; c < 2; c++) {
                Object[] s = shapes[i];
                cases[2 * i + c] = new Object[] {s[0], s[1], s[2], c == 1, s[3], s[4], 8L * (int) s[0] + 3 + i};
            }
        }
        return cases;
    }

    @Test(dataProvider = "hybrids")
    public void forwardAndBackwardEqualOneDevice(int n, int degree, Strategy inner, boolean causal, int heads, int kvHeads,
            long seq) {
        try (SequenceParallelGroup group =
                        SequenceParallelGroup.builder().worldSize(n).hybrid(degree, inner).timeout(20_000).build();
                NDManager m = manager.newSubManager()) {
            String what = group.plan(causal) + " heads " + heads + "/" + kvHeads + " seq " + seq;
            int b = 2;
            int d = 8;
            NDArray q = m.randomNormal(new Shape(b, heads, seq, d));
            NDArray k = m.randomNormal(new Shape(b, kvHeads, seq, d));
            NDArray v = m.randomNormal(new Shape(b, kvHeads, seq, d));
            NDArray dout = m.randomNormal(new Shape(b, heads, seq, d));
            TaspAttention.Result fwd = TaspAttention.forward(group, q, k, v, causal, null);
            ReferenceAttention.Result ref = ReferenceAttention.compute(q, k, v, causal, null);
            assertClose(fwd.output(), ref.output(), 1e-5, what + " output");
            assertClose(fwd.lse(), ref.lse(), 1e-5, what + " lse");
            TaspAttention.Gradients ours = TaspAttention.backward(group, dout, q, k, v, fwd.output(), fwd.lse(), causal, null);
            double err = DistributedBackwardTest.gradientError(q, k, v, dout, causal, ours);
            assertTrue(err <= 1e-5, what + ": gradients' relative error " + err);
        }
    }
}
