package io.github.taspdjl.attention;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import ai.djl.engine.Engine;
import ai.djl.ndarray.BaseNDManager;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.nn.transformer.ScaledDotProductAttentionBlock;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.runtime.Sharding;
import java.util.ArrayList;
import java.util.List;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.Test;

/**
 * One call for a full sequence (SequenceParallelBlock, and layers built with a group) equals the
 * model on one device; a forward leaves only its outputs in the caller's manager; a model with a
 * sequence-mixing block is refused before any work.
 */
public class SequenceParallelBlockTest {

    private static final int E = 32;
    private NDManager manager;
    private SequenceParallelGroup group;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(17);
        group = SequenceParallelGroup.builder().worldSize(8).timeout(20_000).build();
    }

    @AfterClass
    public void tearDown() {
        group.close();
        manager.close();
    }

    private static int arrays(NDManager m) {
        return ((BaseNDManager) m).getManagedArrays().size();
    }

    private SequentialBlock model(int layers, SequenceParallelGroup g, long seq) {
        SequentialBlock model = new SequentialBlock();
        for (int i = 0; i < layers; i++) {
            model.add(TaspTransformerLayer.builder().setEmbeddingSize(E).setHeadCount(4).optMlpRatio(2).optCausal(true)
                    .optGroup(g).build());
        }
        model.add(LayerNorm.builder().axis(2).build());
        model.add(Linear.builder().setUnits(E).build());
        model.initialize(manager, DataType.FLOAT32, new Shape(2, seq, E));
        return model;
    }

    @Test
    public void oneCallEqualsTheModelOnOneDevice() {
        long seq = 301;
        SequentialBlock model = model(2, null, seq);
        ParameterStore ps = new ParameterStore(manager, false);
        try (NDManager m = manager.newSubManager()) {
            NDArray x = m.randomNormal(new Shape(2, seq, E));
            NDArray single = model.forward(ps, new NDList(x), false).singletonOrThrow();
            SequenceParallelBlock sp = SequenceParallelBlock.wrap(model, group, true);
            NDArray parallel = sp.forward(ps, new NDList(x), false).singletonOrThrow();
            assertEquals(parallel.getShape(), single.getShape());
            assertClose(parallel, single, 1e-4, "wrapped model against one device");
            assertTrue(group.lastStats().stream().allMatch(s -> s != null), "every rank ran");
        }
    }

    @Test
    public void layersBuiltWithTheGroupTakeTheFullSequence() {
        long seq = 257;
        SequentialBlock local = model(2, null, seq);
        SequentialBlock grouped = model(2, group, seq);
        grouped.setInitializer(null, ai.djl.nn.Parameter.Type.WEIGHT);
        // same parameters: copy the one-device model's values into the grouped one
        var from = local.getParameters();
        var to = grouped.getParameters();
        for (int i = 0; i < from.size(); i++) {
            to.get(i).getValue().getArray().set(from.get(i).getValue().getArray().toFloatArray());
        }
        ParameterStore ps = new ParameterStore(manager, false);
        try (NDManager m = manager.newSubManager()) {
            NDArray x = m.randomNormal(new Shape(2, seq, E));
            NDArray single = local.forward(ps, new NDList(x), false).singletonOrThrow();
            NDArray parallel = grouped.forward(ps, new NDList(x), false).singletonOrThrow();
            assertClose(parallel, single, 1e-4, "layers built with optGroup against one device");
        }
    }

    @Test
    public void hundredForwardsOnEightRanksLeaveOnlyTheOutputs() {
        long seq = 128;
        SequentialBlock model = model(3, null, seq);
        SequenceParallelBlock sp = SequenceParallelBlock.wrap(model, group, true);
        ParameterStore ps = new ParameterStore(manager, false);
        try (NDManager m = manager.newSubManager()) {
            NDArray x = m.randomNormal(new Shape(1, seq, E));
            sp.forward(ps, new NDList(x), false).close(); // warm-up
            int before = arrays(m);
            int modelBefore = arrays(manager);
            List<NDArray> kept = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                NDArray out = sp.forward(ps, new NDList(x), false).singletonOrThrow();
                if (i % 10 == 0) {
                    kept.add(out);
                } else {
                    out.close();
                }
            }
            assertEquals(arrays(m), before + kept.size(), "the caller's manager holds the inputs and kept outputs");
            assertEquals(arrays(manager), modelBefore + kept.size(), "the model's manager grew by the kept outputs only");
        }
    }

    @Test
    public void perRankForwardsAndAttentionLeaveOnlyTheOutputs() {
        long seq = 160;
        TaspTransformerLayer layer = TaspTransformerLayer.builder().setEmbeddingSize(E).setHeadCount(4).build();
        layer.initialize(manager, DataType.FLOAT32, new Shape(1, seq, E));
        ParameterStore ps = new ParameterStore(manager, false);
        try (NDManager m = manager.newSubManager()) {
            NDArray x = m.randomNormal(new Shape(1, seq, E));
            List<NDArray> shards = Sharding.shardAll(x, group.plan(true).layout(), Sharding.TOKENS_AXIS);
            NDArray q = m.randomNormal(new Shape(1, 4, seq, 8));
            NDArray k = m.randomNormal(new Shape(1, 2, seq, 8));
            int before = arrays(m);
            for (int i = 0; i < 20; i++) {
                List<NDArray> outs = group.runRanks(seq, true,
                        r -> layer.forward(ps, new NDList(shards.get(r)), false).singletonOrThrow());
                assertEquals(arrays(m), before + outs.size(), "each rank leaves its output only");
                outs.forEach(NDArray::close);
                TaspAttention.Result r = TaspAttention.forward(group, q, k, k, true, null);
                assertEquals(arrays(m), before + 2, "TaspAttention.forward leaves output and LSE only");
                r.output().close();
                r.lse().close();
            }
            assertEquals(arrays(m), before);
        }
    }

    @Test
    public void sequenceMixingBlocksAreRefusedBeforeAnyWork() {
        long seq = 128;
        Block[] mixing = {
            LayerNorm.builder().build(),
            LayerNorm.builder().axis(1, 2).build(),
            ScaledDotProductAttentionBlock.builder().setEmbeddingSize(E).setHeadCount(4).build(),
        };
        String[] named = {"axis(2)", "sequence axis 1", "AttentionSwap"};
        for (int i = 0; i < mixing.length; i++) {
            SequentialBlock model = new SequentialBlock();
            model.add(TaspTransformerLayer.builder().setEmbeddingSize(E).setHeadCount(4).build());
            model.add(mixing[i]);
            IllegalArgumentException e =
                    expectThrows(IllegalArgumentException.class, () -> SequenceParallelBlock.wrap(model, group, true));
            assertTrue(e.getMessage().contains(named[i]) && e.getMessage().contains("SequentialBlock/02"),
                    e.getMessage());
        }
        // a per-token LayerNorm passes
        SequentialBlock ok = new SequentialBlock().add(LayerNorm.builder().axis(2).build());
        SequenceParallelBlock.wrap(ok, group, true);
        // a layer built with a group refuses a sequence-mixing child at its first forward, before any rank runs
        try (NDManager m = manager.newSubManager();
                SequenceParallelGroup fresh = SequenceParallelGroup.builder().worldSize(4).build()) {
            SequentialBlock model = new SequentialBlock().add(LayerNorm.builder().build());
            model.initialize(m, DataType.FLOAT32, new Shape(1, seq, E));
            SequenceParallelBlock sp = SequenceParallelBlock.wrap(new SequentialBlock(), fresh, true);
            sp.getModel();
            IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                    () -> SequenceParallelBlock.wrap(model, fresh, false));
            assertTrue(e.getMessage().contains("LayerNorm"), e.getMessage());
            assertTrue(fresh.lastStats().stream().allMatch(s -> s == null), "no rank ran");
        }
    }
}
