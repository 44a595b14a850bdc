package io.github.taspdjl.runtime;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.TopologyDetector;
import org.testng.annotations.Test;

/** Settings do what they say: virtual ranks where a group is built; a substituted strategy is reported. */
public class GroupSettingsTest {

    @Test
    public void groupWithoutWorldSizeTakesTheVirtualRanksSetting() {
        String before = System.getProperty(TopologyDetector.PROPERTY_RANKS);
        try {
            System.setProperty(TopologyDetector.PROPERTY_RANKS, "3");
            try (SequenceParallelGroup g = SequenceParallelGroup.builder().build()) {
                assertEquals(g.worldSize(), 3);
            }
            // an explicit world size wins over the setting
            try (SequenceParallelGroup g = SequenceParallelGroup.builder().worldSize(5).build()) {
                assertEquals(g.worldSize(), 5);
            }
        } finally {
            if (before == null) {
                System.clearProperty(TopologyDetector.PROPERTY_RANKS);
            } else {
                System.setProperty(TopologyDetector.PROPERTY_RANKS, before);
            }
        }
    }

    @Test
    public void substitutedStrategyIsInTheResult() {
        try (NDManager m = NDManager.newBaseManager("PyTorch");
                SequenceParallelGroup g = SequenceParallelGroup.builder().worldSize(4).strategy(Strategy.TASP).build()) {
            NDArray q = m.randomNormal(new Shape(1, 2, 100, 16));
            NDArray k = m.randomNormal(new Shape(1, 2, 100, 16));
            NDArray v = m.randomNormal(new Shape(1, 2, 100, 16));
            TaspAttention.Result causal = TaspAttention.forward(g, q, k, v, true, null);
            assertEquals(causal.plan().strategy(), Strategy.TASP_CAUSAL);
            assertTrue(causal.plan().notes().stream().anyMatch(n -> n.contains("tasp-causal")),
                    causal.plan().notes().toString());
            assertClose(causal.output(), ReferenceAttention.compute(q, k, v, true, null).output(), 1e-5,
                    "causal output");
            TaspAttention.Result full = TaspAttention.forward(g, q, k, v, false, null);
            assertEquals(full.plan().strategy(), Strategy.TASP);
        }
    }
}
