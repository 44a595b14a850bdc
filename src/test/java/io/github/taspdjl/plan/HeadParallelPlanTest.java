package io.github.taspdjl.plan;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertNotNull;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import io.github.taspdjl.topology.Topology;
import io.github.taspdjl.topology.TopologyPresets;
import java.util.ArrayList;
import java.util.List;
import org.testng.annotations.Test;

/** Ulysses and hybrid plans: validity, layouts, head assignment, the constraint, the cost model and AUTO. */
public class HeadParallelPlanTest {

    private static List<Plan> plans(int n, boolean causal) {
        List<Plan> out = new ArrayList<>();
        out.add(Planner.ulysses(n, causal));
        for (int u = 2; u < n; u++) {
            if (n % u == 0) {
                out.add(Planner.hybrid(Topology.virtualCpu(n), u, Strategy.RING, causal));
                out.add(Planner.hybrid(Topology.virtualCpu(n), u, Strategy.TASP, causal));
            }
        }
        return out;
    }

    @Test
    public void everyUlyssesAndHybridPlanIsValidAndItsGroupsHoldTheInnerBlocksWhole() {
        for (int n = 2; n <= 16; n++) {
            for (boolean causal : new boolean[] {false, true}) {
                for (Plan p : plans(n, causal)) {
                    assertTrue(PlanValidator.validate(p).valid(), p + ": " + PlanValidator.validate(p));
                    HeadParallel hp = p.headParallel();
                    Plan inner = hp.inner();
                    long seq = 7L * p.layout().minimumLength() + 3; // uneven blocks
                    // After the in-group all-to-all, member j of group g holds, for each of its block slots s,
                    // the members' sub-blocks in member order: that must be inner rank g's block s, whole.
                    for (int g = 0; g < inner.worldSize(); g++) {
                        int[] innerBlocks = inner.layout().blocksOfRank(g);
                        for (int s = 0; s < innerBlocks.length; s++) {
                            long[] want = inner.layout().blockRange(innerBlocks[s], seq);
                            long at = want[0];
                            for (int j = 0; j < hp.degree(); j++) {
                                long[] part = p.layout().blockRange(p.layout().blocksOfRank(hp.rank(g, j))[s], seq);
                                assertEquals(part[0], at, p + " group " + g + " slot " + s + " member " + j);
                                at = part[1];
                            }
                            assertEquals(at, want[1], p + " group " + g + " slot " + s);
                        }
                    }
                }
            }
        }
    }

    @Test
    public void validatorRejectsABrokenHeadParallelPlan() {
        Plan good = Planner.hybrid(Topology.virtualCpu(8), 4, Strategy.RING, true);
        Plan wrongMask = Plan.headParallel(Strategy.HYBRID, false, good.headParallel(), List.of());
        assertTrue(PlanValidator.validate(wrongMask).violations().stream().anyMatch(v -> v.contains("inner plan is causal")));
        Plan ulyssesWithInner = Plan.headParallel(Strategy.ULYSSES, true, good.headParallel(), List.of());
        assertTrue(PlanValidator.validate(ulyssesWithInner).violations().stream().anyMatch(v -> v.contains("exactly one")));
    }

    @Test
    public void eachMemberGetsTheKeyValueHeadsItsQueryHeadsUseAndNoOthers() {
        for (int heads = 1; heads <= 32; heads++) {
            for (int kv = 1; kv <= heads; kv++) {
                if (heads % kv != 0) {
                    continue;
                }
                for (int u = 2; u <= 16; u++) {
                    if (heads % u != 0) {
                        continue;
                    }
                    HeadParallel hp = Planner.ulysses(u, false).headParallel();
                    int per = heads / u;
                    int group = heads / kv;
                    int[] seen = new int[heads];
                    for (int j = 0; j < u; j++) {
                        int[] range = hp.kvHeads(j, heads, kv);
                        int lo = Integer.MAX_VALUE;
                        int hi = Integer.MIN_VALUE;
                        for (int h = j * per; h < (j + 1) * per; h++) {
                            seen[h]++;
                            lo = Math.min(lo, h / group);
                            hi = Math.max(hi, h / group + 1);
                        }
                        assertEquals(range, new int[] {lo, hi}, heads + "/" + kv + " heads, member " + j + " of " + u);
                    }
                    for (int h = 0; h < heads; h++) {
                        assertEquals(seen[h], 1, "query head " + h + " computed once per group");
                    }
                    if (kv % u == 0) {
                        assertEquals(hp.kvReplication(heads, kv), 1.0, 1e-12, "no replication when kv heads divide");
                    }
                    if (u % kv == 0) {
                        assertEquals(hp.kvReplication(heads, kv), (double) u / kv, 1e-12, "one kv head per member");
                    }
                }
            }
        }
    }

    @Test
    public void headsThatDoNotDivideAreRefusedWithTheConstraint() {
        ProblemSize twelve = new ProblemSize(1, 1 << 14, 12, 4, 64, 2);
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class,
                () -> Planner.plan(Topology.virtualCpu(8), Strategy.ULYSSES, false, twelve));
        assertTrue(e.getMessage().contains("12 query heads do not divide") && e.getMessage().contains("Ulysses degree 8"),
                e.getMessage());
        e = expectThrows(IllegalArgumentException.class, () -> Planner.hybrid(Topology.virtualCpu(8), 3, Strategy.RING, false));
        assertTrue(e.getMessage().contains("must divide the 8 ranks"), e.getMessage());
        e = expectThrows(IllegalArgumentException.class, () -> Planner.plan(Topology.virtualCpu(1), Strategy.ULYSSES, false));
        assertTrue(e.getMessage().contains("at least 2 ranks"), e.getMessage());
        // AUTO leaves ulysses out when the heads do not divide, and a hybrid of degree 4 (12 = 3 x 4) stays possible
        Plan auto = Planner.plan(TopologyPresets.get("h100-nvswitch-8"), Strategy.AUTO, false, twelve);
        assertTrue(auto.headParallel() == null || twelve.heads() % auto.headParallel().degree() == 0, auto.toString());
        Plan hybrid = Planner.plan(TopologyPresets.get("h100-nvswitch-8"), Strategy.HYBRID, false, twelve);
        assertEquals(12 % hybrid.headParallel().degree(), 0);
    }

    @Test
    public void jsonRoundTripsAndTheFlatFormRefuses() {
        for (Plan p : plans(8, true)) {
            assertEquals(PlanJson.fromJson(PlanJson.toJson(p)), p, p.toString());
        }
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class, () -> PlanCodec.toFlat(Planner.ulysses(4, false)));
        assertTrue(e.getMessage().contains("JSON"), e.getMessage());
    }

    @Test
    public void ulyssesPhasesMoveEachMembersHeadsAndComputeOneCallOverTheWholeSequence() {
        Topology t = TopologyPresets.get("mi300x-xgmi-8");
        CostModel m = CostModel.of(t);
        ProblemSize p = new ProblemSize(2, 1 << 16, 32, 4, 128, 2);
        CostModel.Prediction pr = m.predict(Planner.ulysses(8, false), p);
        double tokens = (1 << 16) / 8.0;
        // member k gets 32/8 = 4 query heads and its one key/value head (4 kv heads over 8 members: each shared by 2)
        double in = tokens * (4 + 2 * 1) * 2 * 128 * 2;
        double out = tokens * 4 * (2 * 128 * 2 + 4 * 2);
        List<int[]> arcs = new ArrayList<>();
        List<int[]> back = new ArrayList<>();
        for (int a = 0; a < 8; a++) {
            for (int b = 0; b < 8; b++) {
                if (a != b) {
                    arcs.add(new int[] {a, b});
                    back.add(new int[] {b, a});
                }
            }
        }
        double[] inBytes = new double[arcs.size()];
        double[] outBytes = new double[arcs.size()];
        java.util.Arrays.fill(inBytes, in);
        java.util.Arrays.fill(outBytes, out);
        assertEquals(pr.steps().size(), 3);
        assertEquals(pr.steps().get(0).commSeconds(), m.transferSeconds(arcs, inBytes), 1e-15);
        assertEquals(pr.steps().get(2).commSeconds(), m.transferSeconds(back, outBytes), 1e-15);
        // more bytes take longer: the phases are not free
        java.util.Arrays.fill(inBytes, 2 * in);
        assertTrue(m.transferSeconds(arcs, inBytes) > pr.steps().get(0).commSeconds());
        double attention = m.attentionSeconds(m.device(0), new ProblemSize(2, 1 << 16, 4, 1, 128, 2), 1 << 16, 1 << 16, false);
        assertEquals(pr.steps().get(1).computeSeconds(), attention, 1e-15);
        assertEquals(pr.totalSeconds(), pr.steps().stream().mapToDouble(CostModel.StepCost::seconds).sum(), 1e-15);
    }

    @Test
    public void autoPicksTheLeastPredictedTotalOnEveryPreset() {
        List<ProblemSize> problems = List.of(new ProblemSize(1, 1 << 14, 32, 8, 128, 2),
                new ProblemSize(1, 1 << 17, 32, 8, 128, 2), new ProblemSize(1, 1 << 15, 12, 4, 64, 2),
                new ProblemSize(1, 1 << 16, 64, 64, 128, 2));
        for (String name : TopologyPresets.names()) {
            Topology t = TopologyPresets.get(name);
            CostModel m = CostModel.of(t);
            for (boolean causal : new boolean[] {false, true}) {
                List<Plan> all = Planner.candidates(t, causal);
                for (ProblemSize p : problems) {
                    Plan auto = Planner.plan(t, Strategy.AUTO, causal, p);
                    double least = Double.POSITIVE_INFINITY;
                    Plan leastPlan = null;
                    for (Plan c : all) {
                        if (c.headParallel() != null && !c.headParallel().applies(p.heads(), p.kvHeads())) {
                            continue;
                        }
                        double time = m.predict(c, p).totalSeconds();
                        if (time < least) {
                            least = time;
                            leastPlan = c;
                        }
                    }
                    assertNotNull(leastPlan);
                    assertEquals(m.predict(auto, p).totalSeconds(), least, least * 1e-12,
                            name + " causal=" + causal + " " + p + ": auto " + auto + ", least " + leastPlan);
                }
            }
        }
    }
}
