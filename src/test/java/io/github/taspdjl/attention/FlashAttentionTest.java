package io.github.taspdjl.attention;

import static io.github.taspdjl.NDAsserts.assertClose;
import static io.github.taspdjl.NDAsserts.assertRelative;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.github.taspdjl.jni.NativeOps;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.DataProvider;
import org.testng.annotations.Test;

/**
 * Single-device attention through the native bridge against {@link ReferenceAttention} (DJL's own
 * operations on the whole sequence): outputs, LSE, explicit backward and autograd.
 */
public class FlashAttentionTest {

    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager(Engine.getEngine("PyTorch").defaultDevice(), "PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(1234);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    @DataProvider
    public Object[][] cases() {
        // batch, q heads, kv heads, q length, kv length, head dim, causal, scale
        return new Object[][] {
            {2, 4, 4, 37, 37, 16, false, null},
            {2, 4, 4, 37, 37, 16, true, null},
            {1, 8, 4, 29, 53, 32, false, 0.3f},
            {1, 8, 2, 41, 41, 8, true, null},
            {3, 8, 1, 17, 5, 64, false, null},
            {1, 2, 2, 1, 1, 4, true, 1.5f},
        };
    }

    @Test(dataProvider = "cases")
    public void forwardAndBackwardMatchReferenceInFloat32(
            int b, int h, int hkv, int sq, int sk, int d, boolean causal, Float scale) {
        try (NDManager m = manager.newSubManager()) {
            Inputs in = Inputs.random(m, b, h, hkv, sq, sk, d, DataType.FLOAT32);
            FlashAttention.Result ours = FlashAttention.forward(in.q, in.k, in.v, causal, scale);
            assertEquals(ours.output().getShape(), in.q.getShape());
            assertEquals(ours.output().getDataType(), DataType.FLOAT32);
            assertEquals(ours.lse().getShape(), new Shape(b, h, sq));
            assertEquals(ours.backend(), FlashAttention.Backend.CPU_FLASH);

            Reference ref = Reference.of(in, causal, scale, DataType.FLOAT32);
            assertClose(ours.output(), ref.out, 1e-5, "output");
            assertClose(ours.lse(), ref.lse, 1e-5, "lse");

            FlashAttention.Gradients g =
                    FlashAttention.backward(in.dout, in.q, in.k, in.v, ours.output(), ours.lse(), causal, scale);
            assertEquals(g.dk().getShape(), in.k.getShape());
            assertClose(g.dq(), ref.dq, 1e-5, "dq");
            assertClose(g.dk(), ref.dk, 1e-5, "dk");
            assertClose(g.dv(), ref.dv, 1e-5, "dv");
        }
    }

    @Test(dataProvider = "cases")
    public void forwardAndBackwardMatchReferenceInHalfPrecision(
            int b, int h, int hkv, int sq, int sk, int d, boolean causal, Float scale) {
        for (DataType dt : new DataType[] {DataType.BFLOAT16, DataType.FLOAT16}) {
            try (NDManager m = manager.newSubManager()) {
                Inputs in = Inputs.random(m, b, h, hkv, sq, sk, d, dt);
                FlashAttention.Result ours = FlashAttention.forward(in.q, in.k, in.v, causal, scale);
                assertEquals(NativeOps.dataType(ours.output()), dt);
                assertEquals(ours.lse().getDataType(), DataType.FLOAT32);
                // The reference sees the same rounded inputs, computed in fp32.
                Reference ref = Reference.of(in, causal, scale, DataType.FLOAT32);
                assertRelative(ours.output(), ref.out, 1e-2, dt + " output");
                assertRelative(ours.lse(), ref.lse, 1e-2, dt + " lse");
                FlashAttention.Gradients g =
                        FlashAttention.backward(in.dout, in.q, in.k, in.v, ours.output(), ours.lse(), causal, scale);
                assertEquals(NativeOps.dataType(g.dq()), dt);
                assertEquals(NativeOps.dataType(g.dk()), dt);
                assertRelative(g.dq(), ref.dq, 1e-2, dt + " dq");
                assertRelative(g.dk(), ref.dk, 1e-2, dt + " dk");
                assertRelative(g.dv(), ref.dv, 1e-2, dt + " dv");
            }
        }
    }

    @Test
    public void slicedAndTransposedInputsGiveTheSameResult() {
        try (NDManager m = manager.newSubManager()) {
            // q seen through a transpose of (B, S, H, D); k and v sliced along the sequence.
            NDArray q = m.randomNormal(new Shape(2, 21, 4, 16)).transpose(0, 2, 1, 3);
            NDArray kAll = m.randomNormal(new Shape(2, 2, 40, 16));
            NDArray vAll = m.randomNormal(new Shape(2, 2, 40, 16));
            NDIndex part = new NDIndex(":, :, 9:30");
            NDArray k = kAll.get(part);
            NDArray v = vAll.get(part);
            FlashAttention.Result ours = FlashAttention.forward(q, k, v, true);
            ReferenceAttention.Result ref =
                    ReferenceAttention.compute(q.duplicate(), k.duplicate(), v.duplicate(), true, null);
            assertClose(ours.output(), ref.output(), 1e-5, "strided output");
            assertClose(ours.lse(), ref.lse(), 1e-5, "strided lse");
            FlashAttention.Gradients g = FlashAttention.backward(
                    ours.output().duplicate(), q, k, v, ours.output(), ours.lse(), true, null);
            FlashAttention.Gradients gc = FlashAttention.backward(ours.output().duplicate(), q.duplicate(),
                    k.duplicate(), v.duplicate(), ours.output(), ours.lse(), true, null);
            assertClose(g.dq(), gc.dq(), 1e-6, "strided dq");
            assertClose(g.dk(), gc.dk(), 1e-6, "strided dk");
        }
    }

    @Test
    public void badInputIsAnIllegalArgumentExceptionNamingTheShapes() {
        try (NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(2, 4, 8, 16));
            NDArray k = m.randomNormal(new Shape(2, 2, 8, 16));
            NDArray v = m.randomNormal(new Shape(2, 2, 8, 16));
            assertMessage(() -> FlashAttention.forward(q.reshape(8, 8, 16), k, v, false), "4-D", "(8, 8, 16)");
            assertMessage(() -> FlashAttention.forward(q, m.randomNormal(new Shape(3, 2, 8, 16)), m.randomNormal(
                    new Shape(3, 2, 8, 16)), false), "batch sizes differ", "(3, 2, 8, 16)");
            assertMessage(() -> FlashAttention.forward(q, m.randomNormal(new Shape(2, 2, 8, 8)), m.randomNormal(
                    new Shape(2, 2, 8, 8)), false), "head dimensions differ", "(2, 2, 8, 8)");
            assertMessage(() -> FlashAttention.forward(q, k, m.randomNormal(new Shape(2, 2, 9, 16)), false),
                    "k and v", "(2, 2, 9, 16)");
            assertMessage(() -> FlashAttention.forward(q, k.toType(DataType.FLOAT16, false),
                    v.toType(DataType.FLOAT16, false), false), "dtypes differ", "float16");
            assertMessage(() -> FlashAttention.forward(q.toType(DataType.FLOAT64, false),
                    k.toType(DataType.FLOAT64, false), v.toType(DataType.FLOAT64, false), false),
                    "not supported", "float64");
            assertMessage(() -> FlashAttention.forward(q, m.randomNormal(new Shape(2, 3, 8, 16)), m.randomNormal(
                    new Shape(2, 3, 8, 16)), false), "multiple of key/value heads", "(2, 3, 8, 16)");
            assertMessage(() -> FlashAttention.forward(q, m.zeros(new Shape(2, 2, 0, 16)), m.zeros(
                    new Shape(2, 2, 0, 16)), false), "zero-length", "(2, 2, 0, 16)");
            assertMessage(() -> FlashAttention.forward(m.zeros(new Shape(2, 4, 0, 16)), k, v, false),
                    "zero-length", "(2, 4, 0, 16)");
            assertMessage(() -> FlashAttention.forward(q, m.randomNormal(new Shape(2, 2, 9, 16)), m.randomNormal(
                    new Shape(2, 2, 9, 16)), true), "causal", "(2, 2, 9, 16)");
            assertMessage(() -> FlashAttention.forward(q, k, v, false, -1f), "scale", "-1.0");
            FlashAttention.Result r = FlashAttention.forward(q, k, v, false);
            assertMessage(() -> FlashAttention.backward(r.output(), q, k, v, r.output(), r.lse().reshape(2, 4, 8, 1),
                    false, null), "lse", "(2, 4, 8, 1)");
        }
    }

    @Test
    public void inputsOnDifferentDevicesAreRejectedBeforeAnyNativeCall() {
        try (NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(1, 2, 8, 16));
            NDArray k = m.randomNormal(new Shape(1, 2, 8, 16));
            // This machine has no GPU: a stand-in that only answers metadata calls plays the GPU array.
            NDArray onGpu = (NDArray) java.lang.reflect.Proxy.newProxyInstance(NDArray.class.getClassLoader(),
                    new Class<?>[] {NDArray.class}, (proxy, method, args) -> {
                        switch (method.getName()) {
                            case "getShape":
                                return new Shape(1, 2, 8, 16);
                            case "getDataType":
                                return DataType.FLOAT32;
                            case "getDevice":
                                return ai.djl.Device.gpu(0);
                            case "toString":
                                return "stand-in GPU array";
                            default:
                                throw new AssertionError("unexpected call " + method.getName());
                        }
                    });
            assertMessage(() -> FlashAttention.forward(q, k, onGpu, false), "different devices", "gpu(0)");
        }
    }

    private static void assertMessage(Runnable call, String... parts) {
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class, call::run);
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "message '" + e.getMessage() + "' should mention '" + p + "'");
        }
    }

    /** Random inputs in the dtype under test, plus an output gradient. */
    static final class Inputs {
        final NDArray q;
        final NDArray k;
        final NDArray v;
        final NDArray dout;

        private Inputs(NDArray q, NDArray k, NDArray v, NDArray dout) {
            this.q = q;
            this.k = k;
            this.v = v;
            this.dout = dout;
        }

        static Inputs random(NDManager m, int b, int h, int hkv, int sq, int sk, int d, DataType dt) {
            return new Inputs(
                    NativeOps.cast(m.randomNormal(new Shape(b, h, sq, d)), dt),
                    NativeOps.cast(m.randomNormal(new Shape(b, hkv, sk, d)), dt),
                    NativeOps.cast(m.randomNormal(new Shape(b, hkv, sk, d)), dt),
                    NativeOps.cast(m.randomNormal(new Shape(b, h, sq, d)), dt));
        }
    }

    /** Reference output, LSE and gradients (DJL autograd through {@link ReferenceAttention}). */
    static final class Reference {
        NDArray out;
        NDArray lse;
        NDArray dq;
        NDArray dk;
        NDArray dv;

        static Reference of(Inputs in, boolean causal, Float scale, DataType math) {
            Reference r = new Reference();
            NDArray q = in.q.toType(math, true);
            NDArray k = in.k.toType(math, true);
            NDArray v = in.v.toType(math, true);
            q.setRequiresGradient(true);
            k.setRequiresGradient(true);
            v.setRequiresGradient(true);
            try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
                ReferenceAttention.Result res = ReferenceAttention.compute(q, k, v, causal, scale);
                r.out = res.output().stopGradient();
                r.lse = res.lse().stopGradient();
                gc.backward(res.output().mul(in.dout.toType(math, true)).sum());
            }
            r.dq = q.getGradient().duplicate();
            r.dk = k.getGradient().duplicate();
            r.dv = v.getGradient().duplicate();
            return r;
        }
    }
}
