package io.github.taspdjl.plan;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import io.github.taspdjl.plan.decompose.Decompositions;
import io.github.taspdjl.topology.Topology;
import java.util.HashSet;
import java.util.Set;
import org.testng.annotations.DataProvider;
import org.testng.annotations.Test;

/** Every strategy's plan for 1 to 32 ranks, causal and not, passes the validator and has the expected shape. */
public class PlannerPropertyTest {

    @DataProvider(parallel = false)
    public Object[][] sizes() {
        Object[][] out = new Object[64][];
        for (int n = 1; n <= 32; n++) {
            out[2 * (n - 1)] = new Object[] {n, false};
            out[2 * (n - 1) + 1] = new Object[] {n, true};
        }
        return out;
    }

    @Test(dataProvider = "sizes")
    public void everyStrategyIsValidOnCompleteGraphs(int n, boolean causal) {
        Topology t = Topology.virtualCpu(n);
        for (Strategy s : Strategy.values()) {
            if (s.headParallel()) {
                continue; // no steps of their own: HeadParallelPlanTest
            }
            Plan p = Planner.plan(t, s, causal);
            PlanValidator.Verdict v = PlanValidator.validate(p);
            assertTrue(v.valid(), s + " n=" + n + " causal=" + causal + ": " + v);
            assertEquals(p.worldSize(), n);
            assertEquals(p.causal(), causal);
            assertEquals(p.steps().size(), n, "n-1 transfer steps plus the last compute step");
            if (causal) {
                assertEquals(p.layout().kind(), SequenceLayout.Kind.ZIGZAG, s + " causal must balance with zigzag");
            }
        }
    }

    @Test(dataProvider = "sizes")
    public void taspUsesEveryArcInEveryTransferStep(int n, boolean causal) {
        Plan p = Planner.plan(Topology.virtualCpu(n), Strategy.TASP, causal);
        if (n > 1 && n != 4 && n != 6) {
            assertEquals(p.cycles().size(), n - 1);
        }
        if (n == 4 || n == 6) {
            assertTrue(p.cycles().isEmpty());
            assertTrue(p.notes().get(p.notes().size() - 1).contains("direct all-to-all"), p.notes().toString());
        }
        for (Step s : p.steps().subList(0, n - 1)) {
            Set<String> arcs = new HashSet<>();
            s.transfers().forEach(t -> arcs.add(t.src() + ">" + t.dst()));
            assertEquals(arcs.size(), n * (n - 1), "step " + s.index());
        }
    }

    @Test
    public void directScheduleAgreesWithDecompositionsFormula() {
        for (int n = 2; n <= 12; n++) {
            for (int step = 0; step < n - 1; step++) {
                for (int a = 0; a < n; a++) {
                    for (int b = 0; b < n; b++) {
                        if (a != b) {
                            assertEquals(Schedules.directChunk(n, step, a, b), Decompositions.directChunk(n, step, a, b));
                        }
                    }
                }
            }
        }
    }

    @Test
    public void hierarchicalPlansKeepNicTrafficOnItsRail() {
        int[][] shapes = {{4, 2}, {4, 3}, {8, 2}, {6, 2}, {8, 4}};
        for (int[] mu : shapes) {
            Topology t = TestTopologies.cluster(mu[0], mu[1]);
            for (boolean causal : new boolean[] {false, true}) {
                Plan p = Planner.plan(t, Strategy.TASP_HIERARCHICAL, causal);
                assertEquals(p.strategy(), Strategy.TASP_HIERARCHICAL, p.notes().toString());
                assertEquals(p.cycles().size(), mu[0]);
                assertTrue(PlanValidator.validate(p).valid());
                for (Step s : p.steps()) {
                    for (Transfer x : s.transfers()) {
                        if (x.src() / mu[0] != x.dst() / mu[0]) {
                            assertEquals(x.src() % mu[0], x.dst() % mu[0], "off-rail transfer " + x);
                        }
                    }
                }
            }
        }
    }

    @Test
    public void hierarchicalFallsBackToFlatWhereNoRailRingsExist() {
        Plan p = Planner.plan(TestTopologies.cluster(3, 2), Strategy.TASP_HIERARCHICAL, false);
        assertTrue(PlanValidator.validate(p).valid());
        assertTrue(p.notes().stream().anyMatch(s -> s.contains("no rail-aligned hierarchical rings")), p.notes().toString());
        Plan single = Planner.plan(Topology.virtualCpu(8), Strategy.TASP_HIERARCHICAL, true);
        assertEquals(single.strategy(), Strategy.TASP_CAUSAL);
        assertEquals(single.cycles().size(), 7);
    }

    @Test
    public void graphWithoutHamiltonianCycleFallsBackToRing() {
        Plan p = Planner.plan(TestTopologies.path(5), Strategy.TASP, false);
        assertEquals(p.strategy(), Strategy.RING);
        assertTrue(PlanValidator.validate(p).valid());
        assertTrue(p.notes().stream().anyMatch(s -> s.contains("no Hamiltonian cycle")), p.notes().toString());
    }

    @Test
    public void causalRingAndTaspBecomeTheirZigzagForms() {
        assertEquals(Planner.plan(Topology.virtualCpu(6), Strategy.RING, true).strategy(), Strategy.ZIGZAG_RING);
        assertEquals(Planner.plan(Topology.virtualCpu(6), Strategy.TASP, true).strategy(), Strategy.TASP_CAUSAL);
    }

    @Test
    public void badInputGivesClearErrors() {
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class, () -> Strategy.fromName("spiral"));
        assertTrue(e.getMessage().contains("unknown strategy 'spiral'") && e.getMessage().contains("tasp-hier"), e.getMessage());
        expectThrows(IllegalArgumentException.class, () -> Topology.virtualCpu(0));
        expectThrows(IllegalArgumentException.class, () -> new SequenceLayout(SequenceLayout.Kind.ZIGZAG, 0, 1));
        expectThrows(IllegalArgumentException.class, () -> Planner.plan(null, Strategy.RING, false));
        assertEquals(Strategy.fromName("TASP-HIER"), Strategy.TASP_HIERARCHICAL);
    }
}
