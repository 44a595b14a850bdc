package io.github.taspdjl.attention;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.Test;

/**
 * Grouped-query attention in {@link TaspAttentionBlock}: projections sized for the key/value heads,
 * and outputs equal to attention written with DJL's own ops (each key/value head shared by a group
 * of query heads) on one device, over 4 virtual ranks and in the training path.
 */
public class GroupedQueryBlockTest {

    private static final int E = 32;
    private static final int HEADS = 8;
    private static final int KV_HEADS = 2;
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

    /** (B, S, E) projected by a Linear block, as (B, heads, S, E / HEADS). */
    private static NDArray heads(Block projection, NDManager m, NDArray x, int heads) {
        long b = x.getShape().get(0);
        long s = x.getShape().get(1);
        NDArray p = projection.forward(new ParameterStore(m, false), new NDList(x.reshape(b * s, E)), false).head();
        return p.reshape(b, s, heads, E / HEADS).transpose(0, 2, 1, 3);
    }

    private static NDArray expected(TaspAttentionBlock block, NDManager m, NDArray x, boolean causal) {
        NDArray q = heads(block.getQueryProjection(), m, x, HEADS);
        NDArray k = heads(block.getKeyProjection(), m, x, KV_HEADS);
        NDArray v = heads(block.getValueProjection(), m, x, KV_HEADS);
        NDArray o = ReferenceAttention.compute(q, k, v, causal, null).output();
        long b = x.getShape().get(0);
        long s = x.getShape().get(1);
        NDArray flat = o.transpose(0, 2, 1, 3).reshape(b * s, E);
        return block.getResultProjection().forward(new ParameterStore(m, false), new NDList(flat), false).head()
                .reshape(b, s, E);
    }

    @Test
    public void projectionsAreSizedForTheKeyValueHeadsAndOutputsMatchTheReference() {
        try (NDManager m = manager.newSubManager();
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4).timeout(20_000).build()) {
            long seq = 83;
            NDArray x = m.randomNormal(new Shape(2, seq, E));
            for (boolean causal : new boolean[] {false, true}) {
                TaspAttentionBlock single = TaspAttentionBlock.builder().setEmbeddingSize(E).setHeadCount(HEADS)
                        .optKvHeadCount(KV_HEADS).optCausal(causal).optAttentionProbsDropoutProb(0f).build();
                single.initialize(m, DataType.FLOAT32, new Shape(2, seq, E));
                assertEquals(single.getKvHeadCount(), KV_HEADS);
                assertEquals(single.getKeyProjection().getParameters().get("weight").getArray().getShape(),
                        new Shape(KV_HEADS * E / HEADS, E));
                assertEquals(single.getQueryProjection().getParameters().get("weight").getArray().getShape(),
                        new Shape(E, E));
                NDArray want = expected(single, m, x, causal);
                ParameterStore ps = new ParameterStore(m, false);
                assertClose(single.forward(ps, new NDList(x), false).head(), want, 1e-5, "one device, causal=" + causal);
                // The training path (DJL's own math, recorded by autograd) expands the key/value heads.
                assertClose(single.forward(ps, new NDList(x), true).head(), want, 1e-5, "training path");
                TaspAttentionBlock grouped = TaspAttentionBlock.builder().setEmbeddingSize(E).setHeadCount(HEADS)
                        .optKvHeadCount(KV_HEADS).optCausal(causal).optGroup(group).build();
                grouped.initialize(m, DataType.FLOAT32, new Shape(2, seq, E));
                for (int i = 0; i < 4; i++) { // same weights: the projections in child order
                    var from = single.getChildren().get(i).getValue().getParameters();
                    var to = grouped.getChildren().get(i).getValue().getParameters();
                    for (int p = 0; p < from.size(); p++) {
                        to.get(p).getValue().getArray().set(from.get(p).getValue().getArray().toFloatArray());
                    }
                }
                assertClose(grouped.forward(ps, new NDList(x), false).head(), want, 1e-5, "4 ranks, causal=" + causal);
            }
        }
    }

    @Test
    public void keyValueHeadsThatDoNotDivideTheHeadsAreRefused() {
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                () -> TaspAttentionBlock.builder().setEmbeddingSize(E).setHeadCount(HEADS).optKvHeadCount(3).build());
        assertTrue(e.getMessage().contains("divide the head count"), e.getMessage());
    }
}
