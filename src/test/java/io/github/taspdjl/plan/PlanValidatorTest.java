package io.github.taspdjl.plan;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertFalse;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import io.github.taspdjl.plan.decompose.HamiltonianCycle;
import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import org.testng.annotations.Test;

/** The validator rejects each kind of broken plan, naming what is broken. */
public class PlanValidatorTest {

    private static Plan valid(Strategy s, int n, boolean causal) {
        Plan p = Planner.plan(Topology.virtualCpu(n), s, causal);
        assertTrue(PlanValidator.validate(p).valid(), PlanValidator.validate(p).toString());
        return p;
    }

    /** The plan with step {@code index} replaced. */
    private static Plan editStep(Plan p, int index, UnaryOperator<Step> edit) {
        List<Step> steps = new ArrayList<>(p.steps());
        steps.set(index, edit.apply(steps.get(index)));
        return new Plan(p.worldSize(), p.strategy(), p.causal(), p.layout(), p.cycles(), steps, p.notes());
    }

    private static void assertViolation(Plan broken, String fragment) {
        PlanValidator.Verdict v = PlanValidator.validate(broken);
        assertFalse(v.valid());
        assertTrue(v.violations().stream().anyMatch(s -> s.contains(fragment)), "no violation with '" + fragment + "' in " + v);
    }

    @Test
    public void missingAttentionTaskLeavesABlockUncovered() {
        Plan p = valid(Strategy.TASP, 8, false);
        Plan broken = editStep(p, 3, s -> new Step(s.index(), s.transfers(), s.compute().subList(1, s.compute().size())));
        AttentionTask dropped = p.steps().get(3).compute().get(0);
        assertViolation(broken, "rank " + dropped.rank() + ": query block " + dropped.queryBlock() + " never meets key block "
                + dropped.kvBlock() + " piece " + dropped.chunk().index());
    }

    @Test
    public void attentionTaskRunTwiceIsCounted() {
        Plan p = valid(Strategy.RING, 5, false);
        Plan broken = editStep(p, 2, s -> {
            List<AttentionTask> c = new ArrayList<>(s.compute());
            c.add(c.get(0));
            return new Step(s.index(), s.transfers(), c);
        });
        assertViolation(broken, "2 times");
    }

    @Test
    public void twoTransfersOnOneArcInOneStepAreRejected() {
        Plan p = valid(Strategy.DIRECT, 5, false);
        Plan broken = editStep(p, 1, s -> {
            List<Transfer> t = new ArrayList<>(s.transfers());
            Transfer first = t.get(0);
            // A second chunk of the same sender over the same arc, read from the local shard.
            int other = (first.chunk().index() + 1) % p.layout().chunksPerRank();
            t.add(new Transfer(first.src(), first.dst(), new ChunkId(first.src(), other), Slot.local(other), new Slot(1, 7)));
            return new Step(s.index(), t, s.compute());
        });
        assertViolation(broken, "arc 0->1 carries more than one transfer");
    }

    @Test
    public void sendWithoutReceiveIsRejected() {
        Plan p = valid(Strategy.TASP, 7, false);
        Plan broken = editStep(p, 0, s -> {
            List<Transfer> t = new ArrayList<>(s.transfers());
            Transfer x = t.get(4);
            t.set(4, new Transfer(x.src(), x.dst(), x.chunk(), x.sendSlot(), null));
            return new Step(s.index(), t, s.compute());
        });
        assertViolation(broken, "posts no matching receive");
    }

    @Test
    public void receiveWithoutSendIsRejected() {
        Plan p = valid(Strategy.RING, 4, false);
        Plan broken = editStep(p, 1, s -> {
            List<Transfer> t = new ArrayList<>(s.transfers());
            Transfer x = t.get(0);
            t.set(0, new Transfer(x.src(), x.dst(), x.chunk(), null, x.recvSlot()));
            return new Step(s.index(), t, s.compute());
        });
        assertViolation(broken, "posts no matching send");
    }

    @Test
    public void plainRingUnderCausalMaskIsUnbalanced() {
        int n = 8;
        int[] order = {0, 1, 2, 3, 4, 5, 6, 7};
        Plan ring = Schedules.cycles(Strategy.RING, true, SequenceLayout.Kind.CONTIGUOUS, n, List.of(new HamiltonianCycle(order)),
                List.of());
        // Coverage is right (rank r computes r full blocks and one diagonal), only the balance is not.
        PlanValidator.Verdict v = PlanValidator.validate(ring);
        assertEquals(v.violations().size(), 1, v.toString());
        assertTrue(v.violations().get(0).contains("causal work unbalanced: rank 7 computes 7.50 block pairs, rank 0 only 0.50"),
                v.toString());
        // The same ring on the zigzag layout is balanced.
        assertTrue(PlanValidator.validate(Schedules.cycles(Strategy.ZIGZAG_RING, true, SequenceLayout.Kind.ZIGZAG, n,
                List.of(new HamiltonianCycle(order)), List.of())).valid());
    }

    @Test
    public void laterBlockUnderCausalMaskIsRejected() {
        Plan p = valid(Strategy.ZIGZAG_RING, 4, true);
        // Rank 0 holds blocks 0 and 7; at step 1 it holds rank 3's chunk (blocks 3, 4): q0 x k3 is hidden.
        Plan broken = editStep(p, 1, s -> {
            List<AttentionTask> c = new ArrayList<>(s.compute());
            AttentionTask any = c.stream().filter(a -> a.rank() == 0).findFirst().orElseThrow();
            c.add(new AttentionTask(0, 0, any.chunk(), p.layout().blocksOfRank(any.chunk().owner())[0], any.slot(), Mask.FULL));
            return new Step(s.index(), s.transfers(), c);
        });
        assertViolation(broken, "causal mask hides");
    }

    @Test
    public void readingTheWrongSlotIsRejected() {
        Plan p = valid(Strategy.TASP, 5, false);
        Plan broken = editStep(p, 2, s -> {
            List<Transfer> t = new ArrayList<>(s.transfers());
            Transfer x = t.get(0);
            t.set(0, new Transfer(x.src(), x.dst(), x.chunk(), new Slot(x.sendSlot().buffer(), x.sendSlot().position() + 1),
                    x.recvSlot()));
            return new Step(s.index(), t, s.compute());
        });
        assertViolation(broken, "which holds");
    }

    @Test
    public void requireValidThrowsListingViolations() {
        Plan p = valid(Strategy.RING, 3, false);
        Plan broken = editStep(p, 0, s -> new Step(0, s.transfers(), List.of()));
        IllegalStateException e = expectThrows(IllegalStateException.class, () -> PlanValidator.requireValid(broken));
        assertTrue(e.getMessage().contains("never meets key block 0"), e.getMessage());
        assertEquals(PlanValidator.requireValid(p), p);
    }
}
