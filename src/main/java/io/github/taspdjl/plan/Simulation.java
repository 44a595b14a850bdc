package io.github.taspdjl.plan;

import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Compares the candidate plans of a topology with the {@link CostModel}: predicted time of each and its
 * speedup over the ring baseline (the zigzag ring when causal).
 */
public final class Simulation {

    /**
     * One candidate's result.
     *
     * @param label requested strategy, with what it fell back to (see {@link Planner#label})
     * @param plan the plan
     * @param prediction its predicted cost
     * @param speedup ring (or zigzag ring) time over this plan's time
     */
    public record Row(String label, Plan plan, CostModel.Prediction prediction, double speedup) {}

    private final Topology topology;
    private final boolean causal;
    private final List<Plan> plans;
    private final List<String> labels = new ArrayList<>();
    private final CostModel model;

    public Simulation(Topology topology, boolean causal, CostModel.Parameters params) {
        this.topology = topology;
        this.causal = causal;
        this.plans = Planner.candidates(topology, causal);
        List<Strategy> strategies = Planner.candidateStrategies(topology, causal);
        for (int i = 0; i < plans.size(); i++) {
            labels.add(Planner.label(strategies.get(i), plans.get(i)));
        }
        this.model = new CostModel(topology, params);
    }

    public Topology topology() {
        return topology;
    }

    public boolean causal() {
        return causal;
    }

    /** The cost model's parameters. */
    public CostModel.Parameters parameters() {
        return model.parameters();
    }

    /** The strategy the speedups are over: the ring, or the zigzag ring for causal masks. */
    public Strategy baseline() {
        return plans.get(0).strategy();
    }

    /** Shortest sequence every candidate plan can cut (one token per piece). */
    public long minimumLength() {
        return plans.stream().mapToLong(p -> p.layout().minimumLength()).max().orElse(1);
    }

    /**
     * Every candidate's prediction for one problem, the baseline (ring) first; head-parallel candidates whose
     * Ulysses degree does not divide the problem's query heads are left out.
     */
    public List<Row> compare(ProblemSize problem) {
        double base = model.predict(plans.get(0), problem).totalSeconds();
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < plans.size(); i++) {
            Plan plan = plans.get(i);
            if (plan.headParallel() != null && !plan.headParallel().applies(problem.heads(), problem.kvHeads())) {
                continue; // the heads do not divide among this Ulysses degree
            }
            CostModel.Prediction p = model.predict(plan, problem);
            rows.add(new Row(labels.get(i), p.plan(), p, base / p.totalSeconds()));
        }
        return rows;
    }

    /** The fastest candidate for a problem. */
    public Row best(ProblemSize problem) {
        Row best = null;
        for (Row r : compare(problem)) {
            best = best == null || r.prediction().totalSeconds() < best.prediction().totalSeconds() ? r : best;
        }
        return best;
    }

    /**
     * Speedup over the baseline of each candidate other than the baseline, per sequence length; keys are
     * row labels in candidate order.
     */
    public Map<String, double[]> speedupCurves(ProblemSize problem, long[] seqLens) {
        Map<String, double[]> curves = new LinkedHashMap<>();
        for (int i = 0; i < seqLens.length; i++) {
            List<Row> rows = compare(problem.withSeqLen(seqLens[i]));
            for (Row r : rows.subList(1, rows.size())) {
                curves.computeIfAbsent(r.label(), k -> new double[seqLens.length])[i] = r.speedup();
            }
        }
        return curves;
    }
}
