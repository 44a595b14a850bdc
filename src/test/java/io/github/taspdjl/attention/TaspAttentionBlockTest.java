package io.github.taspdjl.attention;

import static io.github.taspdjl.NDAsserts.assertClose;
import static io.github.taspdjl.NDAsserts.assertRelative;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.transformer.ScaledDotProductAttentionBlock;
import ai.djl.nn.transformer.TransformerEncoderBlock;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.runtime.Sharding;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.Test;

/**
 * TaspAttentionBlock against DJL's ScaledDotProductAttentionBlock: it loads DJL's saved
 * parameters and gives the same outputs on one device and over 4 and 8 virtual ranks.
 */
public class TaspAttentionBlockTest {

    private static final int E = 32;
    private static final int HEADS = 4;
    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(99);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    private static SequentialBlock model(Block attention) {
        SequentialBlock b = new SequentialBlock();
        b.add(attention);
        return b;
    }

    private static NDArray run(Block block, NDManager m, NDList in) {
        return block.forward(new ParameterStore(m, false), in, false).singletonOrThrow();
    }

    @Test
    public void loadsParametersSavedFromDjlsBlockAndGivesTheSameOutputs() throws Exception {
        Path dir = Files.createTempDirectory("tasp-block");
        try (NDManager m = manager.newSubManager()) {
            long seq = 97; // at least 8 ranks x 7 chunks, divisible by nothing convenient
            NDArray x = m.randomNormal(new Shape(2, seq, E));
            NDArray expected;
            try (Model djl = Model.newInstance("attention", "PyTorch")) {
                djl.setBlock(model(ScaledDotProductAttentionBlock.builder().setEmbeddingSize(E).setHeadCount(HEADS)
                        .optAttentionProbsDropoutProb(0f).build()));
                djl.getBlock().initialize(m, DataType.FLOAT32, new Shape(2, seq, E));
                expected = run(djl.getBlock(), m, new NDList(x));
                djl.save(dir, "attention");
            }
            for (int ranks : new int[] {1, 4, 8}) {
                try (SequenceParallelGroup group = ranks == 1 ? null
                                : SequenceParallelGroup.builder().worldSize(ranks).timeout(20_000).build();
                        Model tasp = Model.newInstance("attention", "PyTorch")) {
                    tasp.setBlock(model(TaspAttentionBlock.builder().setEmbeddingSize(E).setHeadCount(HEADS)
                            .optGroup(group).build()));
                    tasp.load(dir, "attention");
                    assertClose(run(tasp.getBlock(), m, new NDList(x)), expected, 1e-5, ranks + " rank(s)");
                }
            }
        }
    }

    /** DJL's form of a causal mask: (batch, seq, seq), 1 where a query may see a key. */
    private static NDArray causalMask(NDManager m, long seq, int batch) {
        NDArray rows = m.arange(0, (int) seq, 1, DataType.INT64).reshape(seq, 1);
        NDArray cols = m.arange(0, (int) seq, 1, DataType.INT64).reshape(1, seq);
        return cols.lte(rows).toType(DataType.FLOAT32, false).reshape(1, seq, seq).repeat(0, batch);
    }

    @Test
    public void honoursMasksOfOnesCausalMasksAndOnOneDeviceAnyMask() {
        try (NDManager m = manager.newSubManager()) {
            long seq = 60;
            ScaledDotProductAttentionBlock djl = ScaledDotProductAttentionBlock.builder().setEmbeddingSize(E)
                    .setHeadCount(HEADS).optAttentionProbsDropoutProb(0f).build();
            djl.initialize(m, DataType.FLOAT32, new Shape(1, seq, E), new Shape(1, seq, seq));
            NDArray x = m.randomNormal(new Shape(1, seq, E));
            NDArray causalMask = causalMask(m, seq, 1);
            NDArray randomMask = m.randomUniform(0, 1, new Shape(1, seq, seq)).gt(0.3f).toType(DataType.FLOAT32, false);
            NDArray ones = m.ones(new Shape(1, seq, seq));
            try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4).timeout(20_000).build()) {
                TaspAttentionBlock single = TaspAttentionBlock.from(djl, false, null);
                TaspAttentionBlock grouped = TaspAttentionBlock.from(djl, false, group);
                for (NDArray mask : new NDArray[] {ones, causalMask}) {
                    NDArray expected = run(djl, m, new NDList(x, mask));
                    assertClose(run(single, m, new NDList(x, mask)), expected, 1e-5, "one device");
                    assertClose(run(grouped, m, new NDList(x, mask)), expected, 1e-5, "4 ranks");
                }
                NDArray expected = run(djl, m, new NDList(x, randomMask));
                assertClose(run(single, m, new NDList(x, randomMask)), expected, 1e-5, "any mask, one device");
                IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                        () -> run(grouped, m, new NDList(x, randomMask)));
                assertTrue(e.getMessage().contains("causal"), e.getMessage());
            }
        }
    }

    @Test
    public void ulyssesAndHybridGroupsGiveDjlsOutputsThroughTheBlock() {
        try (NDManager m = manager.newSubManager()) {
            long seq = 53;
            ScaledDotProductAttentionBlock djl = ScaledDotProductAttentionBlock.builder().setEmbeddingSize(E)
                    .setHeadCount(HEADS).optAttentionProbsDropoutProb(0f).build();
            djl.initialize(m, DataType.FLOAT32, new Shape(2, seq, E), new Shape(2, seq, seq));
            NDArray x = m.randomNormal(new Shape(2, seq, E));
            NDArray causalMask = causalMask(m, seq, 2);
            List<SequenceParallelGroup.Builder> groups = List.of(
                    SequenceParallelGroup.builder().worldSize(4).strategy(io.github.taspdjl.plan.Strategy.ULYSSES),
                    SequenceParallelGroup.builder().worldSize(4).hybrid(2, io.github.taspdjl.plan.Strategy.TASP),
                    SequenceParallelGroup.builder().worldSize(8).hybrid(4, io.github.taspdjl.plan.Strategy.RING));
            for (SequenceParallelGroup.Builder b : groups) {
                try (SequenceParallelGroup group = b.timeout(20_000).build()) {
                    TaspAttentionBlock grouped = TaspAttentionBlock.from(djl, false, group);
                    for (NDArray mask : new NDArray[] {m.ones(new Shape(2, seq, seq)), causalMask}) {
                        assertClose(run(grouped, m, new NDList(x, mask)), run(djl, m, new NDList(x, mask)), 1e-5,
                                group.plan(true).toString());
                    }
                }
            }
        }
    }

    @Test
    public void keyQueryValueFormWithDifferentLengthsOnOneDevice() {
        try (NDManager m = manager.newSubManager()) {
            ScaledDotProductAttentionBlock djl = ScaledDotProductAttentionBlock.builder().setEmbeddingSize(E)
                    .setHeadCount(HEADS).optAttentionProbsDropoutProb(0f).build();
            djl.initialize(m, DataType.FLOAT32, new Shape(2, 30, E), new Shape(2, 11, E), new Shape(2, 30, E));
            NDList in = new NDList(m.randomNormal(new Shape(2, 30, E)), m.randomNormal(new Shape(2, 11, E)),
                    m.randomNormal(new Shape(2, 30, E)));
            assertClose(run(TaspAttentionBlock.from(djl, false, null), m, in), run(djl, m, in), 1e-5, "k, q, v");
        }
    }

    @Test
    public void aModelRunsOnEachRanksShardAndMatchesOneDevice() {
        try (NDManager m = manager.newSubManager();
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4).timeout(20_000).build()) {
            long seq = 203;
            SequentialBlock net = new SequentialBlock();
            for (int i = 0; i < 2; i++) {
                net.add(TaspTransformerLayer.builder().setEmbeddingSize(E).setHeadCount(HEADS).optCausal(true).build());
            }
            net.initialize(m, DataType.FLOAT32, new Shape(1, seq, E));
            NDArray x = m.randomNormal(new Shape(1, seq, E));
            NDArray single = run(net, m, new NDList(x));
            var layout = group.plan(true).layout();
            List<NDArray> shards = Sharding.shardAll(x, layout, Sharding.TOKENS_AXIS);
            List<NDArray> outs = group.runRanks(seq, true, rank -> run(net, m, new NDList(shards.get(rank))));
            assertClose(Sharding.gather(outs, layout, seq, Sharding.TOKENS_AXIS), single, 1e-5, "2 layers, 4 ranks");
            // The single-device flash path itself against DJL's own math (the training path).
            NDArray math = net.forward(new ParameterStore(m, false), new NDList(x), true).singletonOrThrow();
            assertClose(single, math, 1e-5, "flash vs DJL math");
            // Sharding for the full-mask layout while the model is causal is refused, not miscomputed.
            IllegalStateException wrong = expectThrows(IllegalStateException.class,
                    () -> group.runRanks(seq, false, rank -> run(net, m, new NDList(
                            Sharding.shard(x, group.plan(false).layout(), rank, Sharding.TOKENS_AXIS)))));
            assertTrue(wrong.getMessage().contains("sharded for full-mask plans"), wrong.getMessage());
        }
    }

    @Test
    public void trainingOnOneDeviceGivesDjlsGradients() {
        try (NDManager m = manager.newSubManager()) {
            ScaledDotProductAttentionBlock djl = ScaledDotProductAttentionBlock.builder().setEmbeddingSize(E)
                    .setHeadCount(HEADS).optAttentionProbsDropoutProb(0f).build();
            djl.initialize(m, DataType.FLOAT32, new Shape(2, 19, E));
            TaspAttentionBlock tasp = TaspAttentionBlock.from(djl, false, null);
            NDArray x = m.randomNormal(new Shape(2, 19, E));
            NDArray weight = m.randomNormal(new Shape(2, 19, E));
            NDArray[] grads = new NDArray[2];
            Block[] blocks = {djl, tasp};
            for (int i = 0; i < 2; i++) {
                NDArray xi = x.duplicate();
                xi.setRequiresGradient(true);
                try (var gc = Engine.getEngine("PyTorch").newGradientCollector()) {
                    NDArray out = blocks[i].forward(new ParameterStore(m, false), new NDList(xi), true)
                            .singletonOrThrow();
                    gc.backward(out.mul(weight).sum());
                }
                grads[i] = xi.getGradient().duplicate();
            }
            assertClose(grads[1], grads[0], 1e-5, "input gradient");
        }
    }

    @Test
    public void trainingInsideAGroupWithoutTheSegmentedRouteIsRefusedWithTheReason() {
        try (NDManager m = manager.newSubManager();
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(2).build()) {
            TaspAttentionBlock noDropout = TaspAttentionBlock.builder().setEmbeddingSize(E).setHeadCount(HEADS)
                    .optAttentionProbsDropoutProb(0f).optGroup(group).build();
            noDropout.initialize(m, DataType.FLOAT32, new Shape(1, 16, E));
            IllegalStateException noTape = expectThrows(IllegalStateException.class,
                    () -> noDropout.forward(new ParameterStore(m, false),
                            new NDList(m.randomNormal(new Shape(1, 16, E))), true));
            assertTrue(noTape.getMessage().contains("TaspTrainer"), noTape.getMessage());
            TaspAttentionBlock withDropout = TaspAttentionBlock.builder().setEmbeddingSize(E).setHeadCount(HEADS)
                    .optGroup(group).build();
            withDropout.initialize(m, DataType.FLOAT32, new Shape(1, 16, E));
            UnsupportedOperationException dropout = expectThrows(UnsupportedOperationException.class,
                    () -> withDropout.forward(new ParameterStore(m, false),
                            new NDList(m.randomNormal(new Shape(1, 16, E))), true));
            assertTrue(dropout.getMessage().contains("dropout"), dropout.getMessage());
        }
    }

    @Test
    public void swapReplacesReachableBlocksAndReportsTheOthers() {
        try (NDManager m = manager.newSubManager()) {
            SequentialBlock net = new SequentialBlock();
            net.add(ScaledDotProductAttentionBlock.builder().setEmbeddingSize(E).setHeadCount(HEADS)
                    .optAttentionProbsDropoutProb(0f).build());
            SequentialBlock inner = new SequentialBlock();
            inner.add(ScaledDotProductAttentionBlock.builder().setEmbeddingSize(E).setHeadCount(HEADS)
                    .optAttentionProbsDropoutProb(0f).build());
            net.add(inner);
            net.add(new TransformerEncoderBlock(E, HEADS, 2 * E, 0f, ai.djl.nn.Activation::relu));
            net.initialize(m, DataType.FLOAT32, new Shape(1, 24, E));
            NDArray x = m.randomNormal(new Shape(1, 24, E));
            NDArray before = run(net, m, new NDList(x));
            AttentionSwap.Report report = AttentionSwap.swap(net, false, null);
            assertEquals(report.swapped().size(), 3, report.toString());
            assertTrue(report.notSwapped().isEmpty(), report.toString());
            assertTrue(report.swapped().get(2).contains("rebuilt as TaspTransformerEncoderBlock"), report.toString());
            long swapped = net.getChildren().values().stream().filter(b -> b instanceof TaspAttentionBlock).count();
            assertEquals(swapped, 1);
            assertTrue(net.getChildren().get(2).getValue() instanceof TaspTransformerEncoderBlock);
            assertTrue(net.toString().contains("ScaledDotProductAttentionBlock" + AttentionSwap.NAME_SUFFIX),
                    net.toString());
            // The root itself cannot be swapped in place; the report says what to do instead.
            assertTrue(AttentionSwap.swap(new TransformerEncoderBlock(E, HEADS, 2 * E, 0f, ai.djl.nn.Activation::relu),
                    false, null).notSwapped().get(0).contains("TaspTransformerEncoderBlock.from"));
            // Relative: the encoder block's norms and MLP scale the attention's rounding differences.
            assertRelative(run(net, m, new NDList(x)), before, 1e-5, "after the swap");
        }
    }
}
