package io.github.taspdjl.runtime;

import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.PlanValidator;
import io.github.taspdjl.plan.Planner;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import java.util.Objects;

/**
 * What a group plans: a strategy as {@link Planner#plan} makes it (a hybrid's Ulysses degree picked by the
 * cost model), or a hybrid of a given Ulysses degree and inner strategy. Every rank makes the same plan from
 * it and the topology.
 *
 * @param ulyssesDegree the hybrid's degree, 0 for the planner's pick
 */
record PlanChoice(Strategy strategy, int ulyssesDegree, Strategy inner) {

    static PlanChoice of(Strategy strategy) {
        return new PlanChoice(Objects.requireNonNull(strategy, "strategy"), 0, Strategy.TASP);
    }

    /** A hybrid of this degree (at least 2; the planner checks that it divides the ranks) with {@code inner}. */
    static PlanChoice hybrid(int degree, Strategy inner) {
        if (degree < 2) {
            throw new IllegalArgumentException("a hybrid's Ulysses degree must be at least 2, got " + degree);
        }
        return new PlanChoice(Strategy.HYBRID, degree, Objects.requireNonNull(inner, "inner"));
    }

    /** The validated plan for the topology and mask. */
    Plan plan(Topology topology, boolean causal) {
        return PlanValidator.requireValid(ulyssesDegree > 0 ? Planner.hybrid(topology, ulyssesDegree, inner, causal)
                : Planner.plan(topology, strategy, causal));
    }
}
