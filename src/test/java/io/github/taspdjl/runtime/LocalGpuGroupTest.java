package io.github.taspdjl.runtime;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import io.github.taspdjl.jni.TaspNativeException;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import io.github.taspdjl.topology.TopologyPresets;
import org.testng.annotations.Test;

/**
 * One JVM over the node's GPUs, as far as a machine without GPUs and without NCCL can take it: every
 * check before NCCL, and NCCL's absence reported before any rank thread starts. Running it needs a
 * machine with GPUs (docs/LAUNCHING.md).
 */
public class LocalGpuGroupTest {

    @Test
    public void withoutGpusItSaysHowManyDjlSees() {
        IllegalStateException e = expectThrows(IllegalStateException.class,
                () -> LocalGpuGroup.create(TopologyPresets.h100NvSwitch8(), Strategy.TASP, 5_000));
        assertTrue(e.getMessage().contains("this node's 8 GPU(s) needs them all, but DJL's PyTorch engine sees 0"),
                e.getMessage());
        assertEquals(rankThreads(), 0);
    }

    @Test
    public void oneNodeOnly() {
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                () -> LocalGpuGroup.create(TopologyPresets.h100Nodes(2), Strategy.TASP_HIERARCHICAL, 5_000, 16));
        assertTrue(e.getMessage().contains("one JVM serves one node"), e.getMessage());
        expectThrows(IllegalArgumentException.class,
                () -> LocalGpuGroup.create(Topology.virtualCpu(2), Strategy.TASP, 0, 2));
    }

    @Test
    public void withGpusButNoNcclItNamesTheLibraryBeforeStartingAnyRank() {
        String old = System.getProperty("tasp.nccl.library");
        System.setProperty("tasp.nccl.library", "/nonexistent/libnccl.so.2");
        try {
            TaspNativeException e = expectThrows(TaspNativeException.class,
                    () -> LocalGpuGroup.create(TopologyPresets.h100NvSwitch8(), Strategy.TASP, 5_000, 8));
            assertTrue(e.getMessage().contains("/nonexistent/libnccl.so.2"), e.getMessage());
            assertEquals(rankThreads(), 0);
        } finally {
            if (old == null) {
                System.clearProperty("tasp.nccl.library");
            } else {
                System.setProperty("tasp.nccl.library", old);
            }
        }
    }

    private static long rankThreads() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith("tasp-gpu-rank-")).count();
    }
}
