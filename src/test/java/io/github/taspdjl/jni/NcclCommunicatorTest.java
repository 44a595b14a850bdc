package io.github.taspdjl.jni;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

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
}
