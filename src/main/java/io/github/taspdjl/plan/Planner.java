package io.github.taspdjl.plan;

import io.github.taspdjl.plan.decompose.Decompositions;
import io.github.taspdjl.plan.decompose.HamiltonianCycle;
import io.github.taspdjl.topology.Device;
import io.github.taspdjl.topology.Topology;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Builds plans. Every plan it returns has passed {@link PlanValidator}; every fallback is written to the
 * plan's {@link Plan#notes()} and logged.
 *
 * <ul>
 *   <li>{@link Strategy#RING}: one ring 0, 1, ..., n-1 on the contiguous layout. With a causal mask the plain
 *       ring leaves rank n-1 about 2n-1 times the work of rank 0, so causal RING becomes ZIGZAG_RING.
 *   <li>{@link Strategy#ZIGZAG_RING}: the same ring on the zigzag layout.
 *   <li>{@link Strategy#TASP}: arc-disjoint Hamiltonian cycles of the topology's link graph, one KV chunk per
 *       cycle. Complete graph: the n-1 cycles of K*_n; for n = 4 and 6, which have none, the direct
 *       schedule. Other graphs: the most disjoint cycles a bounded search finds; none: the ring. Causal TASP
 *       becomes TASP_CAUSAL.
 *   <li>{@link Strategy#TASP_CAUSAL}: the same on the zigzag layout.
 *   <li>{@link Strategy#TASP_HIERARCHICAL}: u nodes of m GPUs: m rings of intra-node Hamiltonian paths
 *       chained over the NIC rails, where they exist; else flat TASP. Contiguous or zigzag layout by mask.
 *   <li>{@link Strategy#DIRECT}: the direct all-to-all schedule, any n. Contiguous or zigzag by mask.
 *   <li>{@link Strategy#ULYSSES}: an all-to-all over heads among all n ranks and attention over the whole
 *       sequence per head subset ({@link HeadParallel}, degree n); contiguous layout, causal or not.
 *   <li>{@link Strategy#HYBRID}: Ulysses of degree u inside groups of u consecutive ranks, times a ring or TASP
 *       plan over the n/u ranks of each head subset (built on that part of the topology); u and the inner
 *       strategy are the ones the cost model predicts fastest for the problem ({@link #hybrid} names them).
 *   <li>{@link Strategy#AUTO}: the candidate the {@link CostModel} predicts fastest for the problem, over every
 *       strategy that applies to it (head-parallel ones only where the query heads divide).
 * </ul>
 */
public final class Planner {

    private static final Logger LOG = LoggerFactory.getLogger(Planner.class);

    /** Problem AUTO plans for when none is given: 128k tokens, 32 heads, 8 KV heads, d = 128, bf16. */
    public static final ProblemSize DEFAULT_PROBLEM = new ProblemSize(1, 131072, 32, 8, 128, 2);

    /** Time the cycle search may take on a graph that is not complete. */
    static final Duration SEARCH_TIME = Duration.ofSeconds(2);

    /** Decompositions are pure functions of their input and some take seconds: computed once per JVM. */
    private static final java.util.Map<Integer, Optional<List<HamiltonianCycle>>> COMPLETE =
            new java.util.concurrent.ConcurrentHashMap<>();
    private static final java.util.Map<String, List<HamiltonianCycle>> SEARCHED = new java.util.concurrent.ConcurrentHashMap<>();

    private Planner() {}

    /**
     * A plan for the topology when the heads are not known yet: AUTO plans for {@link #DEFAULT_PROBLEM} over the
     * strategies that move token chunks (a head-parallel plan could not run with heads that do not divide), and
     * HYBRID picks its degree for that problem.
     */
    public static Plan plan(Topology topology, Strategy strategy, boolean causal) {
        return plan(topology, strategy, causal, DEFAULT_PROBLEM, false);
    }

    /**
     * A plan for the topology and problem; AUTO picks with the default {@link CostModel} over every strategy that
     * applies to the problem (head-parallel ones only where its query heads divide).
     *
     * @throws IllegalArgumentException for ULYSSES or HYBRID when the problem's heads do not divide, saying so
     */
    public static Plan plan(Topology topology, Strategy strategy, boolean causal, ProblemSize problem) {
        return plan(topology, strategy, causal, problem, true);
    }

    private static Plan plan(Topology topology, Strategy strategy, boolean causal, ProblemSize problem, boolean headsKnown) {
        if (topology == null || strategy == null) {
            throw new IllegalArgumentException("topology and strategy are required, got " + topology + " and " + strategy);
        }
        if (topology.deviceCount() < 1) {
            throw new IllegalArgumentException("topology " + topology + " has no device to plan for");
        }
        if (strategy.headParallel() && topology.deviceCount() < 2) {
            throw new IllegalArgumentException(strategy.cliName() + " needs at least 2 ranks, got " + topology.deviceCount());
        }
        Plan plan = strategy == Strategy.AUTO ? auto(topology, causal, problem, headsKnown)
                : strategy == Strategy.HYBRID ? bestHybrid(topology, causal, problem) : build(topology, strategy, causal);
        if (plan.headParallel() != null && headsKnown) {
            plan.headParallel().requireHeads(problem.heads(), problem.kvHeads());
        }
        for (String note : plan.notes()) {
            LOG.info("{}: {}", plan.strategy().cliName(), note);
        }
        return PlanValidator.requireValid(plan);
    }

    /**
     * The distinct plans worth comparing for a topology and mask: ring (zigzag when causal), TASP, direct
     * and, on several nodes, hierarchical TASP. Each is validated.
     */
    public static List<Plan> candidates(Topology topology, boolean causal) {
        List<Plan> out = new ArrayList<>();
        for (Strategy s : tokenCandidates(topology, causal)) {
            out.add(PlanValidator.requireValid(build(topology, s, causal)));
        }
        out.addAll(headParallelCandidates(topology, causal));
        return out;
    }

    /** The head-parallel plans of {@link #headParallelSpecs}, each validated. */
    private static List<Plan> headParallelCandidates(Topology topology, boolean causal) {
        List<Plan> out = new ArrayList<>();
        for (int[] spec : headParallelSpecs(topology, causal)) {
            out.add(spec[0] == topology.deviceCount() ? ulysses(topology.deviceCount(), causal)
                    : hybrid(topology, spec[0], Strategy.values()[spec[1]], causal));
        }
        return out;
    }

    /**
     * The head-parallel candidates of a topology: Ulysses over all ranks, and for every proper divisor u of n
     * (2 <= u < n) the hybrid of degree u with a ring and with TASP inside (TASP only over 3 or more inner
     * ranks, where it differs from the ring). Each is {u, ordinal of the inner strategy}.
     */
    static List<int[]> headParallelSpecs(Topology topology, boolean causal) {
        int n = topology.deviceCount();
        List<int[]> specs = new ArrayList<>();
        if (n < 2) {
            return specs;
        }
        SequenceLayout.Kind kind = kindFor(causal);
        for (int u = 2; u < n; u++) {
            int m = n / u;
            if (n % u != 0) {
                continue;
            }
            if (Schedules.estimatedEntries(m, 1, kind, causal) <= Schedules.MAX_PLAN_ENTRIES) {
                specs.add(new int[] {u, Strategy.RING.ordinal()});
            }
            if (m > 2 && Schedules.estimatedEntries(m, m - 1, kind, causal) <= Schedules.MAX_PLAN_ENTRIES) {
                specs.add(new int[] {u, Strategy.TASP.ordinal()});
            }
        }
        specs.add(new int[] {n, Strategy.RING.ordinal()});
        return specs;
    }

    /**
     * The strategies {@link #candidates} builds, in that order (the ring baseline first). Strategies whose
     * plan would pass {@link Schedules#MAX_PLAN_ENTRIES} for this many ranks are left out (only the ring
     * remains past about 150 ranks).
     */
    public static List<Strategy> candidateStrategies(Topology topology, boolean causal) {
        List<Strategy> strategies = tokenCandidates(topology, causal);
        for (int[] spec : headParallelSpecs(topology, causal)) {
            strategies.add(spec[0] == topology.deviceCount() ? Strategy.ULYSSES : Strategy.HYBRID);
        }
        return strategies;
    }

    /** The token-chunk strategies of {@link #candidateStrategies}. */
    private static List<Strategy> tokenCandidates(Topology topology, boolean causal) {
        List<Strategy> strategies = new ArrayList<>(List.of(causal ? Strategy.ZIGZAG_RING : Strategy.RING));
        int n = topology.deviceCount();
        SequenceLayout.Kind kind = kindFor(causal);
        if (Schedules.estimatedEntries(n, Math.max(1, n - 1), kind, causal) <= Schedules.MAX_PLAN_ENTRIES) {
            strategies.add(causal ? Strategy.TASP_CAUSAL : Strategy.TASP);
            strategies.add(Strategy.DIRECT);
        }
        if (topology.nodeCount() > 1 && Schedules.estimatedEntries(n, topology.devicesOnNode(0).size(), kind, causal)
                <= Schedules.MAX_PLAN_ENTRIES) {
            strategies.add(Strategy.TASP_HIERARCHICAL);
        }
        return strategies;
    }

    /**
     * Largest world size whose plans fit {@link Schedules#MAX_PLAN_ENTRIES}: with n-1 chunks per rank (TASP,
     * direct) or one (rings).
     */
    public static int maxRanks(boolean allChunks, boolean causal) {
        SequenceLayout.Kind kind = kindFor(causal);
        int lo = 1;
        int hi = 1 << 16;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            long chunks = allChunks ? Math.max(1, mid - 1) : 1;
            if (Schedules.estimatedEntries(mid, chunks, kind, causal) <= Schedules.MAX_PLAN_ENTRIES) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return lo;
    }

    /** What the size-limit error tells the user to do instead. */
    static String sizeAdvice(boolean causal) {
        return causal
                ? "tasp-causal and direct plans reach " + maxRanks(true, true) + " ranks with a causal mask, zigzag "
                        + maxRanks(false, true) + "; use zigzag, or tasp-hier over several nodes, for more ranks"
                : "tasp and direct plans reach " + maxRanks(true, false) + " ranks with the full mask, ring "
                        + maxRanks(false, false) + "; use ring, or tasp-hier over several nodes, for more ranks";
    }

    private static Plan auto(Topology topology, boolean causal, ProblemSize problem, boolean headsKnown) {
        CostModel model = CostModel.of(topology);
        Plan best = null;
        double bestTime = Double.POSITIVE_INFINITY;
        List<String> scores = new ArrayList<>();
        List<Strategy> strategies = headsKnown ? candidateStrategies(topology, causal) : tokenCandidates(topology, causal);
        List<Plan> plans = new ArrayList<>();
        for (Strategy s : tokenCandidates(topology, causal)) {
            plans.add(build(topology, s, causal));
        }
        if (headsKnown) {
            plans.addAll(headParallelCandidates(topology, causal));
        }
        for (int i = 0; i < plans.size(); i++) {
            Plan p = plans.get(i);
            if (p.headParallel() != null && !p.headParallel().applies(problem.heads(), problem.kvHeads())) {
                continue; // the query heads do not divide among the degree
            }
            double t = model.predict(p, problem).totalSeconds();
            scores.add(String.format(Locale.ROOT, "%s %.3f ms", label(strategies.get(i), p), t * 1e3));
            if (t < bestTime) {
                best = p;
                bestTime = t;
            }
        }
        return best.withNotes(List.of("auto picked " + label(best.strategy(), best) + " for seq " + problem.seqLen() + " (predicted: "
                + String.join(", ", scores) + ")"));
    }

    /** The requested strategy's name, plus what it became when it fell back, e.g. "tasp-hier->tasp". */
    public static String label(Strategy requested, Plan p) {
        if (p.headParallel() != null) {
            return p.headParallel().label();
        }
        return requested == p.strategy() ? requested.cliName() : requested.cliName() + "->" + p.strategy().cliName();
    }

    static Plan build(Topology topology, Strategy strategy, boolean causal) {
        int n = topology.deviceCount();
        List<String> notes = new ArrayList<>();
        switch (strategy) {
            case RING:
                if (causal) {
                    notes.add("a plain ring under a causal mask gives rank n-1 about 2n-1 times the work of rank 0;"
                            + " using the zigzag layout (zigzag)");
                    return ring(Strategy.ZIGZAG_RING, true, SequenceLayout.Kind.ZIGZAG, n, notes);
                }
                return ring(Strategy.RING, false, SequenceLayout.Kind.CONTIGUOUS, n, notes);
            case ZIGZAG_RING:
                return ring(Strategy.ZIGZAG_RING, causal, SequenceLayout.Kind.ZIGZAG, n, notes);
            case TASP:
                if (causal) {
                    notes.add("tasp is the full-mask variant; a causal mask needs the zigzag layout: using tasp-causal");
                    return tasp(topology, Strategy.TASP_CAUSAL, true, SequenceLayout.Kind.ZIGZAG, notes);
                }
                return tasp(topology, Strategy.TASP, false, SequenceLayout.Kind.CONTIGUOUS, notes);
            case TASP_CAUSAL:
                return tasp(topology, Strategy.TASP_CAUSAL, causal, SequenceLayout.Kind.ZIGZAG, notes);
            case TASP_HIERARCHICAL:
                return hierarchical(topology, causal, notes);
            case DIRECT:
                return Schedules.direct(Strategy.DIRECT, causal, kindFor(causal), n, notes);
            case ULYSSES:
                return ulysses(n, causal);
            case HYBRID:
                return bestHybrid(topology, causal, DEFAULT_PROBLEM);
            default:
                throw new IllegalArgumentException("strategy " + strategy + " is not a concrete schedule");
        }
    }

    /**
     * Ulysses over n ranks: the all-to-all over heads among all ranks, then attention over the whole sequence
     * (a one-rank inner plan). Contiguous layout for both masks: every rank sees the whole sequence of its
     * heads, so causal work is balanced without a zigzag.
     */
    public static Plan ulysses(int n, boolean causal) {
        if (n < 2) {
            throw new IllegalArgumentException("ulysses needs at least 2 ranks, got " + n);
        }
        Plan inner = Schedules.cycles(Strategy.RING, causal, SequenceLayout.Kind.CONTIGUOUS, 1, List.of(), List.of());
        return PlanValidator.requireValid(Plan.headParallel(Strategy.ULYSSES, causal, new HeadParallel(n, inner),
                List.of("all-to-all over heads among " + n + " ranks (query heads must divide by " + n + ")")));
    }

    /**
     * The hybrid of Ulysses degree {@code degree} (groups of that many consecutive ranks) with {@code inner}
     * (a token-chunk strategy) over the n/degree ranks of each head subset, planned on the part of the topology
     * that joins ranks 0, degree, 2*degree, ...
     */
    public static Plan hybrid(Topology topology, int degree, Strategy inner, boolean causal) {
        int n = topology.deviceCount();
        if (degree < 2 || degree >= n || n % degree != 0) {
            throw new IllegalArgumentException("a hybrid's Ulysses degree must divide the " + n + " ranks and lie in [2, "
                    + (n - 1) + "], got " + degree + " (degree " + n + " is ulysses)");
        }
        if (inner == null || inner.headParallel() || inner == Strategy.AUTO) {
            throw new IllegalArgumentException("a hybrid's inner strategy moves token chunks (ring, zigzag, tasp, ...), got "
                    + inner);
        }
        int m = n / degree;
        int[] members = new int[m];
        for (int g = 0; g < m; g++) {
            members[g] = g * degree;
        }
        Plan in = build(topology.restrictedTo(members), inner, causal);
        List<String> notes = new ArrayList<>();
        notes.add("all-to-all over heads in " + m + " group(s) of " + degree + " consecutive ranks, then "
                + in.strategy().cliName() + " over the " + m + " ranks of each head subset (query heads must divide by "
                + degree + ")");
        for (String note : in.notes()) {
            notes.add("inner: " + note);
        }
        return PlanValidator.requireValid(Plan.headParallel(Strategy.HYBRID, causal, new HeadParallel(degree, in), notes));
    }

    /** The hybrid the cost model predicts fastest for the problem (over every Ulysses degree and inner strategy). */
    private static Plan bestHybrid(Topology topology, boolean causal, ProblemSize problem) {
        CostModel model = CostModel.of(topology);
        Plan best = null;
        double bestTime = Double.POSITIVE_INFINITY;
        List<String> scores = new ArrayList<>();
        for (int[] spec : headParallelSpecs(topology, causal)) {
            if (spec[0] == topology.deviceCount()) {
                continue;
            }
            Plan p = hybrid(topology, spec[0], Strategy.values()[spec[1]], causal);
            if (!p.headParallel().applies(problem.heads(), problem.kvHeads())) {
                continue;
            }
            double t = model.predict(p, problem).totalSeconds();
            scores.add(String.format(Locale.ROOT, "%s %.3f ms", p.headParallel().label(), t * 1e3));
            if (t < bestTime) {
                best = p;
                bestTime = t;
            }
        }
        if (best == null) {
            throw new IllegalArgumentException("no hybrid applies to " + topology.deviceCount() + " ranks and "
                    + problem.heads() + " query heads: a hybrid needs a Ulysses degree u with 2 <= u < n that divides both"
                    + " the ranks and the query heads");
        }
        return best.withNotes(List.of("hybrid picked " + best.headParallel().label() + " for seq " + problem.seqLen()
                + " (predicted: " + String.join(", ", scores) + ")"));
    }

    private static SequenceLayout.Kind kindFor(boolean causal) {
        return causal ? SequenceLayout.Kind.ZIGZAG : SequenceLayout.Kind.CONTIGUOUS;
    }

    private static Plan ring(Strategy s, boolean causal, SequenceLayout.Kind kind, int n, List<String> notes) {
        List<HamiltonianCycle> cycles = new ArrayList<>();
        if (n > 1) {
            int[] order = new int[n];
            for (int i = 0; i < n; i++) {
                order[i] = i;
            }
            cycles.add(new HamiltonianCycle(order));
        }
        return Schedules.cycles(s, causal, kind, n, cycles, notes);
    }

    private static Plan tasp(Topology topology, Strategy s, boolean causal, SequenceLayout.Kind kind, List<String> notes) {
        int n = topology.deviceCount();
        if (n == 1) {
            return Schedules.cycles(s, causal, kind, 1, List.of(), notes);
        }
        boolean[][] adj = topology.adjacency();
        List<HamiltonianCycle> cycles;
        if (complete(adj)) {
            // before the decomposition, which may search for a while at sizes the stored table lacks
            Schedules.checkSize(s, n, n - 1, kind, causal);
            Optional<List<HamiltonianCycle>> d = COMPLETE.computeIfAbsent(n, Decompositions::completeGraph);
            if (d.isEmpty()) {
                notes.add("K*_" + n + " has no decomposition into " + (n - 1) + " Hamiltonian cycles (Tillson 1980);"
                        + " using the direct all-to-all schedule, which still uses every arc in every step");
                return Schedules.direct(s, causal, kind, n, notes);
            }
            cycles = d.get();
        } else {
            String key = java.util.Arrays.deepToString(adj);
            try {
                cycles = SEARCHED.computeIfAbsent(key, k -> Decompositions.maxDisjointCycles(adj, SEARCH_TIME));
            } catch (IllegalArgumentException e) {
                notes.add("the cycle search cannot handle this graph (" + e.getMessage() + ")");
                cycles = List.of();
            }
            if (cycles.isEmpty()) {
                notes.add("the link graph of " + topology + " has no Hamiltonian cycle that the search found;"
                        + " falling back to the ring 0..n-1, whose missing arcs the transport must route");
                return ring(kind == SequenceLayout.Kind.ZIGZAG ? Strategy.ZIGZAG_RING : Strategy.RING, causal, kind, n, notes);
            }
            if (cycles.size() < n - 1) {
                notes.add("the link graph is not complete: " + cycles.size() + " arc-disjoint Hamiltonian cycle(s) of at most "
                        + (n - 1) + "; each rank's key/values are cut into " + cycles.size() + " chunk(s)");
            }
        }
        Decompositions.verify(cycles, adj);
        return Schedules.cycles(s, causal, kind, n, cycles, notes);
    }

    private static Plan hierarchical(Topology topology, boolean causal, List<String> notes) {
        Strategy flat = causal ? Strategy.TASP_CAUSAL : Strategy.TASP;
        int n = topology.deviceCount();
        int u = topology.nodeCount();
        if (u < 2) {
            notes.add("tasp-hier needs several nodes and " + topology + " has one; using flat " + flat.cliName());
            return tasp(topology, flat, causal, kindFor(causal), notes);
        }
        int m = topology.devicesOnNode(0).size();
        for (Device d : topology.devices()) {
            if (m == 0 || n != m * u || d.node() != d.index() / m) {
                notes.add("tasp-hier needs u nodes of m GPUs numbered node*m+local, which " + topology
                        + " is not; using flat " + flat.cliName());
                return tasp(topology, flat, causal, kindFor(causal), notes);
            }
        }
        Optional<List<HamiltonianCycle>> h = Decompositions.hierarchical(m, u);
        if (h.isEmpty()) {
            notes.add("no rail-aligned hierarchical rings exist for " + u + " node(s) of " + m
                    + " GPUs (none for m = 3 or 5, nor m = 2 with odd u); using flat " + flat.cliName());
            return tasp(topology, flat, causal, kindFor(causal), notes);
        }
        boolean[][] adj = topology.adjacency();
        try {
            Decompositions.verify(h.get(), adj);
        } catch (RuntimeException e) {
            notes.add("the hierarchical rings need arcs " + topology + " lacks (" + e.getMessage() + "); using flat "
                    + flat.cliName());
            return tasp(topology, flat, causal, kindFor(causal), notes);
        }
        return Schedules.cycles(Strategy.TASP_HIERARCHICAL, causal, kindFor(causal), n, h.get(), notes);
    }

    static boolean complete(boolean[][] adj) {
        for (int i = 0; i < adj.length; i++) {
            for (int j = 0; j < adj.length; j++) {
                if (i != j && !adj[i][j]) {
                    return false;
                }
            }
        }
        return true;
    }
}
