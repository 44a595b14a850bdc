package io.github.taspdjl.attention;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertEquals;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.transformer.ScaledDotProductAttentionBlock;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.util.Pair;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.DataProvider;
import org.testng.annotations.Test;

/**
 * Attention recorded by libtorch's autograd ({@link FlashAttention#forwardRecorded}): DJL's
 * GradientCollector differentiates it, and the gradients equal DJL autograd through {@link
 * ReferenceAttention}; a {@link TaspAttentionBlock} trained on one device gives DJL's block's
 * parameter gradients.
 */
public class RecordedAttentionTest {

    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(4321);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    @DataProvider
    public Object[][] cases() {
        // batch, q heads, kv heads, length, head dim, causal, scale
        return new Object[][] {
            {2, 4, 4, 37, 16, false, null},
            {2, 4, 4, 37, 16, true, null},
            {1, 8, 2, 41, 8, true, 0.3f},
            {1, 4, 1, 29, 32, false, null},
        };
    }

    @Test(dataProvider = "cases")
    public void gradientsMatchReferenceAutograd(int b, int h, int hkv, int s, int d, boolean causal, Float scale) {
        try (NDManager m = manager.newSubManager()) {
            FlashAttentionTest.Inputs in = FlashAttentionTest.Inputs.random(m, b, h, hkv, s, s, d, DataType.FLOAT32);
            FlashAttentionTest.Reference ref = FlashAttentionTest.Reference.of(in, causal, scale, DataType.FLOAT64);
            NDArray q = in.q.duplicate();
            NDArray k = in.k.duplicate();
            NDArray v = in.v.duplicate();
            q.setRequiresGradient(true);
            k.setRequiresGradient(true);
            v.setRequiresGradient(true);
            try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
                NDArray out = FlashAttention.forwardRecorded(q, k, v, causal, scale);
                assertClose(out, ref.out, 1e-5, "output");
                gc.backward(out.mul(in.dout).sum());
            }
            assertClose(q.getGradient(), ref.dq, 1e-5, "dq");
            assertClose(k.getGradient(), ref.dk, 1e-5, "dk");
            assertClose(v.getGradient(), ref.dv, 1e-5, "dv");
        }
    }

    @Test
    public void blockTrainsLikeDjlsBlockWithoutDropout() {
        int e = 32;
        Shape shape = new Shape(2, 19, e);
        try (NDManager m = manager.newSubManager()) {
            ScaledDotProductAttentionBlock djl = ScaledDotProductAttentionBlock.builder().setEmbeddingSize(e)
                    .setHeadCount(4).optAttentionProbsDropoutProb(0f).build();
            djl.initialize(m, DataType.FLOAT32, shape);
            TaspAttentionBlock ours = TaspAttentionBlock.from(djl, false, null);
            NDArray x = m.randomNormal(shape);
            NDArray[] expected = parameterGradients(djl, x, m);
            NDArray[] actual = parameterGradients(ours, x, m);
            assertEquals(actual.length, expected.length);
            // relative to the largest gradient of any parameter (the key bias's is zero in exact math)
            double largest = 0;
            for (NDArray g : expected) {
                largest = Math.max(largest, g.abs().max().getFloat());
            }
            for (int i = 0; i < actual.length; i++) {
                assertClose(actual[i], expected[i], 1e-5 * largest, "parameter " + i);
            }
        }
    }

    private static NDArray[] parameterGradients(ai.djl.nn.Block block, NDArray x, NDManager m) {
        var params = block.getParameters();
        for (Pair<String, Parameter> p : params) {
            NDArray a = p.getValue().getArray();
            a.setRequiresGradient(true);
            a.getGradient().subi(a.getGradient());
        }
        try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
            NDArray y = block.forward(new ParameterStore(m, false), new NDList(x), true).singletonOrThrow();
            gc.backward(y.mul(y).sum());
        }
        NDArray[] g = new NDArray[params.size()];
        for (int i = 0; i < g.length; i++) {
            g[i] = params.get(i).getValue().getArray().getGradient().duplicate();
        }
        return g;
    }
}
