package io.github.taspdjl.jni;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.attention.TaspAttentionBlock;
import io.github.taspdjl.models.SwiGluMlp;
import io.github.taspdjl.training.Losses;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.Test;

/**
 * Gradients through constants stay right when the garbage collector runs between forward and
 * backward. DJL 0.36's {@code NDArray.mul(Number)} hands autograd a constant in a Java buffer that
 * the GC frees ({@link ScalarOps} says how); here each backward runs after a GC and after freed small
 * buffers were reused and filled with 7.0. Through DJL's {@code mul(0.25)} that gave d(0.25 x)/dx =
 * 7.0 in 30 runs of 30; the same pattern in the test reference made {@code DistributedBackwardTest}
 * fail once with a relative error of 0.42 (the reference's dq and dk were wrong, not ours), and in
 * DJL's math attention and DJL's L2Loss it gave issue 11's wrong gradients (a factor off, or 1e17 to
 * 1e28) in plain DJL autograd.
 */
public class ScalarOpsTest {

    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(41);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    @Test
    public void constantsSurviveTheGcUntilTheBackward() throws InterruptedException {
        for (DataType type : new DataType[] {DataType.FLOAT64, DataType.FLOAT32}) {
            try (NDManager m = manager.newSubManager()) {
                NDArray x = m.ones(new Shape(4), type);
                x.setRequiresGradient(true);
                try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
                    NDArray y = ScalarOps.mul(x, 0.25).add(ScalarOps.div(x, 8.0));
                    assertEquals(y.getDataType(), type);
                    List<ByteBuffer> reused = collectAndReuseFreedBuffers();
                    gc.backward(y.sum());
                    reused.clear();
                }
                NDArray g = x.getGradient().toType(DataType.FLOAT64, false);
                for (int i = 0; i < 4; i++) {
                    assertEquals(g.getDouble(i), 0.375, 0.0, type + ": d(x/4 + x/8)/dx");
                }
            }
        }
    }

    /** The reference attention every gradient test compares with. */
    @Test
    public void referenceAttentionGradientsDoNotDependOnTheGc() throws InterruptedException {
        try (NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(2, 4, 13, 8)).toType(DataType.FLOAT64, false);
            NDArray kv = m.randomNormal(new Shape(2, 2, 13, 8)).toType(DataType.FLOAT64, false);
            NDArray weight = m.randomNormal(new Shape(2, 4, 13, 8)).toType(DataType.FLOAT64, false);
            assertSameWithAndWithoutGc(q, x -> ReferenceAttention.compute(x, kv, kv, true, null).output().mul(weight),
                    "reference attention");
        }
    }

    /** DJL's math inside the block: training with a general mask (also with attention dropout). */
    @Test
    public void theBlocksMathAttentionGradientsDoNotDependOnTheGc() throws InterruptedException {
        try (NDManager m = manager.newSubManager()) {
            TaspAttentionBlock block = TaspAttentionBlock.builder().setEmbeddingSize(16).setHeadCount(2)
                    .optAttentionProbsDropoutProb(0f).build();
            block.initialize(m, DataType.FLOAT32, new Shape(2, 11, 16), new Shape(2, 11, 11));
            NDArray x = m.randomNormal(new Shape(2, 11, 16));
            // A general mask (every token sees itself and a random half of the others): DJL's math path.
            NDArray mask = m.randomUniform(0, 1, new Shape(2, 11, 11)).gt(0.5f)
                    .logicalOr(m.eye(11).toType(DataType.BOOLEAN, false)).toType(DataType.FLOAT32, false);
            assertSameWithAndWithoutGc(x, in -> forward(block, m, in, mask), "TaspAttentionBlock, DJL math");
        }
    }

    @Test
    public void swiGluGradientsDoNotDependOnTheGc() throws InterruptedException {
        try (NDManager m = manager.newSubManager()) {
            SwiGluMlp mlp = new SwiGluMlp(16, 40);
            mlp.initialize(m, DataType.FLOAT32, new Shape(2, 9, 16));
            assertSameWithAndWithoutGc(m.randomNormal(new Shape(2, 9, 16)), in -> forward(mlp, m, in, null), "SwiGLU");
        }
    }

    @Test
    public void theL2LossGradientDoesNotDependOnTheGc() throws InterruptedException {
        try (NDManager m = manager.newSubManager()) {
            NDArray label = m.randomNormal(new Shape(3, 7));
            NDArray prediction = m.randomNormal(new Shape(3, 7));
            assertSameWithAndWithoutGc(prediction,
                    p -> Losses.l2Loss().evaluate(new NDList(label), new NDList(p)), "Losses.l2Loss");
            // and it is DJL's L2 loss: mean of (label - prediction)^2 / 2
            double expected = label.sub(prediction).square().mean().getFloat() / 2;
            double actual = Losses.l2Loss().evaluate(new NDList(label), new NDList(prediction)).getFloat();
            assertEquals(actual, expected, 1e-6 * expected);
        }
    }

    private static NDArray forward(Block block, NDManager m, NDArray x, NDArray mask) {
        NDList in = mask == null ? new NDList(x) : new NDList(x, mask);
        return block.forward(new ParameterStore(m, false), in, true).singletonOrThrow();
    }

    /** d(sum f(x))/dx computed twice, the second time with a GC between forward and backward. */
    private static void assertSameWithAndWithoutGc(NDArray x, Function<NDArray, NDArray> f, String what)
            throws InterruptedException {
        NDArray[] grads = new NDArray[2];
        for (int pass = 0; pass < 2; pass++) {
            NDArray xi = x.duplicate();
            xi.setRequiresGradient(true);
            try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
                NDArray y = f.apply(xi).sum();
                List<ByteBuffer> reused = pass == 1 ? collectAndReuseFreedBuffers() : new ArrayList<>();
                gc.backward(y);
                reused.clear();
            }
            grads[pass] = xi.getGradient().duplicate();
        }
        double scale = grads[0].abs().max().toType(DataType.FLOAT64, false).getDouble();
        double diff = grads[1].sub(grads[0]).abs().max().toType(DataType.FLOAT64, false).getDouble();
        assertTrue(scale > 0 && diff <= 1e-6 * scale, what + ": gradient after a GC differs by " + diff
                + " (largest " + scale + ")");
    }

    /**
     * Collects garbage (freeing the direct buffers of closed DJL arrays), then allocates small
     * direct buffers filled with 7.0 so that freed memory holds something else. Keep the result
     * until after the backward.
     */
    private static List<ByteBuffer> collectAndReuseFreedBuffers() throws InterruptedException {
        System.gc();
        Thread.sleep(50); // a direct buffer's memory is freed by its cleaner, on another thread
        List<ByteBuffer> reused = new ArrayList<>();
        for (int i = 0; i < 2000; i++) {
            ByteBuffer b = ByteBuffer.allocateDirect(8).order(ByteOrder.nativeOrder());
            b.putDouble(0, 7.0);
            reused.add(b);
        }
        return reused;
    }
}
