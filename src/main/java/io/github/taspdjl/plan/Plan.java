package io.github.taspdjl.plan;

import io.github.taspdjl.plan.decompose.HamiltonianCycle;
import java.util.List;
import java.util.Objects;

/**
 * A complete, immutable sequence-parallel attention schedule for {@code worldSize} ranks: the sequence
 * layout, the cycles the chunks travel on (empty for the direct schedule), and the steps. Build one with
 * {@link Planner}; check one with {@link PlanValidator}; store one with {@link PlanJson} or {@link PlanCodec}.
 */
public final class Plan {

    private final int worldSize;
    private final Strategy strategy;
    private final boolean causal;
    private final SequenceLayout layout;
    private final List<HamiltonianCycle> cycles;
    private final List<Step> steps;
    private final List<String> notes;
    private final HeadParallel headParallel;

    /**
     * @param worldSize number of ranks
     * @param strategy the strategy the steps implement (never {@link Strategy#AUTO})
     * @param causal whether the attention is causal
     * @param layout where the blocks are
     * @param cycles the cycles the chunks travel on; cycle j carries chunk index j
     * @param steps the steps, step i at position i
     * @param notes why the planner chose what it did (fallbacks, AUTO's choice); may be empty
     */
    public Plan(int worldSize, Strategy strategy, boolean causal, SequenceLayout layout, List<HamiltonianCycle> cycles,
            List<Step> steps, List<String> notes) {
        this(worldSize, strategy, causal, layout, cycles, steps, notes, null);
    }

    /**
     * A head-parallel plan ({@link Strategy#ULYSSES}, {@link Strategy#HYBRID}): no cycles or steps of its
     * own; its transfers are the all-to-alls and its inner plan's (see {@link HeadParallel}).
     */
    public static Plan headParallel(Strategy strategy, boolean causal, HeadParallel hp, List<String> notes) {
        int n = hp.worldSize();
        return new Plan(n, strategy, causal, SequenceLayout.grouped(hp.inner().layout().kind(), n, hp.degree()), List.of(),
                List.of(), notes, hp);
    }

    private Plan(int worldSize, Strategy strategy, boolean causal, SequenceLayout layout, List<HamiltonianCycle> cycles,
            List<Step> steps, List<String> notes, HeadParallel headParallel) {
        if (worldSize < 1) {
            throw new IllegalArgumentException("world size must be at least 1, got " + worldSize);
        }
        if (strategy == Strategy.AUTO) {
            throw new IllegalArgumentException("a plan has a concrete strategy, not AUTO");
        }
        this.worldSize = worldSize;
        this.strategy = Objects.requireNonNull(strategy, "strategy");
        this.causal = causal;
        this.layout = Objects.requireNonNull(layout, "layout");
        if (layout.worldSize() != worldSize) {
            throw new IllegalArgumentException("layout is for " + layout.worldSize() + " ranks, plan for " + worldSize);
        }
        this.cycles = List.copyOf(cycles);
        this.steps = List.copyOf(steps);
        this.notes = List.copyOf(notes);
        this.headParallel = headParallel;
        if (strategy.headParallel() != (headParallel != null)) {
            throw new IllegalArgumentException(strategy.cliName() + " plans " + (headParallel == null ? "need" : "have no")
                    + " head-parallel part");
        }
        for (int i = 0; i < this.steps.size(); i++) {
            if (this.steps.get(i).index() != i) {
                throw new IllegalArgumentException("step at position " + i + " has index " + this.steps.get(i).index());
            }
        }
    }

    public int worldSize() {
        return worldSize;
    }

    public Strategy strategy() {
        return strategy;
    }

    public boolean causal() {
        return causal;
    }

    public SequenceLayout layout() {
        return layout;
    }

    public List<HamiltonianCycle> cycles() {
        return cycles;
    }

    public List<Step> steps() {
        return steps;
    }

    public List<String> notes() {
        return notes;
    }

    /** The all-to-all over heads and the inner plan ({@link Strategy#ULYSSES}, {@link Strategy#HYBRID}); else null. */
    public HeadParallel headParallel() {
        return headParallel;
    }

    /** A copy with more notes. */
    public Plan withNotes(List<String> more) {
        List<String> all = new java.util.ArrayList<>(notes);
        all.addAll(more);
        return new Plan(worldSize, strategy, causal, layout, cycles, steps, all, headParallel);
    }

    /** Most chunks any rank receives in one step: the capacity, in chunks, of each receive buffer. */
    public int receiveBufferChunks() {
        int max = 0;
        for (Step s : steps) {
            int[] count = new int[worldSize];
            for (Transfer t : s.transfers()) {
                if (t.dst() >= 0 && t.dst() < worldSize) {
                    max = Math.max(max, ++count[t.dst()]);
                }
            }
        }
        return max;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Plan p && p.worldSize == worldSize && p.strategy == strategy && p.causal == causal
                && p.layout.equals(layout) && p.cycles.equals(cycles) && p.steps.equals(steps)
                && Objects.equals(p.headParallel, headParallel);
    }

    @Override
    public int hashCode() {
        return Objects.hash(worldSize, strategy, causal, layout, cycles, steps, headParallel);
    }

    @Override
    public String toString() {
        if (headParallel != null) {
            return "Plan{" + headParallel.label() + (causal ? " causal" : "") + ", " + worldSize + " ranks, " + layout
                    + ", inner " + headParallel.inner() + "}";
        }
        return "Plan{" + strategy.cliName() + (causal ? " causal" : "") + ", " + worldSize + " ranks, " + layout + ", "
                + cycles.size() + " cycle(s), " + steps.size() + " steps}";
    }
}
