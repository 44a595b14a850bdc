package io.github.taspdjl.plan;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonParseException;
import io.github.taspdjl.plan.decompose.HamiltonianCycle;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The JSON form of a plan (Gson). Top level: {@code format}, {@code version}, {@code worldSize},
 * {@code strategy} (CLI name), {@code causal}, {@code layout} ({@code kind}, {@code blockCount},
 * {@code chunksPerRank}, {@code blocksOfRank}), {@code cycles} (lists of ranks), {@code receiveBufferChunks},
 * {@code notes}, and {@code steps}, each with {@code step}, {@code transfers} ({@code src}, {@code dst},
 * {@code chunk} as {@code owner} and {@code index}, {@code sendSlot}, {@code recvSlot}) and {@code compute}
 * ({@code rank}, {@code queryBlock}, {@code chunk}, {@code kvBlock}, {@code slot}, {@code mask}). A slot is
 * {@code buffer} (-1 = local shard) and {@code position}; chunk index -1 is the owner's whole shard.
 * Head-parallel plans (ulysses, hybrid) have no steps of their own and a {@code headParallel} object:
 * {@code degree} (ranks per all-to-all group) and {@code inner} (the inner plan, in this form).
 */
public final class PlanJson {

    static final String FORMAT = "tasp-plan";
    private static final Gson GSON = new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create();

    private PlanJson() {}

    /** The plan as pretty-printed JSON. */
    public static String toJson(Plan plan) {
        return GSON.toJson(toDto(plan));
    }

    /**
     * Reads a plan from JSON.
     *
     * @throws IllegalArgumentException when the text is not a plan of this format
     */
    public static Plan fromJson(String json) {
        PlanDto d;
        try {
            d = GSON.fromJson(json, PlanDto.class);
        } catch (JsonParseException e) {
            throw new IllegalArgumentException("not a plan: " + e.getMessage(), e);
        }
        return fromDto(d);
    }

    private static Plan fromDto(PlanDto d) {
        if (d == null || !FORMAT.equals(d.format) || d.version != PlanCodec.VERSION || d.layout == null || d.steps == null) {
            throw new IllegalArgumentException("not a " + FORMAT + " version " + PlanCodec.VERSION + " document");
        }
        present(d.layout.kind, "layout.kind");
        present(d.strategy, "strategy");
        if (d.headParallel != null) {
            present(d.headParallel.inner, "headParallel.inner");
            return Plan.headParallel(Strategy.fromName(d.strategy), d.causal,
                    new HeadParallel(d.headParallel.degree, fromDto(d.headParallel.inner)), d.notes == null ? List.of() : d.notes);
        }
        SequenceLayout layout = new SequenceLayout(SequenceLayout.Kind.valueOf(d.layout.kind.toUpperCase(Locale.ROOT)),
                d.worldSize, d.layout.chunksPerRank);
        List<HamiltonianCycle> cycles = new ArrayList<>();
        for (int[] c : d.cycles == null ? List.<int[]>of() : d.cycles) {
            cycles.add(new HamiltonianCycle(c));
        }
        List<Step> steps = new ArrayList<>();
        for (int i = 0; i < d.steps.size(); i++) {
            StepDto s = d.steps.get(i);
            if (s == null || s.transfers == null || s.compute == null) {
                throw new IllegalArgumentException("not a plan: steps[" + i + "] needs \"transfers\" and \"compute\" lists"
                        + (s == null ? " (the step is null)" : s.transfers == null ? " (\"transfers\" is null)"
                        : " (\"compute\" is null)"));
            }
            List<Transfer> transfers = new ArrayList<>();
            for (TransferDto t : s.transfers) {
                present(t, "steps[" + i + "].transfers[" + transfers.size() + "]");
                transfers.add(new Transfer(t.src, t.dst, chunk(t.chunk), slot(t.sendSlot), slot(t.recvSlot)));
            }
            List<AttentionTask> compute = new ArrayList<>();
            for (TaskDto a : s.compute) {
                present(a, "steps[" + i + "].compute[" + compute.size() + "]");
                present(a.mask, "steps[" + i + "].compute[" + compute.size() + "].mask");
                compute.add(new AttentionTask(a.rank, a.queryBlock, chunk(a.chunk), a.kvBlock, slot(a.slot),
                        Mask.valueOf(a.mask.toUpperCase(Locale.ROOT))));
            }
            steps.add(new Step(s.step, transfers, compute));
        }
        return new Plan(d.worldSize, Strategy.fromName(d.strategy), d.causal, layout, cycles, steps,
                d.notes == null ? List.of() : d.notes);
    }

    private static void present(Object value, String field) {
        if (value == null) {
            throw new IllegalArgumentException("not a plan: " + field + " is missing or null");
        }
    }

    private static ChunkId chunk(ChunkDto c) {
        return c == null ? null : new ChunkId(c.owner, c.index);
    }

    private static Slot slot(SlotDto s) {
        return s == null ? null : new Slot(s.buffer, s.position);
    }

    private static ChunkDto chunk(ChunkId c) {
        ChunkDto d = new ChunkDto();
        d.owner = c.owner();
        d.index = c.index();
        return d;
    }

    private static SlotDto slot(Slot s) {
        if (s == null) {
            return null;
        }
        SlotDto d = new SlotDto();
        d.buffer = s.buffer();
        d.position = s.position();
        return d;
    }

    private static PlanDto toDto(Plan plan) {
        PlanDto d = new PlanDto();
        d.format = FORMAT;
        d.version = PlanCodec.VERSION;
        d.worldSize = plan.worldSize();
        d.strategy = plan.strategy().cliName();
        d.causal = plan.causal();
        d.layout = new LayoutDto();
        d.layout.kind = plan.layout().kind().name().toLowerCase(Locale.ROOT);
        d.layout.blockCount = plan.layout().blockCount();
        d.layout.groupSize = plan.layout().groupSize();
        if (plan.headParallel() != null) {
            d.headParallel = new HeadParallelDto();
            d.headParallel.degree = plan.headParallel().degree();
            d.headParallel.inner = toDto(plan.headParallel().inner());
        }
        d.layout.chunksPerRank = plan.layout().chunksPerRank();
        d.layout.blocksOfRank = new int[plan.worldSize()][];
        for (int r = 0; r < plan.worldSize(); r++) {
            d.layout.blocksOfRank[r] = plan.layout().blocksOfRank(r);
        }
        d.cycles = new ArrayList<>();
        for (HamiltonianCycle c : plan.cycles()) {
            d.cycles.add(c.order());
        }
        d.receiveBufferChunks = plan.receiveBufferChunks();
        d.notes = plan.notes();
        d.steps = new ArrayList<>();
        for (Step s : plan.steps()) {
            StepDto sd = new StepDto();
            sd.step = s.index();
            for (Transfer t : s.transfers()) {
                TransferDto td = new TransferDto();
                td.src = t.src();
                td.dst = t.dst();
                td.chunk = chunk(t.chunk());
                td.sendSlot = slot(t.sendSlot());
                td.recvSlot = slot(t.recvSlot());
                sd.transfers.add(td);
            }
            for (AttentionTask a : s.compute()) {
                TaskDto ad = new TaskDto();
                ad.rank = a.rank();
                ad.queryBlock = a.queryBlock();
                ad.chunk = chunk(a.chunk());
                ad.kvBlock = a.kvBlock();
                ad.slot = slot(a.slot());
                ad.mask = a.mask().name().toLowerCase(Locale.ROOT);
                sd.compute.add(ad);
            }
            d.steps.add(sd);
        }
        return d;
    }

    // Gson data classes: field names are the JSON names.
    @SuppressWarnings("unused")
    private static final class PlanDto {
        String format;
        int version;
        int worldSize;
        String strategy;
        boolean causal;
        LayoutDto layout;
        List<int[]> cycles;
        int receiveBufferChunks;
        List<String> notes;
        List<StepDto> steps;
        HeadParallelDto headParallel;
    }

    @SuppressWarnings("unused")
    private static final class HeadParallelDto {
        int degree;
        PlanDto inner;
    }

    @SuppressWarnings("unused")
    private static final class LayoutDto {
        String kind;
        int blockCount;
        int chunksPerRank;
        int groupSize;
        int[][] blocksOfRank;
    }

    private static final class StepDto {
        int step;
        List<TransferDto> transfers = new ArrayList<>();
        List<TaskDto> compute = new ArrayList<>();
    }

    private static final class TransferDto {
        int src;
        int dst;
        ChunkDto chunk;
        SlotDto sendSlot;
        SlotDto recvSlot;
    }

    private static final class TaskDto {
        int rank;
        int queryBlock;
        ChunkDto chunk;
        int kvBlock;
        SlotDto slot;
        String mask;
    }

    private static final class ChunkDto {
        int owner;
        int index;
    }

    private static final class SlotDto {
        int buffer;
        int position;
    }
}
