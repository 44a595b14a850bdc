package io.github.taspdjl.plan;

import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The problem grid of the TASP paper's reference harness (HamiltonAttention's test script): 8 GPUs, bf16,
 * head dimension 64, 4, 12 or 20 heads, sequence {@code k x 3360} for k in {@link #MULTIPLES}, batch sizes
 * from the same list with batch x sequence at most 10M tokens, full mask, forward only, TASP against the
 * ring. {@link #run} predicts every point with the {@link CostModel} and summarizes the speedups.
 */
public final class ReferenceGrid {

    /** Sequence multiples and batch sizes of the harness. */
    public static final List<Integer> MULTIPLES = List.of(1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128);
    /** Query (and key/value) head counts of the harness. */
    public static final List<Integer> HEADS = List.of(4, 12, 20);
    /** Tokens per sequence multiple: 3360 = 8 x 7 x 60 cuts evenly into 8 ranks of 7 chunks. */
    public static final long SEQUENCE_UNIT = 3360;
    /** Most batch x sequence tokens per point. */
    public static final long MAX_TOKENS = 10_000_000;
    /** The harness forces head dimension 64. */
    public static final int HEAD_DIM = 64;
    /** Ranks of the harness. */
    public static final int GPUS = 8;

    /**
     * Figures the paper reports, as secondary summaries give them (its tables could not be read).
     *
     * @param average mean speedup of TASP over the ring over the grid
     * @param maximum largest speedup on the grid
     */
    public record PaperFigures(double average, double maximum) {}

    private static final Map<String, PaperFigures> PAPER = Map.of(
            "preset:mi300x-xgmi-8", new PaperFigures(1.57, 3.58),
            "preset:h100-nvswitch-8", new PaperFigures(1.05, 2.31));

    /**
     * The summary for one topology.
     *
     * @param points number of grid points
     * @param average mean speedup of TASP over the ring
     * @param maximum largest speedup
     * @param atMaximum the problem of the largest speedup
     * @param minimum smallest speedup
     * @param commBound points where the ring's transfers, not its attention, set its step time
     */
    public record Summary(int points, double average, double maximum, ProblemSize atMaximum, double minimum, int commBound) {}

    private ReferenceGrid() {}

    /** Every problem of the grid, in (heads, sequence, batch) order. */
    public static List<ProblemSize> problems() {
        List<ProblemSize> out = new ArrayList<>();
        for (int heads : HEADS) {
            for (int k : MULTIPLES) {
                long seq = k * SEQUENCE_UNIT;
                for (int batch : MULTIPLES) {
                    if (batch * seq <= MAX_TOKENS) {
                        out.add(new ProblemSize(batch, seq, heads, heads, HEAD_DIM, 2));
                    }
                }
            }
        }
        return out;
    }

    /** The paper's figures for a preset's topology, if it reports any. */
    public static Optional<PaperFigures> paper(Topology topology) {
        return Optional.ofNullable(PAPER.get(topology.source()));
    }

    /**
     * Predicts ring and TASP (full mask) on every grid point of an 8-device topology and summarizes TASP's
     * speedup.
     */
    public static Summary run(Topology topology, CostModel.Parameters params) {
        if (topology.deviceCount() != GPUS) {
            throw new IllegalArgumentException("the reference grid is for " + GPUS + " devices, " + topology + " has "
                    + topology.deviceCount());
        }
        CostModel model = new CostModel(topology, params);
        Plan ring = Planner.plan(topology, Strategy.RING, false);
        Plan tasp = Planner.plan(topology, Strategy.TASP, false);
        double sum = 0;
        double max = 0;
        double min = Double.POSITIVE_INFINITY;
        ProblemSize atMax = null;
        int commBound = 0;
        List<ProblemSize> problems = problems();
        for (ProblemSize p : problems) {
            CostModel.Prediction r = model.predict(ring, p);
            double s = r.totalSeconds() / model.predict(tasp, p).totalSeconds();
            sum += s;
            min = Math.min(min, s);
            if (s > max) {
                max = s;
                atMax = p;
            }
            CostModel.StepCost step = r.steps().get(1);
            if (step.commSeconds() > step.computeSeconds()) {
                commBound++;
            }
        }
        return new Summary(problems.size(), sum / problems.size(), max, atMax, min, commBound);
    }
}
