package io.github.taspdjl.attention;

import static io.github.taspdjl.NDAsserts.assertClose;
import static io.github.taspdjl.NDAsserts.assertRelative;
import static org.testng.Assert.expectThrows;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.jni.NativeOps;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.Test;

/**
 * The fp32 log-sum-exp merge: attention over key blocks, merged, equals attention over all keys —
 * the identity the distributed operator rests on.
 */
public class LseMergeTest {

    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(7);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    @Test
    public void mergingKeyBlocksEqualsAttentionOverAllKeys() {
        for (DataType dt : new DataType[] {DataType.FLOAT32, DataType.BFLOAT16}) {
            try (NDManager m = manager.newSubManager()) {
                NDArray q = NativeOps.cast(m.randomNormal(new Shape(2, 4, 19, 16)), dt);
                NDArray k = NativeOps.cast(m.randomNormal(new Shape(2, 2, 50, 16)), dt);
                NDArray v = NativeOps.cast(m.randomNormal(new Shape(2, 2, 50, 16)), dt);
                NDArray accOut = m.zeros(new Shape(2, 4, 19, 16), DataType.FLOAT32);
                NDArray accLse = m.full(new Shape(2, 4, 19), Float.NEGATIVE_INFINITY, DataType.FLOAT32);
                int[] cuts = {0, 7, 8, 31, 50}; // uneven blocks, one of a single key
                for (int i = 0; i + 1 < cuts.length; i++) {
                    NDIndex keys = new NDIndex(":, :, {}:{}", cuts[i], cuts[i + 1]);
                    FlashAttention.Result part = FlashAttention.forward(q, k.get(keys), v.get(keys), false);
                    NativeOps.mergePartial(accOut, accLse, part.output(), part.lse());
                }
                ReferenceAttention.Result whole = ReferenceAttention.compute(
                        q.toType(DataType.FLOAT32, true), k.toType(DataType.FLOAT32, true),
                        v.toType(DataType.FLOAT32, true), false, null);
                if (dt == DataType.FLOAT32) {
                    assertClose(accOut, whole.output(), 1e-5, "merged output");
                    assertClose(accLse, whole.lse(), 1e-5, "merged lse");
                } else {
                    assertRelative(accOut, whole.output(), 1e-2, "bf16 merged output");
                    assertRelative(accLse, whole.lse(), 1e-2, "bf16 merged lse");
                }
            }
        }
    }

    @Test
    public void partialsWithInfiniteLseAreEmptyOnEitherSide() {
        try (NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(1, 2, 6, 8));
            NDArray k = m.randomNormal(new Shape(1, 2, 10, 8));
            NDArray v = m.randomNormal(new Shape(1, 2, 10, 8));
            FlashAttention.Result whole = FlashAttention.forward(q, k, v, false);
            // A block whose rows are all fully masked: kernels write LSE +inf (or -inf) and any output.
            NDArray emptyOut = m.full(new Shape(1, 2, 6, 8), Float.NaN, DataType.FLOAT32);
            for (float inf : new float[] {Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                NDArray emptyLse = m.full(new Shape(1, 2, 6), inf, DataType.FLOAT32);
                // Empty block into a filled accumulator: nothing changes.
                NDArray accOut = whole.output().duplicate();
                NDArray accLse = whole.lse().duplicate();
                NativeOps.mergePartial(accOut, accLse, emptyOut, emptyLse);
                assertClose(accOut, whole.output(), 0, "accumulator after an empty block (lse " + inf + ")");
                assertClose(accLse, whole.lse(), 0, "lse after an empty block (lse " + inf + ")");
                // A real block into an accumulator that holds an empty partial: the block itself.
                NDArray emptyAcc = emptyOut.duplicate();
                NDArray emptyAccLse = emptyLse.duplicate();
                NativeOps.mergePartial(emptyAcc, emptyAccLse, whole.output(), whole.lse());
                assertClose(emptyAcc, whole.output(), 1e-6, "empty accumulator (lse " + inf + ") after a block");
                assertClose(emptyAccLse, whole.lse(), 1e-6, "its lse");
            }
        }
    }

    @Test
    public void mergeRejectsMismatchedShapesAndTypes() {
        try (NDManager m = manager.newSubManager()) {
            NDArray accOut = m.zeros(new Shape(1, 2, 3, 4), DataType.FLOAT32);
            NDArray accLse = m.zeros(new Shape(1, 2, 3), DataType.FLOAT32);
            expectThrows(IllegalArgumentException.class,
                    () -> NativeOps.mergePartial(accOut, accLse, m.zeros(new Shape(1, 2, 4, 4)), accLse));
            expectThrows(IllegalArgumentException.class,
                    () -> NativeOps.mergePartial(accOut, m.zeros(new Shape(1, 2, 4)), accOut, accLse));
            expectThrows(IllegalArgumentException.class,
                    () -> NativeOps.mergePartial(accOut.toType(DataType.FLOAT16, false), accLse, accOut, accLse));
        }
    }
}
