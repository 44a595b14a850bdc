package io.github.taspdjl.plan;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertFalse;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.topology.Topology;
import java.util.List;
import org.testng.annotations.Test;

/**
 * Large world sizes: plans that fit the planner's bound are built (and so validated: {@link Planner#plan}
 * validates every plan it returns); plans past it, and groups past
 * the in-process limit, are refused before anything large is allocated, with a message naming the limit.
 * (How fast plans are built is measured in docs/PERFORMANCE.md, not asserted; the time-outs here only
 * catch a hang or a return of the old n^4 build.)
 */
public class PlanScaleTest {

    @Test(timeOut = 120_000)
    public void ringAndZigzagPlansFor1024RanksAreValid() {
        Topology t = Topology.virtualCpu(1024);
        for (boolean causal : new boolean[] {false, true}) {
            Plan p = Planner.plan(t, Strategy.RING, causal);
            assertEquals(p.worldSize(), 1024);
            assertEquals(p.steps().size(), 1024);
            assertEquals(p.steps().get(0).transfers().size(), 1024, "one chunk per rank along the ring");
        }
    }

    @Test(timeOut = 120_000)
    public void taspPlanFor128RanksIsValid() {
        Plan p = Planner.plan(Topology.virtualCpu(128), Strategy.TASP, false);
        assertEquals(p.cycles().size(), 127);
        assertEquals(p.steps().get(0).transfers().size(), 128 * 127, "every arc carries a chunk in every step");
    }

    @Test(timeOut = 20_000)
    public void taspPastTheBoundIsRefusedNamingTheLimit() {
        for (boolean causal : new boolean[] {false, true}) {
            int limit = Planner.maxRanks(true, causal);
            assertTrue(limit >= 128 && limit < 256, "limit " + limit);
            for (int n : new int[] {limit + 1, 256, 1024}) {
                IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                        () -> Planner.plan(Topology.virtualCpu(n), Strategy.TASP, causal));
                assertTrue(e.getMessage().contains(n + " ranks") && e.getMessage().contains("reach " + limit + " ranks"),
                        e.getMessage());
            }
            expectThrows(IllegalArgumentException.class, () -> Planner.plan(Topology.virtualCpu(limit + 1), Strategy.DIRECT, causal));
        }
    }

    @Test
    public void estimateMatchesTheBuiltPlan() {
        for (boolean causal : new boolean[] {false, true}) {
            for (Strategy s : List.of(Strategy.RING, Strategy.TASP, Strategy.DIRECT)) {
                Plan p = Planner.plan(Topology.virtualCpu(24), s, causal);
                long entries = p.steps().stream().mapToLong(st -> st.transfers().size() + st.compute().size()).sum();
                long estimate = Schedules.estimatedEntries(24, p.layout().chunksPerRank(), p.layout().kind(), causal);
                assertTrue(entries <= estimate * 1.1 && entries >= estimate * 0.8, s + " causal=" + causal + ": built "
                        + entries + ", estimated " + estimate);
            }
        }
    }

    @Test
    public void autoAndCandidatesPastTheBoundKeepOnlyTheRing() {
        Topology t = Topology.virtualCpu(512);
        assertEquals(Planner.candidateStrategies(t, false).stream().filter(s -> !s.headParallel()).toList(),
                List.of(Strategy.RING));
        assertEquals(Planner.plan(t, Strategy.AUTO, false).strategy(), Strategy.RING);
        assertFalse(Planner.candidateStrategies(Topology.virtualCpu(64), false).size() < 3);
    }

    @Test(timeOut = 10_000)
    public void groupsAndVirtualTopologiesPastTheLimitFailAtOnce() {
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                () -> SequenceParallelGroup.builder().worldSize(10_000));
        assertTrue(e.getMessage().contains("1 to " + Topology.MAX_VIRTUAL_RANKS) && e.getMessage().contains("10000"),
                e.getMessage());
        e = expectThrows(IllegalArgumentException.class, () -> Topology.virtualCpu(10_000));
        assertTrue(e.getMessage().contains(String.valueOf(Topology.MAX_VIRTUAL_RANKS)), e.getMessage());
    }
}
