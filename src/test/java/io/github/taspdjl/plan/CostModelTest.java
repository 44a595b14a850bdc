package io.github.taspdjl.plan;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import io.github.taspdjl.topology.LinkKind;
import io.github.taspdjl.topology.Topology;
import io.github.taspdjl.topology.TopologyPresets;
import java.util.List;
import org.testng.annotations.Test;

/** The cost model reproduces the paper's shape of results on the presets. */
public class CostModelTest {

    private static final ProblemSize MHA = new ProblemSize(1, 1 << 20, 32, 32, 128, 2);

    private static double transferTime(CostModel m, Plan p, ProblemSize size) {
        CostModel.StepCost s = m.predict(p, size).steps().get(1);
        return s.commSeconds();
    }

    @Test
    public void xgmiMeshTaspStepIsAboutOneOverNMinusOneOfRing() {
        Topology t = TopologyPresets.get("mi300x-xgmi-8");
        CostModel m = CostModel.of(t);
        double ring = transferTime(m, Planner.plan(t, Strategy.RING, false), MHA);
        double tasp = transferTime(m, Planner.plan(t, Strategy.TASP, false), MHA);
        assertEquals(tasp / ring, 1.0 / 7, 0.01 / 7, "tasp " + tasp + " ring " + ring);
    }

    @Test
    public void nvswitchGainIsBoundedByAggregateOverPerPeerBandwidth() {
        Topology t = TopologyPresets.get("h100-nvswitch-8");
        CostModel m = CostModel.of(t);
        double ring = transferTime(m, Planner.plan(t, Strategy.RING, false), MHA);
        double tasp = transferTime(m, Planner.plan(t, Strategy.TASP, false), MHA);
        CostModel.LinkParams nv = m.parameters().links().get(LinkKind.NVSWITCH);
        double gain = ring / tasp;
        assertTrue(gain > 1.0, "gain " + gain);
        assertTrue(gain <= 1.0 / nv.streamEfficiency() + 1e-9, "gain " + gain + " beyond aggregate/per-peer");
        assertEquals(gain, nv.portEfficiency() / nv.streamEfficiency(), 0.01);
    }

    @Test
    public void gainsShrinkAsComputeGrowsRelativeToCommunication() {
        Simulation sim = new Simulation(TopologyPresets.get("mi300x-xgmi-8"), false, CostModel.Parameters.defaults());
        double previous = Double.POSITIVE_INFINITY;
        for (int e = 14; e <= 20; e++) {
            double speedup = sim.compare(MHA.withSeqLen(1L << e)).get(1).speedup();
            assertTrue(speedup <= previous + 1e-9, "speedup grows at 2^" + e + ": " + speedup + " > " + previous);
            assertTrue(speedup >= 1.0 - 1e-9);
            previous = speedup;
        }
        assertTrue(sim.compare(MHA.withSeqLen(1 << 14)).get(1).speedup() > 3, "short sequences are communication bound");
        // Slower compute hides more communication: the gain at one length drops.
        CostModel.Parameters slow = CostModel.Parameters.defaults()
                .withAttentionFlops(io.github.taspdjl.topology.GpuGeneration.MI300X, 40e12);
        Simulation slower = new Simulation(TopologyPresets.get("mi300x-xgmi-8"), false, slow);
        assertTrue(slower.compare(MHA.withSeqLen(1 << 14)).get(1).speedup() < sim.compare(MHA.withSeqLen(1 << 14)).get(1).speedup());
    }

    @Test
    public void hierarchicalBeatsRingAcrossNodes() {
        Simulation sim = new Simulation(TopologyPresets.get("h100-2node"), true, CostModel.Parameters.defaults());
        List<Simulation.Row> rows = sim.compare(MHA.withSeqLen(1 << 16));
        Simulation.Row hier = rows.stream().filter(r -> r.plan().strategy() == Strategy.TASP_HIERARCHICAL).findFirst().orElseThrow();
        assertTrue(hier.speedup() > 2, "speedup " + hier.speedup());
        assertEquals(sim.best(MHA.withSeqLen(1 << 16)).plan().strategy(), Strategy.TASP_HIERARCHICAL);
    }

    @Test
    public void autoPicksTheFastestCandidate() {
        for (String preset : List.of("mi300x-xgmi-8", "h100-nvswitch-8", "h100-2node")) {
            Topology t = TopologyPresets.get(preset);
            ProblemSize size = MHA.withSeqLen(1 << 15);
            Plan auto = Planner.plan(t, Strategy.AUTO, false, size);
            CostModel m = CostModel.of(t);
            double best = Planner.candidates(t, false).stream().mapToDouble(p -> m.predict(p, size).totalSeconds()).min().orElseThrow();
            assertEquals(m.predict(auto, size).totalSeconds(), best, 1e-12, preset);
            assertTrue(auto.notes().stream().anyMatch(n -> n.startsWith("auto picked")), auto.notes().toString());
        }
    }

    @Test
    public void stepTimeOverlapsTransfersWithCompute() {
        Topology t = TopologyPresets.get("h100-nvswitch-8");
        CostModel m = CostModel.of(t);
        for (CostModel.StepCost s : m.predict(Planner.plan(t, Strategy.TASP, true), MHA).steps()) {
            assertEquals(s.seconds(), Math.max(s.commSeconds(), s.computeSeconds()) + m.parameters().stepSeconds(), 1e-15);
        }
    }
}
