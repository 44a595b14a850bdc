package io.github.taspdjl.plan;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertFalse;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.List;
import org.testng.annotations.Test;

/** The flat and JSON forms give back the same plan, and the flat form rejects damage. */
public class PlanFormsTest {

    private static List<Plan> samples() {
        List<Plan> plans = new ArrayList<>();
        for (int n : new int[] {1, 2, 4, 7, 8}) {
            for (Strategy s : Strategy.values()) {
                if (s.headParallel()) {
                    continue; // JSON only: HeadParallelPlanTest
                }
                plans.add(Planner.plan(Topology.virtualCpu(n), s, n % 2 == 0));
            }
        }
        plans.add(Planner.plan(TestTopologies.cluster(4, 2), Strategy.TASP_HIERARCHICAL, true));
        return plans;
    }

    @Test
    public void flatFormRoundTrips() {
        for (Plan p : samples()) {
            int[] flat = PlanCodec.toFlat(p);
            assertEquals(flat[0], PlanCodec.MAGIC);
            assertEquals(flat[3], flat.length);
            assertEquals(flat[4], p.worldSize());
            assertEquals(flat[14], p.steps().size());
            assertEquals(PlanCodec.fromFlat(flat), p, p.toString());
        }
    }

    @Test
    public void flatRecordIndexPointsAtEachRanksRecord() {
        Plan p = Planner.plan(Topology.virtualCpu(5), Strategy.DIRECT, false);
        int[] f = PlanCodec.toFlat(p);
        int n = 5;
        int index = PlanCodec.HEADER_INTS + n * f[9] + f[13] * n;
        // Step 1, rank 2 sends 4 chunks, receives 4 and runs 4 tasks (one per received chunk).
        int rec = f[index + 1 * n + 2];
        assertEquals(new int[] {f[rec], f[rec + 1], f[rec + 2]}, new int[] {4, 4, 4});
        assertEquals(f[rec + 3], 0, "first send goes to rank 0");
        assertEquals(f[rec + 4], 2, "its own chunk");
    }

    @Test
    public void damagedFlatFormIsRejected() {
        int[] flat = PlanCodec.toFlat(Planner.plan(Topology.virtualCpu(4), Strategy.RING, false));
        int[] bad = flat.clone();
        bad[20] ^= 1;
        assertTrue(expectThrows(IllegalArgumentException.class, () -> PlanCodec.fromFlat(bad)).getMessage().contains("checksum"));
        int[] version = flat.clone();
        version[1] = 99;
        assertTrue(expectThrows(IllegalArgumentException.class, () -> PlanCodec.fromFlat(version)).getMessage().contains("version 99"));
        assertTrue(expectThrows(IllegalArgumentException.class, () -> PlanCodec.fromFlat(java.util.Arrays.copyOf(flat, 30)))
                .getMessage().contains("ints"));
    }

    @Test
    public void unmatchedSendSurvivesTheFlatFormAndFailsValidation() {
        Plan p = Planner.plan(Topology.virtualCpu(4), Strategy.TASP, false);
        List<Step> steps = new ArrayList<>(p.steps());
        Step s = steps.get(1);
        List<Transfer> t = new ArrayList<>(s.transfers());
        Transfer x = t.get(2);
        t.set(2, new Transfer(x.src(), x.dst(), x.chunk(), x.sendSlot(), null));
        steps.set(1, new Step(1, t, s.compute()));
        Plan broken = new Plan(4, p.strategy(), false, p.layout(), p.cycles(), steps, List.of());
        Plan back = PlanCodec.fromFlat(PlanCodec.toFlat(broken));
        PlanValidator.Verdict v = PlanValidator.validate(back);
        assertFalse(v.valid());
        assertTrue(v.toString().contains("posts no matching receive"), v.toString());
    }

    @Test
    public void jsonRoundTripsWithTheDocumentedFields() {
        for (Plan p : samples()) {
            assertEquals(PlanJson.fromJson(PlanJson.toJson(p)), p);
        }
        Plan p = Planner.plan(Topology.virtualCpu(3), Strategy.TASP, false);
        JsonObject o = JsonParser.parseString(PlanJson.toJson(p)).getAsJsonObject();
        assertEquals(o.get("worldSize").getAsInt(), 3);
        assertEquals(o.get("strategy").getAsString(), "tasp");
        assertEquals(o.getAsJsonArray("cycles").size(), 2);
        assertEquals(o.getAsJsonArray("cycles").get(0).getAsJsonArray().size(), 3);
        JsonObject step0 = o.getAsJsonArray("steps").get(0).getAsJsonObject();
        JsonObject tr = step0.getAsJsonArray("transfers").get(0).getAsJsonObject();
        assertTrue(tr.has("src") && tr.has("dst") && tr.getAsJsonObject("chunk").has("owner") && tr.getAsJsonObject("chunk").has("index"));
        JsonObject task = step0.getAsJsonArray("compute").get(0).getAsJsonObject();
        assertEquals(task.get("mask").getAsString(), "full");
        assertTrue(task.has("rank") && task.has("chunk"));
        expectThrows(IllegalArgumentException.class, () -> PlanJson.fromJson("{\"format\":\"other\"}"));
    }

    @Test
    public void nullListsAndEntriesAreRejectedNamingTheField() {
        Plan p = Planner.plan(Topology.virtualCpu(3), Strategy.TASP, false);
        String[][] cases = {
            {"transfers", "steps[0]"},
            {"compute", "steps[0]"},
        };
        for (String[] c : cases) {
            JsonObject o = JsonParser.parseString(PlanJson.toJson(p)).getAsJsonObject();
            o.getAsJsonArray("steps").get(0).getAsJsonObject().add(c[0], com.google.gson.JsonNull.INSTANCE);
            IllegalArgumentException e =
                    expectThrows(IllegalArgumentException.class, () -> PlanJson.fromJson(o.toString()));
            assertTrue(e.getMessage().contains(c[1]) && e.getMessage().contains(c[0]), e.getMessage());
        }
        JsonObject o = JsonParser.parseString(PlanJson.toJson(p)).getAsJsonObject();
        o.getAsJsonArray("steps").get(0).getAsJsonObject().getAsJsonArray("transfers").set(0,
                com.google.gson.JsonNull.INSTANCE);
        IllegalArgumentException e = expectThrows(IllegalArgumentException.class, () -> PlanJson.fromJson(o.toString()));
        assertTrue(e.getMessage().contains("steps[0].transfers[0]"), e.getMessage());
    }
}
