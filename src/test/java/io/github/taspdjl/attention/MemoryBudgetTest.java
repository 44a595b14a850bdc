package io.github.taspdjl.attention;

import static org.testng.Assert.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import java.nio.file.Files;
import java.nio.file.Path;
import org.testng.annotations.Test;

/**
 * At 16K tokens and 4 heads DJL's ScaledDotProductAttentionBlock needs 8 GiB for its fp32 scores
 * and probabilities alone, over a 2 GiB budget; TaspAttentionBlock over 8 virtual ranks runs the
 * same length within the budget (the process's peak resident memory grows by less than it).
 */
public class MemoryBudgetTest {

    private static final long BUDGET = 2L << 30;

    @Test
    public void aLengthOverDjlsBudgetRunsOnEightRanks() throws Exception {
        long seq = 16_384;
        int heads = 4;
        int e = 32;
        long djlBytes = 2L * heads * seq * seq * Float.BYTES; // (B, N, S, S) scores and probabilities
        assertTrue(djlBytes > BUDGET, "DJL's block needs " + djlBytes + " bytes");
        long before = peakRss();
        try (NDManager m = NDManager.newBaseManager("PyTorch");
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(8).timeout(120_000).build()) {
            TaspAttentionBlock block = TaspAttentionBlock.builder().setEmbeddingSize(e).setHeadCount(heads)
                    .optCausal(true).optGroup(group).build();
            block.initialize(m, DataType.FLOAT32, new Shape(1, seq, e));
            NDArray out = block.forward(new ParameterStore(m, false), new NDList(m.randomNormal(new Shape(1, seq, e))),
                    false).singletonOrThrow();
            assertTrue(Float.isFinite(out.abs().max().getFloat()));
            long perRank = group.lastStats().stream().mapToLong(NativeGroup.RankStats::bufferBytes).max().orElse(-1);
            assertTrue(perRank > 0 && perRank < BUDGET / 8, "executor bytes per rank " + perRank);
        }
        long growth = peakRss() - before;
        assertTrue(growth < BUDGET, "peak resident memory grew by " + growth + " bytes");
    }

    private static long peakRss() throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmHWM in /proc/self/status");
    }
}
