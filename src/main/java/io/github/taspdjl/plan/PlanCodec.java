package io.github.taspdjl.plan;

import io.github.taspdjl.plan.decompose.HamiltonianCycle;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The flat, versioned {@code int[]} form of a plan that the native executor reads without JSON. Layout
 * (version 1; docs/PLANS.md has the same with examples), all values 32-bit signed ints:
 *
 * <pre>
 * header, HEADER_INTS = 16 ints:
 *   [0] magic 0x54415350 ("TASP")   [1] version = 1          [2] header ints = 16   [3] total ints
 *   [4] world size n                [5] strategy code         [6] causal 0/1         [7] layout code (0 contiguous, 1 zigzag)
 *   [8] block count B               [9] blocks per rank bpr   [10] chunks per rank k [11] receive buffers (2)
 *   [12] receive buffer capacity, in chunks                   [13] cycle count c     [14] step count S   [15] 0
 * block table: n * bpr ints, rank r's blocks at [16 + r*bpr ...]
 * cycles: c * n ints, cycle j's ranks in order
 * record index: S * n ints, offset (from the start of the array) of step s, rank r's record at [s*n + r]
 * records, step by step, rank by rank:
 *   sendCount, recvCount, taskCount,
 *   sendCount x {dst, chunkOwner, chunkIndex, buffer, position}      (buffer -1 = local shard)
 *   recvCount x {src, chunkOwner, chunkIndex, buffer, position}
 *   taskCount x {queryBlock, chunkOwner, chunkIndex, kvBlock, buffer, position, mask}
 *                                                  (chunkIndex -1 = whole shard; mask 0 full, 1 causal)
 * trailer: 1 int, FNV-1a over all previous ints: h = 0x811C9DC5; for each x: h = (h ^ x) * 0x01000193 (mod 2^32)
 * </pre>
 */
public final class PlanCodec {

    public static final int MAGIC = 0x54415350;
    public static final int VERSION = 1;
    public static final int HEADER_INTS = 16;
    static final int SEND_INTS = 5;
    static final int RECV_INTS = 5;
    static final int TASK_INTS = 7;

    private PlanCodec() {}

    /** The flat form of a plan. */
    public static int[] toFlat(Plan plan) {
        if (plan.headParallel() != null) {
            throw new IllegalArgumentException(plan.strategy().cliName() + " plans move heads and have no flat form version "
                    + VERSION + "; store them as JSON (PlanJson)");
        }
        int n = plan.worldSize();
        SequenceLayout layout = plan.layout();
        IntList out = new IntList();
        out.add(MAGIC, VERSION, HEADER_INTS, 0, n, plan.strategy().code(), plan.causal() ? 1 : 0, layout.kind().code(),
                layout.blockCount(), layout.blocksPerRank(), layout.chunksPerRank(), Slot.RECEIVE_BUFFERS,
                plan.receiveBufferChunks(), plan.cycles().size(), plan.steps().size(), 0);
        for (int r = 0; r < n; r++) {
            out.add(layout.blocksOfRank(r));
        }
        for (HamiltonianCycle c : plan.cycles()) {
            out.add(c.order());
        }
        int index = out.size();
        out.add(new int[plan.steps().size() * n]);
        for (Step step : plan.steps()) {
            for (int r = 0; r < n; r++) {
                out.set(index + step.index() * n + r, out.size());
                List<Transfer> sends = new ArrayList<>();
                List<Transfer> recvs = new ArrayList<>();
                List<AttentionTask> tasks = new ArrayList<>();
                for (Transfer t : step.transfers()) {
                    if (t.src() == r && t.sendSlot() != null) {
                        sends.add(t);
                    }
                    if (t.dst() == r && t.recvSlot() != null) {
                        recvs.add(t);
                    }
                }
                for (AttentionTask a : step.compute()) {
                    if (a.rank() == r) {
                        tasks.add(a);
                    }
                }
                out.add(sends.size(), recvs.size(), tasks.size());
                for (Transfer t : sends) {
                    out.add(t.dst(), t.chunk().owner(), t.chunk().index(), t.sendSlot().buffer(), t.sendSlot().position());
                }
                for (Transfer t : recvs) {
                    out.add(t.src(), t.chunk().owner(), t.chunk().index(), t.recvSlot().buffer(), t.recvSlot().position());
                }
                for (AttentionTask a : tasks) {
                    out.add(a.queryBlock(), a.chunk().owner(), a.chunk().index(), a.kvBlock(), a.slot().buffer(),
                            a.slot().position(), a.mask().code());
                }
            }
        }
        out.set(3, out.size() + 1);
        out.add(checksum(out.toArray(), out.size()));
        return out.toArray();
    }

    /**
     * Reads a flat plan back. Sends and receives are paired by step, ranks and chunk; one without its
     * partner becomes a {@link Transfer} with a null slot, which the validator rejects. Attention tasks come
     * back grouped by rank.
     *
     * @throws IllegalArgumentException when the array is not a flat plan of a known version, or is cut short
     *     or corrupted (checksum)
     */
    public static Plan fromFlat(int[] flat) {
        if (flat == null || flat.length < HEADER_INTS + 1) {
            throw new IllegalArgumentException("flat plan too short: " + (flat == null ? "null" : flat.length + " ints"));
        }
        if (flat[0] != MAGIC) {
            throw new IllegalArgumentException(String.format("flat plan magic is 0x%08X, expected 0x%08X", flat[0], MAGIC));
        }
        if (flat[1] != VERSION) {
            throw new IllegalArgumentException("flat plan version " + flat[1] + " is not supported (this reader: " + VERSION + ")");
        }
        if (flat[3] != flat.length) {
            throw new IllegalArgumentException("flat plan says " + flat[3] + " ints but has " + flat.length);
        }
        int sum = checksum(flat, flat.length - 1);
        if (sum != flat[flat.length - 1]) {
            throw new IllegalArgumentException(String.format("flat plan checksum 0x%08X does not match its content 0x%08X",
                    flat[flat.length - 1], sum));
        }
        try {
            return decode(flat);
        } catch (ArrayIndexOutOfBoundsException e) {
            throw new IllegalArgumentException("flat plan is inconsistent: " + e.getMessage(), e);
        }
    }

    private static Plan decode(int[] f) {
        int n = f[4];
        Strategy strategy = Strategy.fromCode(f[5]);
        boolean causal = f[6] != 0;
        SequenceLayout layout = new SequenceLayout(SequenceLayout.Kind.fromCode(f[7]), n, f[10]);
        if (layout.blockCount() != f[8] || layout.blocksPerRank() != f[9]) {
            throw new IllegalArgumentException("flat plan block count " + f[8] + "/" + f[9] + " does not match layout " + layout);
        }
        int cycleCount = f[13];
        int stepCount = f[14];
        int pos = f[2] + n * layout.blocksPerRank();
        List<HamiltonianCycle> cycles = new ArrayList<>();
        for (int j = 0; j < cycleCount; j++) {
            cycles.add(new HamiltonianCycle(Arrays.copyOfRange(f, pos, pos + n)));
            pos += n;
        }
        int index = pos;
        List<Step> steps = new ArrayList<>();
        for (int s = 0; s < stepCount; s++) {
            Map<List<Integer>, Slot[]> pairs = new LinkedHashMap<>(); // (src, dst, owner, index) -> {send, recv}
            List<AttentionTask> tasks = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                int p = f[index + s * n + r];
                int sends = f[p];
                int recvs = f[p + 1];
                int taskCount = f[p + 2];
                p += 3;
                for (int i = 0; i < sends; i++, p += SEND_INTS) {
                    pairs.computeIfAbsent(List.of(r, f[p], f[p + 1], f[p + 2]), k -> new Slot[2])[0] = new Slot(f[p + 3], f[p + 4]);
                }
                for (int i = 0; i < recvs; i++, p += RECV_INTS) {
                    pairs.computeIfAbsent(List.of(f[p], r, f[p + 1], f[p + 2]), k -> new Slot[2])[1] = new Slot(f[p + 3], f[p + 4]);
                }
                for (int i = 0; i < taskCount; i++, p += TASK_INTS) {
                    tasks.add(new AttentionTask(r, f[p], new ChunkId(f[p + 1], f[p + 2]), f[p + 3], new Slot(f[p + 4], f[p + 5]),
                            Mask.fromCode(f[p + 6])));
                }
            }
            List<Transfer> transfers = new ArrayList<>();
            pairs.forEach((k, v) -> transfers.add(new Transfer(k.get(0), k.get(1), new ChunkId(k.get(2), k.get(3)), v[0], v[1])));
            transfers.sort(Comparator.comparingInt(Transfer::src).thenComparingInt(Transfer::dst)
                    .thenComparingInt(t -> t.chunk().owner()).thenComparingInt(t -> t.chunk().index()));
            steps.add(new Step(s, transfers, tasks));
        }
        return new Plan(n, strategy, causal, layout, cycles, steps, List.of());
    }

    /** 32-bit FNV-1a over the first {@code length} ints, each taken as one value. */
    static int checksum(int[] a, int length) {
        int h = 0x811C9DC5;
        for (int i = 0; i < length; i++) {
            h = (h ^ a[i]) * 0x01000193;
        }
        return h;
    }

    /** A growable int array. */
    private static final class IntList {
        private int[] a = new int[256];
        private int size;

        void add(int... values) {
            if (size + values.length > a.length) {
                a = Arrays.copyOf(a, Math.max(a.length * 2, size + values.length));
            }
            System.arraycopy(values, 0, a, size, values.length);
            size += values.length;
        }

        void set(int i, int value) {
            a[i] = value;
        }

        int size() {
            return size;
        }

        int[] toArray() {
            return Arrays.copyOf(a, size);
        }
    }
}
