package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Planner;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.testng.annotations.Test;

/** {@code tasp demo} (small settings): the model over 4 virtual ranks agrees with one device. */
public class DemoCommandTest {

    @Test
    public void demoPrintsThePlanTheTimelineAndASmallError() {
        CliRun run = CliRun.of("demo", "--seq", "700", "--ranks", "4", "--layers", "2", "--embedding", "32",
                "--heads", "4");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        for (String part : new String[] {"[1/5] topology", "4 virtual CPU ranks", "tasp-causal over 4 ranks",
            "timeline of the last attention call", "TASP's executor holds", "rank 3 finished", "in one call"}) {
            assertTrue(out.contains(part), "missing '" + part + "' in\n" + out);
        }
        Matcher m = Pattern.compile("max error = ([0-9.eE+-]+)").matcher(out);
        assertTrue(m.find(), out);
        assertTrue(Double.parseDouble(m.group(1)) <= 1e-4, out);
    }

    @Test
    public void headParallelPlansAreDescribedByTheirAllToAllsAndInnerSteps() {
        Topology four = Topology.virtualCpu(4);
        assertEquals(DemoCommand.stepsText(Planner.plan(four, Strategy.RING, false)), "4 steps");
        assertEquals(DemoCommand.stepsText(Planner.plan(four, Strategy.ULYSSES, false)),
                "all-to-alls over heads among 4 ranks before and after attention");
        Plan hybrid = Planner.hybrid(four, 2, Strategy.RING, false);
        assertEquals(DemoCommand.stepsText(hybrid), "all-to-alls over heads among 2 ranks before and after attention, "
                + "between them " + hybrid.headParallel().inner().steps().size() + " steps of ring over 2 ranks");
    }

    @Test
    public void ulyssesDemoReportsTotalsInsteadOfAnEmptyTimeline() {
        CliRun run = CliRun.of("demo", "--seq", "512", "--ranks", "4", "--layers", "1", "--embedding", "32",
                "--heads", "4", "--strategy", "ulysses");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        for (String part : new String[] {"ulysses over 4 ranks", "all-to-alls over heads among 4 ranks",
            "head-parallel plans have no per-step timeline", "no score matrix"}) {
            assertTrue(out.contains(part), "missing '" + part + "' in\n" + out);
        }
        Matcher m = Pattern.compile("max error = ([0-9.eE+-]+)").matcher(out);
        assertTrue(m.find(), out);
        assertTrue(Double.parseDouble(m.group(1)) <= 1e-4, out);
    }
}
