package io.github.taspdjl.cli;

import io.github.taspdjl.plan.AttentionTask;
import io.github.taspdjl.plan.HeadParallel;
import io.github.taspdjl.plan.Mask;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.PlanJson;
import io.github.taspdjl.plan.PlanValidator;
import io.github.taspdjl.plan.Planner;
import io.github.taspdjl.plan.ProblemSize;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.plan.Step;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.plan.Transfer;
import io.github.taspdjl.plan.decompose.HamiltonianCycle;
import io.github.taspdjl.topology.Topology;
import io.github.taspdjl.topology.TopologyPresets;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code tasp plan}: builds a plan for N ranks (on one node, every pair linked; or on U nodes joined by
 * one NIC rail per GPU; or on a named preset) and prints the cycles, a per-step table and the validator's
 * verdict, or the plan as JSON.
 */
@Command(name = "plan", mixinStandardHelpOptions = true,
        description = {"Build a sequence-parallel attention plan and print its cycles, steps and the validator's verdict.",
            "Without --preset the topology is N ranks with every pair linked, split over U nodes joined"
                    + " rail by rail (400 Gb/s NIC per GPU) when --nodes is given."})
public final class PlanCommand implements Callable<Integer> {

    @Spec CommandSpec spec;

    @Option(names = "--gpus", description = "Number of ranks in total (at least 1).")
    Integer gpus;

    @Option(names = "--nodes", defaultValue = "1", description = "Number of nodes the ranks are split over (default: ${DEFAULT-VALUE}).")
    int nodes;

    @Option(names = "--preset", description = "Plan for a named topology instead: ${COMPLETION-CANDIDATES}.",
            completionCandidates = SimulateCommand.PresetNames.class)
    String preset;

    @Option(names = "--strategy", defaultValue = "tasp",
            description = "ring|zigzag|tasp|tasp-causal|tasp-hier|direct|ulysses|hybrid|auto (default: ${DEFAULT-VALUE}).")
    String strategy;

    @Option(names = "--heads", defaultValue = "32", description = "Query heads: AUTO, ulysses and hybrid check that they"
            + " divide among the Ulysses degree (default: ${DEFAULT-VALUE}).")
    int heads;

    @Option(names = "--kv-heads", defaultValue = "8", description = "Key/value heads (default: ${DEFAULT-VALUE}).")
    int kvHeads;

    @Option(names = "--ulysses-degree", paramLabel = "U", description = "With --strategy hybrid: ranks per all-to-all"
            + " group (2 <= U < N, dividing N); default: the degree the cost model predicts fastest.")
    Integer ulyssesDegree;

    @Option(names = "--inner", defaultValue = "tasp", description = "With --ulysses-degree: the strategy over the N/U ranks"
            + " of a head subset (default: ${DEFAULT-VALUE}).")
    String inner;

    @Option(names = "--causal", description = "Causal mask (zigzag layout).")
    boolean causal;

    @Option(names = "--seq", defaultValue = "131072", description = "Sequence length AUTO plans for (default: ${DEFAULT-VALUE}).")
    long seq;

    @Option(names = "--json", description = "Print the plan as JSON.")
    boolean json;

    @Option(names = "--summary", description = "Print only the plan's shape, its size, how long building and validating"
            + " took, and the validator's verdict (for large world sizes).")
    boolean summary;

    @Option(names = "--programs", paramLabel = "FILE",
            description = "Also write each rank's lowered program and the backward's return map for --seq tokens "
                    + "(what the native executor runs) as JSON, for harnesses without Java (gpu/check_attention.py).")
    java.nio.file.Path programs;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try {
            Topology topology = topology();
            Strategy s = Strategy.fromName(strategy);
            Planner.DEFAULT_PROBLEM.withSeqLen(seq); // checks the length
            ProblemSize problem = new ProblemSize(Planner.DEFAULT_PROBLEM.batch(), seq, heads, kvHeads,
                    Planner.DEFAULT_PROBLEM.headDim(), Planner.DEFAULT_PROBLEM.dtypeBytes());
            long t0 = System.nanoTime();
            Plan plan;
            if (ulyssesDegree != null) {
                if (s != Strategy.HYBRID) {
                    throw new IllegalArgumentException("--ulysses-degree goes with --strategy hybrid");
                }
                plan = Planner.hybrid(topology, ulyssesDegree, Strategy.fromName(inner), causal);
                plan.headParallel().requireHeads(heads, kvHeads);
            } else {
                plan = Planner.plan(topology, s, causal, problem);
            }
            long t1 = System.nanoTime();
            PlanValidator.Verdict verdict = PlanValidator.validate(plan);
            long t2 = System.nanoTime();
            if (json) {
                out.println(PlanJson.toJson(plan));
            } else if (summary) {
                long transfers = plan.steps().stream().mapToLong(st -> st.transfers().size()).sum();
                long tasks = plan.steps().stream().mapToLong(st -> st.compute().size()).sum();
                out.printf("plan: %s, %d rank(s), %s mask, layout %s%n", plan.strategy().cliName(), plan.worldSize(),
                        plan.causal() ? "causal" : "full", plan.layout());
                for (String note : plan.notes()) {
                    out.printf("note: %s%n", note);
                }
                out.printf(java.util.Locale.ROOT, "cycles: %d, steps: %d, transfers: %,d, attention tasks: %,d%n",
                        plan.cycles().size(), plan.steps().size(), transfers, tasks);
                out.printf(java.util.Locale.ROOT, "built and validated in %.2f s (the planner validates too), validated again in %.2f s%n",
                        (t1 - t0) / 1e9, (t2 - t1) / 1e9);
                out.printf("validator: %s%n", verdict);
            } else if (plan.headParallel() != null) {
                printHeadParallel(out, topology, plan, verdict, problem);
            } else {
                print(out, topology, plan, verdict);
            }
            if (programs != null) {
                writePrograms(plan, json ? err : out); // stdout stays pure JSON under --json
            }
            out.flush();
            return verdict.valid() ? 0 : 1;
        } catch (IllegalArgumentException | IllegalStateException e) {
            err.println("tasp plan: " + e.getMessage());
            err.flush();
            return 2;
        }
    }

    /**
     * Writes the programs file and says on {@code note} what it holds. A token-chunk plan: each rank's
     * program and return map over its shard. A hybrid: its inner plan's programs and return maps lifted to
     * world ranks (what each rank runs between the all-to-alls over heads), and under "headParallel" each
     * rank's group, member, heads and the tokens its program runs over. Ulysses: no programs (after the
     * all-to-all each rank attends over the whole sequence of its heads on its own), only the shards and
     * "headParallel".
     */
    private void writePrograms(Plan plan, PrintWriter note) {
        com.google.gson.Gson gson = new com.google.gson.Gson();
        com.google.gson.JsonObject o = new com.google.gson.JsonObject();
        o.addProperty("worldSize", plan.worldSize());
        o.addProperty("strategy", plan.strategy().cliName());
        o.addProperty("causal", causal);
        o.addProperty("seqLen", seq);
        o.addProperty("layout", plan.layout().kind().name().toLowerCase(java.util.Locale.ROOT));
        // Each rank's shard: its blocks' [start, end) token ranges of the full sequence, in order.
        o.add("shards", gson.toJsonTree(ranges(plan.layout(), plan.worldSize(), r -> r)));
        HeadParallel hp = plan.headParallel();
        String what;
        if (hp != null && hp.inner().worldSize() == 1) {
            what = "no programs (ulysses attends locally: after the all-to-all over heads each rank holds the whole"
                    + " sequence of its heads), only the shards and each rank's heads";
            o.addProperty("note", what);
        } else {
            o.add("programs", gson.toJsonTree(io.github.taspdjl.runtime.RankProgram.programsFor(plan, seq, null)));
            // The backward's return maps (native/src/executor_backward.h), one per rank.
            o.add("returnMaps", gson.toJsonTree(io.github.taspdjl.runtime.RankProgram.returnMapsFor(plan, seq)));
            what = hp == null ? "each rank's program and return map"
                    : "the inner " + hp.inner().strategy().cliName() + " plan's programs and return maps lifted to the "
                            + plan.worldSize() + " world ranks (each runs over the tokens of its group's inner rank, "
                            + "for its member's heads, between the all-to-alls over heads)";
        }
        if (hp != null) {
            o.add("headParallel", headParallelJson(hp, gson));
        }
        try {
            java.nio.file.Files.writeString(programs, o.toString());
        } catch (java.io.IOException e) {
            throw new IllegalStateException("could not write " + programs + ": " + e.getMessage(), e);
        }
        note.printf("programs: %s: %s%n", programs, what);
    }

    /**
     * Per world rank: its group and member, the query and key/value heads it attends with, and the tokens it
     * holds between the all-to-alls (its group's inner rank's shard; for Ulysses the whole sequence).
     */
    private com.google.gson.JsonObject headParallelJson(HeadParallel hp, com.google.gson.Gson gson) {
        com.google.gson.JsonObject o = new com.google.gson.JsonObject();
        o.addProperty("degree", hp.degree());
        o.addProperty("inner", hp.inner().strategy().cliName());
        o.addProperty("innerWorldSize", hp.inner().worldSize());
        o.addProperty("heads", heads);
        o.addProperty("kvHeads", kvHeads);
        long[][][] tokens = ranges(hp.inner().layout(), hp.worldSize(), hp::groupOf);
        int per = hp.queryHeadsPerMember(heads);
        com.google.gson.JsonArray ranks = new com.google.gson.JsonArray();
        for (int r = 0; r < hp.worldSize(); r++) {
            int j = hp.memberOf(r);
            com.google.gson.JsonObject rank = new com.google.gson.JsonObject();
            rank.addProperty("group", hp.groupOf(r));
            rank.addProperty("member", j);
            rank.add("queryHeads", gson.toJsonTree(new int[] {j * per, (j + 1) * per}));
            rank.add("kvHeads", gson.toJsonTree(hp.kvHeads(j, heads, kvHeads)));
            rank.addProperty("kvExpanded", !hp.uniform(j, heads, kvHeads));
            rank.add("tokens", gson.toJsonTree(tokens[r]));
            ranks.add(rank);
        }
        o.add("ranks", ranks);
        return o;
    }

    /** For each of {@code n} ranks, the [start, end) token ranges of {@code layout}'s rank {@code of(r)}, in order. */
    private long[][][] ranges(SequenceLayout layout, int n, java.util.function.IntUnaryOperator of) {
        long[][][] out = new long[n][][];
        for (int r = 0; r < n; r++) {
            int[] blocks = layout.blocksOfRank(of.applyAsInt(r));
            out[r] = new long[blocks.length][];
            for (int k = 0; k < blocks.length; k++) {
                out[r][k] = layout.blockRange(blocks[k], seq);
            }
        }
        return out;
    }

    private Topology topology() {
        if (preset != null) {
            if (gpus != null) {
                throw new IllegalArgumentException("give either --gpus or --preset, not both");
            }
            return TopologyPresets.get(preset);
        }
        if (gpus == null) {
            throw new IllegalArgumentException("--gpus N (or --preset NAME) is required");
        }
        return uniform(gpus, nodes);
    }

    /** NIC bandwidth between nodes, GB/s per direction: one 400 Gb/s NIC per GPU. */
    static final double NIC_GBPS = 50.0;

    /**
     * {@code gpus} ranks over {@code nodes} nodes: every pair on a node linked (in-process links), one NIC
     * rail per GPU between nodes.
     */
    static Topology uniform(int gpus, int nodes) {
        if (gpus < 1) {
            throw new IllegalArgumentException("--gpus must be at least 1, got " + gpus);
        }
        if (nodes < 1 || gpus % nodes != 0) {
            throw new IllegalArgumentException("--nodes must be at least 1 and divide --gpus " + gpus + ", got " + nodes);
        }
        Topology node = Topology.virtualCpu(gpus / nodes);
        return nodes == 1 ? node : Topology.cluster(node, nodes, NIC_GBPS);
    }

    static void print(PrintWriter out, Topology topology, Plan plan, PlanValidator.Verdict verdict) {
        out.printf("plan: %s, %d rank(s), %s mask, layout %s%n", plan.strategy().cliName(), plan.worldSize(),
                plan.causal() ? "causal" : "full", plan.layout());
        out.printf("topology: %s%n", topology);
        for (String note : plan.notes()) {
            out.printf("note: %s%n", note);
        }
        out.printf("cycles: %d%n", plan.cycles().size());
        for (int j = 0; j < plan.cycles().size(); j++) {
            HamiltonianCycle c = plan.cycles().get(j);
            StringBuilder sb = new StringBuilder();
            for (int r : c.order()) {
                sb.append(r).append(' ');
            }
            out.printf("  C%d (chunk %d): %s-> %d%n", j, j, sb, c.order()[0]);
        }
        out.printf("steps: %d (receive buffers: 2 x %d chunk(s); Lk = own chunk k, L* = own shard, Bb.p = buffer b position p)%n",
                plan.steps().size(), plan.receiveBufferChunks());
        for (Step step : plan.steps()) {
            out.printf("step %d: %d transfer(s), %d attention task(s)%n", step.index(), step.transfers().size(),
                    step.compute().size());
            // one pass over the step's transfers and tasks, filed by rank (not one pass per rank)
            List<List<String>> sends = perRank(plan.worldSize());
            List<List<String>> recvs = perRank(plan.worldSize());
            List<List<String>> tasks = perRank(plan.worldSize());
            for (Transfer t : step.transfers()) {
                sends.get(t.src()).add("->" + t.dst() + " " + t.chunk() + " " + t.sendSlot());
                recvs.get(t.dst()).add("<-" + t.src() + " " + t.chunk() + " " + t.recvSlot());
            }
            for (AttentionTask a : step.compute()) {
                tasks.get(a.rank()).add("q" + a.queryBlock() + "*k" + a.kvBlock() + a.chunk() + (a.mask() == Mask.CAUSAL ? "c" : ""));
            }
            for (int r = 0; r < plan.worldSize(); r++) {
                out.printf("  r%-3d send [%s] recv [%s] attn [%s]%n", r, String.join(", ", sends.get(r)),
                        String.join(", ", recvs.get(r)), String.join(" ", tasks.get(r)));
            }
        }
        out.printf("validator: %s%n", verdict);
    }

    /** A Ulysses or hybrid plan: the constraint, which heads each member gets, then the inner plan. */
    static void printHeadParallel(PrintWriter out, Topology topology, Plan plan, PlanValidator.Verdict verdict,
            ProblemSize problem) {
        HeadParallel hp = plan.headParallel();
        int u = hp.degree();
        int m = hp.inner().worldSize();
        out.printf("plan: %s, %d rank(s), %s mask, layout %s%n", hp.label(), plan.worldSize(),
                plan.causal() ? "causal" : "full", plan.layout());
        out.printf("topology: %s%n", topology);
        for (String note : plan.notes()) {
            out.printf("note: %s%n", note);
        }
        out.printf("constraint: %s%n", hp.constraint());
        out.printf("groups: %d of %d consecutive ranks; all-to-all of q, k, v in each group before the attention, of the"
                + " output and LSE after (no overlap with the attention)%n", m, u);
        out.printf(java.util.Locale.ROOT, "heads (%d query, %d key/value; key/value replication %.2fx):%n",
                problem.heads(), problem.kvHeads(), hp.kvReplication(problem.heads(), problem.kvHeads()));
        int per = hp.queryHeadsPerMember(problem.heads());
        for (int j = 0; j < u; j++) {
            int[] kv = hp.kvHeads(j, problem.heads(), problem.kvHeads());
            StringBuilder ranks = new StringBuilder();
            for (int g = 0; g < m; g++) {
                ranks.append(g == 0 ? "" : ",").append(hp.rank(g, j));
            }
            out.printf("  member %d (ranks %s): query heads [%d, %d), key/value heads [%d, %d)%s%n", j, ranks, j * per,
                    (j + 1) * per, kv[0], kv[1], hp.uniform(j, problem.heads(), problem.kvHeads()) ? ""
                            : " (expanded to one per query head before the attention)");
        }
        if (m > 1) {
            out.printf("inner plan over the %d ranks of each head subset (inner rank g = group g):%n", m);
            int[] members = new int[m];
            for (int g = 0; g < m; g++) {
                members[g] = hp.rank(g, 0);
            }
            print(out, topology.restrictedTo(members), hp.inner(), PlanValidator.validate(hp.inner()));
        } else {
            out.println("attention: each rank over the whole sequence of its heads (causal by global position)");
        }
        out.printf("validator: %s%n", verdict);
    }

    private static List<List<String>> perRank(int n) {
        List<List<String>> out = new ArrayList<>(n);
        for (int r = 0; r < n; r++) {
            out.add(new ArrayList<>());
        }
        return out;
    }
}
