package io.github.taspdjl.runtime;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.attention.FlashAttention;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.attention.TaspAttentionBlock;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.DataProvider;
import org.testng.annotations.Test;

/**
 * Packed sequences: 5 documents of odd lengths in one sequence give, per document, the output of
 * that document run alone (DJL's own ops on the document), on one device and over 8 virtual ranks
 * for every strategy and both masks.
 */
public class PackedSequenceTest {

    /** Odd lengths; boundaries fall inside blocks and inside chunks of every plan over 8 ranks. */
    private static final long[] LENGTHS = {61, 7, 133, 29, 97};
    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(5);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    @DataProvider
    public Object[][] strategies() {
        return new Object[][] {{Strategy.RING, false}, {Strategy.RING, true}, {Strategy.ZIGZAG_RING, false},
            {Strategy.ZIGZAG_RING, true}, {Strategy.TASP, false}, {Strategy.TASP, true}, {Strategy.TASP_CAUSAL, false},
            {Strategy.TASP_CAUSAL, true}, {Strategy.DIRECT, false}, {Strategy.DIRECT, true},
            {Strategy.TASP_HIERARCHICAL, false}, {Strategy.TASP_HIERARCHICAL, true}, {Strategy.ULYSSES, false},
            {Strategy.ULYSSES, true}, {Strategy.HYBRID, false}, {Strategy.HYBRID, true}};
    }

    private static void assertEachDocumentAlone(PackedSequence docs, NDArray q, NDArray k, NDArray v, boolean causal,
            NDArray out, String what) {
        for (int d = 0; d < docs.documentCount(); d++) {
            NDIndex range = new NDIndex(":, :, {}:{}", docs.start(d), docs.end(d));
            NDArray alone = ReferenceAttention.compute(q.get(range), k.get(range), v.get(range), causal, null).output();
            assertClose(out.get(range), alone, 1e-5, what + ", document " + d);
        }
    }

    @Test(dataProvider = "strategies")
    public void eachDocumentEqualsItselfAloneOnEightRanks(Strategy strategy, boolean causal) {
        PackedSequence docs = PackedSequence.ofLengths(LENGTHS);
        SequenceParallelGroup.Builder b = SequenceParallelGroup.builder().strategy(strategy).timeout(20_000);
        if (strategy == Strategy.TASP_HIERARCHICAL) {
            b.topology(Topology.cluster(Topology.virtualCpu(4), 2, 5.0));
        } else if (strategy == Strategy.HYBRID) {
            b.worldSize(8).hybrid(4, Strategy.TASP);
        } else {
            b.worldSize(8);
        }
        try (SequenceParallelGroup group = b.build(); NDManager m = manager.newSubManager()) {
            assertEquals(group.worldSize(), 8);
            long seq = docs.length();
            NDArray q = m.randomNormal(new Shape(2, 8, seq, 16)); // 8 heads: they divide among 8 ranks (ulysses)
            NDArray k = m.randomNormal(new Shape(2, 2, seq, 16));
            NDArray v = m.randomNormal(new Shape(2, 2, seq, 16));
            NDArray out = TaspAttention.forward(group, q, k, v, causal, null, docs).output();
            assertEachDocumentAlone(docs, q, k, v, causal, out, strategy + " causal=" + causal);
        }
    }

    @Test
    public void eachDocumentEqualsItselfAloneOnOneDevice() {
        PackedSequence docs = PackedSequence.ofLengths(LENGTHS);
        try (NDManager m = manager.newSubManager()) {
            NDArray q = m.randomNormal(new Shape(1, 4, docs.length(), 16));
            NDArray k = m.randomNormal(new Shape(1, 1, docs.length(), 16));
            NDArray v = m.randomNormal(new Shape(1, 1, docs.length(), 16));
            for (boolean causal : new boolean[] {false, true}) {
                NDArray out = FlashAttention.forward(q, k, v, causal, null, docs).output();
                assertEachDocumentAlone(docs, q, k, v, causal, out, "one device causal=" + causal);
            }
        }
    }

    @Test
    public void aBlockInsideAModelKeepsDocumentsApartOnEveryRoute() throws Exception {
        PackedSequence docs = PackedSequence.ofLengths(LENGTHS);
        long seq = docs.length();
        try (NDManager m = manager.newSubManager();
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(8).timeout(20_000).build()) {
            TaspAttentionBlock block = TaspAttentionBlock.builder().setEmbeddingSize(32).setHeadCount(4)
                    .optKvHeadCount(2).optCausal(true).optAttentionProbsDropoutProb(0f).build();
            block.initialize(m, DataType.FLOAT32, new Shape(1, seq, 32));
            NDArray x = m.randomNormal(new Shape(1, seq, 32));
            ParameterStore ps = new ParameterStore(m, false);
            NDArray flash = PackedSequence.run(docs, () -> block.forward(ps, new NDList(x), false).head());
            NDArray math = PackedSequence.run(docs, () -> block.forward(ps, new NDList(x), true).head());
            var layout = group.plan(true).layout();
            var shards = Sharding.shardAll(x, layout, Sharding.TOKENS_AXIS);
            NDArray ranks = Sharding.gather(group.runRanks(seq, true, docs,
                    rank -> block.forward(ps, new NDList(shards.get(rank)), false).head()), layout, seq,
                    Sharding.TOKENS_AXIS);
            for (int d = 0; d < docs.documentCount(); d++) {
                NDIndex range = new NDIndex(":, {}:{}, :", docs.start(d), docs.end(d));
                NDArray alone = block.forward(ps, new NDList(x.get(range)), false).head();
                assertClose(flash.get(range), alone, 1e-5, "one device, document " + d);
                assertClose(math.get(range), alone, 1e-5, "training path, document " + d);
                assertClose(ranks.get(range), alone, 1e-5, "8 ranks, document " + d);
            }
        }
    }

    @Test
    public void packedProgramsSkipPairsOfDifferentDocuments() {
        // One document per rank's block on a contiguous ring: after packing every rank computes only
        // its own block, so every step but the first has no attention task.
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4).strategy(Strategy.RING)
                .build()) {
            long[][] packed = group.programs(false, 40, PackedSequence.ofLengths(10, 10, 10, 10));
            long[][] whole = group.programs(false, 40);
            assertEquals(taskCount(packed[1]), 1);
            assertEquals(taskCount(whole[1]), 4);
        }
    }

    /** Attention tasks in a lowered program (format in native/src/executor.h). */
    private static long taskCount(long[] program) {
        long steps = program[4];
        int at = 8;
        long tasks = 0;
        for (long t = 0; t < steps; t++) {
            long sends = program[at];
            long recvs = program[at + 1];
            long n = program[at + 2];
            tasks += n;
            at += 3 + (int) (sends * 6 + recvs * 4 + n * 6);
        }
        return tasks;
    }

    @Test
    public void badOffsetsAndLengthsAreRefusedWithTheReason() {
        assertTrue(expectThrows(IllegalArgumentException.class, () -> PackedSequence.of(1, 5)).getMessage()
                .contains("start at 0"));
        assertTrue(expectThrows(IllegalArgumentException.class, () -> PackedSequence.of(0, 5, 5, 9)).getMessage()
                .contains("increase strictly"));
        try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(2).build();
                NDManager m = manager.newSubManager()) {
            NDArray x = m.randomNormal(new Shape(1, 2, 30, 8));
            IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                    () -> TaspAttention.forward(group, x, x, x, true, null, PackedSequence.ofLengths(10, 10)));
            assertTrue(e.getMessage().contains("cover 20 tokens"), e.getMessage());
        }
    }
}
