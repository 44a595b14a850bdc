package io.github.taspdjl.jni;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import org.testng.SkipException;
import org.testng.annotations.Test;

/**
 * NCCL is loaded only when asked for, and its absence is then a clear error. (This machine has no
 * NCCL and no GPU; the GPU check runs the NCCL transport with world size 1 where there is one.)
 */
public class NcclCommunicatorTest {

    @Test
    public void aMissingNcclLibraryIsAClearErrorOnlyWhenAskedFor() {
        String old = System.getProperty("tasp.nccl.library");
        System.setProperty("tasp.nccl.library", "/nonexistent/libnccl.so.2");
        try {
            // The native library itself loads and works without NCCL.
            NativeLoader.load();
            TaspNativeException e = expectThrows(TaspNativeException.class, NcclCommunicator::version);
            assertEquals(e.code(), TaspNativeException.SYMBOL);
            assertTrue(e.getMessage().contains("/nonexistent/libnccl.so.2"), e.getMessage());
            assertTrue(e.getMessage().contains("TASP_NCCL_LIBRARY"), e.getMessage());
            expectThrows(TaspNativeException.class, NcclCommunicator::uniqueId);
        } finally {
            if (old == null) {
                System.clearProperty("tasp.nccl.library");
            } else {
                System.setProperty("tasp.nccl.library", old);
            }
        }
    }

    @Test
    public void joiningChecksItsArgumentsAndNeedsTheCudaFlavor() {
        expectThrows(IllegalArgumentException.class, () -> NcclCommunicator.join(2, 2, new byte[128], 0, 1000));
        expectThrows(IllegalArgumentException.class, () -> NcclCommunicator.join(2, 0, new byte[5], 0, 1000));
        // The CPU flavor is loaded here: NCCL (GPU memory) is refused with the reason.
        TaspNativeException e = expectThrows(TaspNativeException.class,
                () -> NcclCommunicator.join(1, 0, new byte[128], 0, 1000));
        assertTrue(e.getMessage().contains("cuda flavor"), e.getMessage());
    }

    @Test
    public void allToAllChecksItsArgumentsBeforeAnyNativeCall() {
        // A closed communicator (no native handle): every check below must come before the native call,
        // which would report the closed communicator instead.
        NcclCommunicator closed = new NcclCommunicator(2, 0, 0);
        try (NDManager m = NDManager.newBaseManager("PyTorch")) {
            NDArray a = m.ones(new Shape(2, 3));
            IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                    () -> closed.allToAll(new NDArray[] {null, a, null}, new long[][] {null, {2, 3}, null}, a));
            assertTrue(e.getMessage().contains("over 2 ranks needs one piece and one shape per rank, got 3 and 3"),
                    e.getMessage());
            // The peers would be told through the agreement exchange; a closed communicator cannot.
            assertEquals(e.getSuppressed().length, 1);
            assertTrue(e.getSuppressed()[0].getMessage().contains("closed"), e.getSuppressed()[0].getMessage());
            e = expectThrows(IllegalArgumentException.class,
                    () -> closed.allToAll(new NDArray[] {null, a}, new long[][] {null, {2, 3, 1}}, a));
            assertTrue(e.getMessage().contains("the shape expected from rank 1 has 3 sizes, the exchange 2"),
                    e.getMessage());
            e = expectThrows(IllegalArgumentException.class,
                    () -> closed.allToAll(new NDArray[] {null, a}, new long[][] {null, {2, 3}}, null));
            assertTrue(e.getMessage().contains("a tensor giving dtype and device"), e.getMessage());
            e = expectThrows(IllegalArgumentException.class,
                    () -> closed.allToAll(new NDArray[] {null, a}, new long[][] {null, {2, 3}}, m.create(1f)));
            assertTrue(e.getMessage().contains("like is a scalar"), e.getMessage());
            // Valid arguments reach the communicator, which says it is closed.
            IllegalStateException s = expectThrows(IllegalStateException.class,
                    () -> closed.allToAll(new NDArray[] {null, a}, new long[][] {null, {2, 3}}, a));
            assertTrue(s.getMessage().contains("closed"), s.getMessage());
        }
    }

    @Test
    public void allToAllNeedsTheCudaFlavor() {
        if (!"cpu".equals(NativeLoader.load().flavor())) {
            throw new SkipException("checks the CPU flavor's refusal");
        }
        try (NDManager m = NDManager.newBaseManager("PyTorch")) {
            NDArray a = m.ones(new Shape(2, 3));
            long like = NativeOps.handle(a, "like");
            double[] stats = new double[TaspLibrary.statsLength(0)];
            // No communicator can be made in the CPU flavor, and its all-to-all refuses before it
            // looks at one: a dummy non-null handle reaches the refusal.
            TaspNativeException e = expectThrows(TaspNativeException.class, () -> TaspLibrary.ncclAllToAll(
                    1L, new long[] {0, like}, new long[] {-1, 0, 2, 3}, 2, like, stats));
            assertEquals(e.code(), TaspNativeException.STATE);
            assertTrue(e.getMessage().contains("cuda flavor"), e.getMessage());
            // A null communicator is refused before anything else.
            IllegalArgumentException n = expectThrows(IllegalArgumentException.class, () -> TaspLibrary.ncclAllToAll(
                    0L, new long[] {0, like}, new long[] {-1, 0, 2, 3}, 2, like, stats));
            assertTrue(n.getMessage().contains("null communicator"), n.getMessage());
        }
    }
}
