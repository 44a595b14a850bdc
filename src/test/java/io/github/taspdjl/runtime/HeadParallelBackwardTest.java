package io.github.taspdjl.runtime;

import static io.github.taspdjl.NDAsserts.assertRelative;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.jni.NativeOps;
import io.github.taspdjl.plan.Strategy;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.DataProvider;
import org.testng.annotations.Test;

/**
 * The backward of Ulysses and hybrids over virtual CPU ranks gives the single-device gradients (DJL
 * autograd through {@link ReferenceAttention}, fp64): dq, dk, dv within 1e-5 of the largest gradient, with
 * key/value heads replicated on several members (their gradients added up) and heads expanded locally.
 */
public class HeadParallelBackwardTest {

    private static final double TOLERANCE = 1e-5;
    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(31);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    @DataProvider
    public Object[][] cases() {
        // {ranks, Ulysses degree (ranks: ulysses), inner, query heads, key/value heads, tokens}
        Object[][] shapes = {
            {2, 2, null, 2, 2, 33L}, {3, 3, null, 6, 3, 40L}, {4, 4, null, 8, 2, 45L}, {8, 8, null, 8, 1, 53L},
            {8, 8, null, 24, 6, 41L}, {16, 16, null, 16, 4, 70L}, {5, 5, null, 10, 10, 37L},
            {8, 2, Strategy.TASP, 8, 2, 61L}, {8, 4, Strategy.RING, 8, 1, 58L}, {4, 2, Strategy.RING, 6, 3, 47L},
            {6, 3, Strategy.TASP, 6, 2, 51L}, {12, 4, Strategy.RING, 8, 8, 75L}};
        Object[][] out = new Object[shapes.length * 2][];
        for (int i = 0; i < shapes.length; i++) {
            for (int c = 0; c < 2; c++) {
                Object[] s = shapes[i];
                out[2 * i + c] = new Object[] {s[0], s[1], s[2], c == 1, s[3], s[4], s[5]};
            }
        }
        return out;
    }

    @Test(dataProvider = "cases")
    public void gradientsEqualSingleDeviceAutograd(int n, int degree, Strategy inner, boolean causal, int heads,
            int kvHeads, long seq) {
        SequenceParallelGroup.Builder b = SequenceParallelGroup.builder().worldSize(n).timeout(20_000);
        try (SequenceParallelGroup group = (inner == null ? b.strategy(Strategy.ULYSSES) : b.hybrid(degree, inner)).build();
                NDManager m = manager.newSubManager()) {
            assertEquals(group.plan(causal).headParallel().degree(), degree);
            double err = DistributedBackwardTest.relativeError(group, m, causal, heads, kvHeads, seq, 8);
            assertTrue(err <= TOLERANCE, group.plan(causal) + " heads " + heads + "/" + kvHeads + ": relative error " + err);
        }
    }

    @Test
    public void bfloat16GradientsOfSharedKeyValueHeadsAddUpInFloat32() {
        // 8 query heads, 1 key/value head on 4 ranks: every member holds a copy of the key/value head
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4).strategy(Strategy.ULYSSES)
                        .timeout(20_000).build();
                NDManager m = manager.newSubManager()) {
            NDArray q = NativeOps.cast(m.randomNormal(new Shape(1, 8, 57, 8)), DataType.BFLOAT16);
            NDArray k = NativeOps.cast(m.randomNormal(new Shape(1, 1, 57, 8)), DataType.BFLOAT16);
            NDArray v = NativeOps.cast(m.randomNormal(new Shape(1, 1, 57, 8)), DataType.BFLOAT16);
            NDArray dout = NativeOps.cast(m.randomNormal(new Shape(1, 8, 57, 8)), DataType.BFLOAT16);
            TaspAttention.Result fwd = TaspAttention.forward(group, q, k, v, true, null);
            TaspAttention.Gradients ours = TaspAttention.backward(group, dout, q, k, v, fwd.output(), fwd.lse(), true, null);
            NDArray q32 = q.toType(DataType.FLOAT32, true);
            NDArray k32 = k.toType(DataType.FLOAT32, true);
            NDArray v32 = v.toType(DataType.FLOAT32, true);
            q32.setRequiresGradient(true);
            k32.setRequiresGradient(true);
            v32.setRequiresGradient(true);
            try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
                NDArray out = ReferenceAttention.compute(q32, k32, v32, true, null).output();
                gc.backward(out.mul(dout.toType(DataType.FLOAT32, true)).sum());
            }
            assertRelative(ours.dq().toType(DataType.FLOAT32, false), q32.getGradient(), 1e-2, "dq");
            assertRelative(ours.dk().toType(DataType.FLOAT32, false), k32.getGradient(), 1e-2, "dk");
            assertRelative(ours.dv().toType(DataType.FLOAT32, false), v32.getGradient(), 1e-2, "dv");
        }
    }
}
