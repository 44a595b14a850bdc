package io.github.taspdjl.runtime;

import io.github.taspdjl.plan.AttentionTask;
import io.github.taspdjl.plan.ChunkId;
import io.github.taspdjl.plan.HeadParallel;
import io.github.taspdjl.plan.Mask;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.plan.Slot;
import io.github.taspdjl.plan.Step;
import io.github.taspdjl.plan.Transfer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Lowers a {@link Plan} for one sequence length into per-rank programs for the native executor:
 * every chunk, slot and block becomes a token range of a rank's buffers, so the executor only
 * copies token ranges and runs attention on them. The word layout is documented in {@code
 * native/src/executor.h}.
 *
 * <p>Buffers of a rank (token-major): 2 = its own shard (its blocks in layout order), 0 and 1 = the
 * receive buffers. Everything a rank receives in step t lands in buffer t % 2, packed in the plan's
 * position order, so a step's chunks are adjacent and full-mask tasks over adjacent ranges are fused
 * into one attention call.
 */
public final class RankProgram {

    static final long MAGIC = 0x7A5B0001L;
    static final long RETURN_MAP_MAGIC = 0x7A5B0B01L;
    static final long VERSION = 1;
    static final long RETURN_MAP_VERSION = 3;
    /** A received return adds into the receiver's own key gradients. */
    static final long RETURN_TO_KEYS = 0;
    /** A received return adds into the accumulator the receiver sends on in the next step. */
    static final long RETURN_TO_FORWARD = 1;
    static final int OWN = 2;

    private final Plan plan;
    private final SequenceLayout layout;
    private final long seqLen;
    /** Documents packed in the sequence (attention stays inside each), or null for one sequence. */
    private final PackedSequence documents;
    private final int n;
    /** localStart[r][k]: first local token of the k-th block of rank r. */
    private final long[][] localStart;
    /** recvStart[r][t]: position -> first token in buffer t % 2 of what rank r receives in step t. */
    private final List<List<Map<Integer, Long>>> recvStart = new ArrayList<>();
    /** recvChunk[r][t]: position -> the chunk that landed there. */
    private final List<List<Map<Integer, ChunkId>>> recvChunk = new ArrayList<>();
    private final long[] capacity;

    private RankProgram(Plan plan, long seqLen, PackedSequence documents) {
        requireTokenChunks(plan);
        this.plan = plan;
        this.layout = plan.layout();
        this.seqLen = seqLen;
        this.documents = documents;
        if (documents != null) {
            documents.requireLength(seqLen);
        }
        this.n = plan.worldSize();
        if (seqLen < layout.minimumLength()) {
            throw new IllegalArgumentException("sequence length " + seqLen + " is shorter than the "
                    + layout.minimumLength() + " tokens the " + plan.strategy() + " plan over " + n
                    + " ranks needs (one token per block piece)");
        }
        localStart = new long[n][];
        for (int r = 0; r < n; r++) {
            int[] blocks = layout.blocksOfRank(r);
            localStart[r] = new long[blocks.length];
            long at = 0;
            for (int k = 0; k < blocks.length; k++) {
                localStart[r][k] = at;
                long[] range = layout.blockRange(blocks[k], seqLen);
                at += range[1] - range[0];
            }
        }
        capacity = new long[n];
        for (int r = 0; r < n; r++) {
            List<Map<Integer, Long>> starts = new ArrayList<>();
            List<Map<Integer, ChunkId>> chunks = new ArrayList<>();
            for (Step step : plan.steps()) {
                List<Transfer> in = new ArrayList<>();
                for (Transfer x : step.transfers()) {
                    if (x.dst() == r) {
                        in.add(x);
                    }
                }
                in.sort(Comparator.comparingInt(x -> x.recvSlot().position()));
                Map<Integer, Long> at = new HashMap<>();
                Map<Integer, ChunkId> what = new HashMap<>();
                long offset = 0;
                for (Transfer x : in) {
                    if (x.recvSlot().buffer() != step.index() % 2) {
                        throw new IllegalStateException("plan receives into buffer " + x.recvSlot().buffer()
                                + " in step " + step.index() + "; the executor expects buffer " + step.index() % 2);
                    }
                    at.put(x.recvSlot().position(), offset);
                    what.put(x.recvSlot().position(), x.chunk());
                    offset += chunkTokens(x.chunk());
                }
                capacity[r] = Math.max(capacity[r], offset);
                starts.add(at);
                chunks.add(what);
            }
            recvStart.add(starts);
            recvChunk.add(chunks);
        }
    }

    /**
     * Throws for plans that move heads (ulysses, hybrid): programs are lowered from token-chunk plans only. A
     * head-parallel plan runs around them (all-to-alls over heads, see {@code HeadParallelForward}); a hybrid's
     * inner attention runs its inner plan's programs lifted to world ranks ({@link #liftAll}).
     */
    public static void requireTokenChunks(Plan plan) {
        if (plan.headParallel() != null) {
            throw new IllegalArgumentException(plan.strategy().cliName() + " moves heads with an all-to-all: only its"
                    + " inner plan lowers to programs (RankProgram.liftAll lifts them to world ranks); lower a strategy"
                    + " that moves token chunks (ring, zigzag, tasp, tasp-causal, tasp-hier, direct, auto)");
        }
    }

    /**
     * The programs of a hybrid's inner attention for every world rank: the inner plan's programs, lowered for
     * this sequence length (and packing), each copied for every member of a Ulysses group and relabeled to
     * world ranks ({@link #lift}). Member j's copy of inner rank g runs as world rank {@code hp.rank(g, j)}, so
     * all copies run together as one run of the world's transport; ranks of different copies exchange nothing.
     *
     * @param documents the packed documents, or null for one sequence
     * @throws IllegalArgumentException for a plan that is not head-parallel
     */
    public static long[][] liftAll(Plan plan, long seqLen, PackedSequence documents) {
        HeadParallel hp = requireHeadParallel(plan);
        long[][] inner = lowerAll(hp.inner(), seqLen, documents);
        long[][] out = new long[hp.worldSize()][];
        for (int r = 0; r < out.length; r++) {
            out[r] = lift(inner[hp.groupOf(r)], hp, hp.memberOf(r));
        }
        return out;
    }

    /** The return maps of {@link #liftAll}'s programs (the inner plan's, relabeled the same way), by world rank. */
    public static long[][] liftReturnMapsAll(Plan plan, long seqLen) {
        HeadParallel hp = requireHeadParallel(plan);
        long[][] inner = returnMapsAll(hp.inner(), seqLen);
        long[][] out = new long[hp.worldSize()][];
        for (int r = 0; r < out.length; r++) {
            out[r] = liftReturnMap(inner[hp.groupOf(r)], hp, hp.memberOf(r));
        }
        return out;
    }

    /**
     * What each rank of a group runs for {@code plan}, by rank: {@link #lowerAll} of a token-chunk plan, {@link
     * #liftAll} of a head-parallel one (for Ulysses, a one-rank inner plan's, which its ranks do not need).
     */
    public static long[][] programsFor(Plan plan, long seqLen, PackedSequence documents) {
        return plan.headParallel() != null ? liftAll(plan, seqLen, documents) : lowerAll(plan, seqLen, documents);
    }

    /** The return maps of {@link #programsFor}'s programs, by rank. */
    public static long[][] returnMapsFor(Plan plan, long seqLen) {
        return plan.headParallel() != null ? liftReturnMapsAll(plan, seqLen) : returnMapsAll(plan, seqLen);
    }

    private static HeadParallel requireHeadParallel(Plan plan) {
        if (plan.headParallel() == null) {
            throw new IllegalArgumentException(plan.strategy().cliName() + " moves token chunks: lower it with lowerAll");
        }
        return plan.headParallel();
    }

    /**
     * Member {@code member}'s copy of an inner rank's program (layout in {@code native/src/executor.h}): the
     * header's rank g becomes world rank {@code hp.rank(g, member)} and its world the world size, and every
     * send's and receive's peer p becomes {@code hp.rank(p, member)}. Token ranges, buffers and tasks stay:
     * each world rank holds exactly the tokens its inner rank holds.
     */
    static long[] lift(long[] program, HeadParallel hp, int member) {
        int m = hp.inner().worldSize();
        if (program.length < 8 || program[0] != MAGIC || program[1] != VERSION || program[3] != m) {
            throw new IllegalArgumentException("not a program of a " + m + "-rank inner plan");
        }
        long[] w = program.clone();
        w[2] = hp.rank(innerRank(w[2], m), member);
        w[3] = hp.worldSize();
        int i = 8;
        for (long s = 0; s < w[4]; s++) {
            fits(w, i + 3L, "program");
            long sends = w[i];
            long recvs = w[i + 1];
            long tasks = w[i + 2];
            i += 3;
            fits(w, i + 6 * sends + 4 * recvs + 6 * tasks, "program");
            for (long x = 0; x < sends; x++, i += 6) { // (peer, src_buffer, src_start, count, dst_buffer, dst_start)
                w[i] = hp.rank(innerRank(w[i], m), member);
            }
            for (long x = 0; x < recvs; x++, i += 4) { // (peer, dst_buffer, dst_start, count)
                w[i] = hp.rank(innerRank(w[i], m), member);
            }
            i += (int) (6 * tasks); // tasks name no rank
        }
        if (i != w.length) {
            throw new IllegalArgumentException("malformed program: " + w.length + " words, its steps end at " + i);
        }
        return w;
    }

    /**
     * Member {@code member}'s copy of an inner rank's return map (layout in {@code
     * native/src/executor_backward.h}): every send's and receive's peer p becomes {@code hp.rank(p, member)}.
     */
    static long[] liftReturnMap(long[] map, HeadParallel hp, int member) {
        int m = hp.inner().worldSize();
        if (map.length < 4 || map[0] != RETURN_MAP_MAGIC || map[1] != RETURN_MAP_VERSION) {
            throw new IllegalArgumentException("not a return map of version " + RETURN_MAP_VERSION);
        }
        long[] w = map.clone();
        int i = 4;
        for (long b = 0; b <= w[2]; b++) {
            fits(w, i + 2L, "return map");
            long sends = w[i];
            long recvs = w[i + 1];
            i += 2;
            fits(w, i + 4 * sends + 5 * recvs, "return map");
            for (long x = 0; x < sends; x++, i += 4) { // (peer, src_start, count, dst_start)
                w[i] = hp.rank(innerRank(w[i], m), member);
            }
            for (long x = 0; x < recvs; x++, i += 5) { // (peer, dst_start, count, kind, start)
                w[i] = hp.rank(innerRank(w[i], m), member);
            }
        }
        if (i != w.length) {
            throw new IllegalArgumentException("malformed return map: " + w.length + " words, its steps end at " + i);
        }
        return w;
    }

    private static void fits(long[] w, long end, String what) {
        if (end > w.length) {
            throw new IllegalArgumentException("malformed " + what + ": " + w.length + " words, needs " + end);
        }
    }

    private static int innerRank(long r, int m) {
        if (r < 0 || r >= m) {
            throw new IllegalArgumentException("inner rank " + r + " outside an inner plan of " + m + " ranks");
        }
        return (int) r;
    }

    /** Programs for every rank of {@code plan} at this sequence length, indexed by rank. */
    public static long[][] lowerAll(Plan plan, long seqLen) {
        return lowerAll(plan, seqLen, null);
    }

    /**
     * Programs for a packed sequence: each task's query and key ranges are cut at the document
     * boundaries and only same-document pieces are kept. A piece of a full task is full; a piece of
     * a causal task (a block against itself) is a causal square on the diagonal; pairs of different
     * documents are skipped. So the executor's task kinds suffice and no document sees another.
     *
     * @param documents the packed documents, or null for one sequence
     */
    public static long[][] lowerAll(Plan plan, long seqLen, PackedSequence documents) {
        RankProgram p = new RankProgram(plan, seqLen, documents);
        long[][] out = new long[p.n][];
        for (int r = 0; r < p.n; r++) {
            out[r] = p.lower(r);
        }
        return out;
    }

    /**
     * The backward's return maps, indexed by rank (format in {@code native/src/executor_backward.h}):
     * per backward step (the forward's steps and one more), the key/value gradient transfers this rank
     * sends and those it receives, each received one added either into its own key gradients or into
     * the accumulator it forwards next.
     *
     * <p>Where a chunk travels as a chain (every rank that received it passes it on to at most one
     * rank, as along ring and TASP cycles), its gradient accumulator trails it one step behind along
     * the same links: the rank that received the chunk in step t computes its share in step t + 1, adds
     * what its predecessor sent and, in step t + 2, sends the sum to the rank it passed the chunk to,
     * or to the owner if it was the last holder (on a Hamiltonian cycle the owner is the next rank).
     * So each step's returns use the links of the forward's step before, link-disjoint where the
     * forward is. Otherwise (a holder passing the chunk to several ranks) every holder sends its share
     * straight to the owner. Per receiver and step, returns are packed in (sender, position) order,
     * the same order on both sides, so every transport pairs them alike.
     */
    public static long[][] returnMapsAll(Plan plan, long seqLen) {
        RankProgram p = new RankProgram(plan, seqLen, null);
        int steps = plan.steps().size();
        // (step, sender, chunk) -> the transfers of that chunk from that sender in that step
        Map<String, List<Transfer>> passes = new HashMap<>();
        for (Step step : plan.steps()) {
            for (Transfer x : step.transfers()) {
                passes.computeIfAbsent(step.index() + "/" + x.src() + "/" + x.chunk(), k -> new ArrayList<>()).add(x);
            }
        }
        java.util.Set<ChunkId> fannedOut = new java.util.HashSet<>();
        for (Map.Entry<String, List<Transfer>> e : passes.entrySet()) {
            Transfer x = e.getValue().get(0);
            if (e.getValue().size() > 1 && x.src() != x.chunk().owner()) {
                fannedOut.add(x.chunk());
            }
        }
        List<List<List<long[]>>> sends = new ArrayList<>(); // [rank][step] -> (peer, src, count, dst)
        List<List<List<long[]>>> recvs = new ArrayList<>(); // [rank][step] -> (peer, dst, count, kind, start)
        for (int r = 0; r < p.n; r++) {
            sends.add(new ArrayList<>());
            recvs.add(new ArrayList<>());
            for (int b = 0; b <= steps; b++) {
                sends.get(r).add(new ArrayList<>());
                recvs.get(r).add(new ArrayList<>());
            }
        }
        long[] capacity = new long[p.n];
        for (int b = 2; b <= steps; b++) {
            int received = b - 2; // computed in step b - 1 on what step b - 2 received
            long[] packed = new long[p.n];
            for (int r = 0; r < p.n; r++) {
                for (long[] range : p.receivedRanges(r, received)) {
                    ChunkId chunk = p.recvChunk.get(r).get(received).get((int) range[4]);
                    int to = chunk.owner();
                    long kind = RETURN_TO_KEYS;
                    long start = range[3];
                    List<Transfer> next = passes.get((received + 1) + "/" + r + "/" + chunk);
                    // Chain on only if the next holder computes on the chunk (received before the last step).
                    if (next != null && !fannedOut.contains(chunk) && received + 1 <= steps - 2) {
                        Transfer x = next.get(0);
                        to = x.dst();
                        kind = RETURN_TO_FORWARD;
                        start = p.recvStart.get(to).get(received + 1).get(x.recvSlot().position()) + range[5];
                    }
                    sends.get(r).get(b).add(new long[] {to, range[0], range[1], packed[to]});
                    recvs.get(to).get(b).add(new long[] {r, packed[to], range[1], kind, start});
                    packed[to] += range[1];
                }
            }
            for (int r = 0; r < p.n; r++) {
                capacity[r] = Math.max(capacity[r], packed[r]);
            }
        }
        long[][] out = new long[p.n][];
        for (int r = 0; r < p.n; r++) {
            List<Long> w = new ArrayList<>(List.of(RETURN_MAP_MAGIC, RETURN_MAP_VERSION, (long) steps, capacity[r]));
            for (int b = 0; b <= steps; b++) {
                w.add((long) sends.get(r).get(b).size());
                w.add((long) recvs.get(r).get(b).size());
                for (List<long[]> list : List.of(sends.get(r).get(b), recvs.get(r).get(b))) {
                    for (long[] e : list) {
                        for (long x : e) {
                            w.add(x);
                        }
                    }
                }
            }
            out[r] = w.stream().mapToLong(Long::longValue).toArray();
        }
        return out;
    }

    /**
     * What rank r received in step {@code received}, as (start in buffer received % 2, count, owner,
     * owner's local start, position, offset of this range within the chunk), one entry per chunk
     * range, in position order.
     */
    private List<long[]> receivedRanges(int r, int received) {
        List<long[]> ranges = new ArrayList<>();
        Map<Integer, Long> starts = recvStart.get(r).get(received);
        Map<Integer, ChunkId> chunks = recvChunk.get(r).get(received);
        for (Map.Entry<Integer, Long> e : new java.util.TreeMap<>(starts).entrySet()) {
            ChunkId chunk = chunks.get(e.getKey());
            long[][] parts = layout.chunkRanges(chunk, seqLen);
            long at = e.getValue();
            for (int k = 0; k < parts.length; k++) {
                long count = parts[k][1] - parts[k][0];
                long[] owner = locate(chunk.owner(), 0, Slot.local(0), chunk, k);
                ranges.add(new long[] {at, count, chunk.owner(), owner[1], e.getKey(), at - e.getValue()});
                at += count;
            }
        }
        return ranges;
    }

    /** Tokens of the full sequence that rank r holds (queries and keys alike). */
    public static long localTokens(SequenceLayout layout, int rank, long seqLen) {
        long total = 0;
        for (int b : layout.blocksOfRank(rank)) {
            long[] range = layout.blockRange(b, seqLen);
            total += range[1] - range[0];
        }
        return total;
    }

    private long chunkTokens(ChunkId c) {
        long total = 0;
        for (long[] range : layout.chunkRanges(c, seqLen)) {
            total += range[1] - range[0];
        }
        return total;
    }

    /** Where the k-th range of {@code chunk} sits, as (buffer, start), in rank r's slot at step t. */
    private long[] locate(int r, int t, Slot slot, ChunkId chunk, int k) {
        long[][] ranges = layout.chunkRanges(chunk, seqLen);
        if (slot.buffer() < 0) {
            int[] blocks = layout.blocksOfRank(chunk.owner());
            long blockStart = layout.blockRange(blocks[k], seqLen)[0];
            return new long[] {OWN, localStart[chunk.owner()][k] + ranges[k][0] - blockStart};
        }
        int received = t - 1; // steps read what the previous step received
        if (received < 0 || received % 2 != slot.buffer()) {
            throw new IllegalStateException("step " + t + " of rank " + r + " reads buffer " + slot.buffer()
                    + ", which holds nothing received in step " + received);
        }
        Long start = recvStart.get(r).get(received).get(slot.position());
        ChunkId there = recvChunk.get(r).get(received).get(slot.position());
        if (start == null || !chunk.equals(there)) {
            throw new IllegalStateException("rank " + r + " step " + t + " expects chunk " + chunk + " at " + slot
                    + ", which holds " + there);
        }
        long at = start;
        for (int j = 0; j < k; j++) {
            at += ranges[j][1] - ranges[j][0];
        }
        return new long[] {slot.buffer(), at};
    }

    private long[] lower(int r) {
        List<Long> w = new ArrayList<>();
        long tokens = localTokens(layout, r, seqLen);
        for (long x : new long[] {MAGIC, VERSION, r, n, plan.steps().size(), tokens, tokens, capacity[r]}) {
            w.add(x);
        }
        for (Step step : plan.steps()) {
            int t = step.index();
            List<long[]> sends = new ArrayList<>();
            List<long[]> recvs = new ArrayList<>();
            // One message per chunk range; sends and receives follow the plan's transfer order, so
            // a transport that pairs messages per peer (NCCL) pairs them the same way on both sides.
            for (Transfer x : step.transfers()) {
                long[][] ranges = layout.chunkRanges(x.chunk(), seqLen);
                long dstAt = recvStart.get(x.dst()).get(t).get(x.recvSlot().position());
                for (int k = 0; k < ranges.length; k++) {
                    long count = ranges[k][1] - ranges[k][0];
                    if (x.src() == r) {
                        long[] src = locate(r, t, x.sendSlot(), x.chunk(), k);
                        sends.add(new long[] {x.dst(), src[0], src[1], count, t % 2, dstAt});
                    }
                    if (x.dst() == r) {
                        recvs.add(new long[] {x.src(), t % 2, dstAt, count});
                    }
                    dstAt += count;
                }
            }
            List<long[]> tasks = tasks(r, step);
            w.add((long) sends.size());
            w.add((long) recvs.size());
            w.add((long) tasks.size());
            for (List<long[]> list : List.of(sends, recvs, tasks)) {
                for (long[] e : list) {
                    for (long x : e) {
                        w.add(x);
                    }
                }
            }
        }
        return w.stream().mapToLong(Long::longValue).toArray();
    }

    /** Rank r's attention calls in a step: (qStart, qCount, buffer, kvStart, kvCount, causal). */
    private List<long[]> tasks(int r, Step step) {
        int[] own = layout.blocksOfRank(r);
        List<long[]> raw = new ArrayList<>();
        for (AttentionTask task : step.compute()) {
            if (task.rank() != r) {
                continue;
            }
            int qk = indexOf(own, task.queryBlock());
            long[] qRange = layout.blockRange(task.queryBlock(), seqLen);
            int[] ownerBlocks = layout.blocksOfRank(task.chunk().owner());
            int kk = indexOf(ownerBlocks, task.kvBlock());
            long[][] ranges = layout.chunkRanges(task.chunk(), seqLen);
            long[] where = locate(r, step.index(), task.slot(), task.chunk(), kk);
            long[] entry = {localStart[r][qk], qRange[1] - qRange[0], where[0], where[1],
                ranges[kk][1] - ranges[kk][0], task.mask() == Mask.CAUSAL ? 1 : 0};
            if (documents == null) {
                raw.add(entry);
            } else {
                splitByDocument(entry, qRange[0], ranges[kk][0], raw);
            }
        }
        // Fuse full-mask tasks of one query range over adjacent key ranges of one buffer: attention
        // over the union equals the LSE merge of the parts, in one kernel call instead of several.
        raw.sort(Comparator.<long[]>comparingLong(e -> e[5]).thenComparingLong(e -> e[0])
                .thenComparingLong(e -> e[2]).thenComparingLong(e -> e[3]));
        List<long[]> fused = new ArrayList<>();
        for (long[] e : raw) {
            long[] last = fused.isEmpty() ? null : fused.get(fused.size() - 1);
            if (last != null && e[5] == 0 && last[5] == 0 && last[0] == e[0] && last[1] == e[1] && last[2] == e[2]
                    && last[3] + last[4] == e[3]) {
                last[4] += e[4];
            } else {
                fused.add(e.clone());
            }
        }
        return fused;
    }

    /**
     * Adds the same-document pieces of task {@code e} whose queries start at global token {@code
     * qGlobal} and keys at {@code kGlobal}. Causal tasks have equal query and key ranges, so their
     * pieces are squares on the diagonal.
     */
    private void splitByDocument(long[] e, long qGlobal, long kGlobal, List<long[]> out) {
        long qEnd = qGlobal + e[1];
        long kEnd = kGlobal + e[4];
        if (e[5] == 1 && (qGlobal != kGlobal || e[1] != e[4])) {
            throw new IllegalStateException("a causal task off the diagonal cannot be cut by documents: queries at "
                    + qGlobal + ", keys at " + kGlobal);
        }
        // Only documents ending after both ranges start can meet both.
        for (int d = documents.documentOf(Math.max(qGlobal, kGlobal)); d < documents.documentCount(); d++) {
            long from = documents.start(d);
            long to = documents.end(d);
            if (from >= qEnd || from >= kEnd) {
                break;
            }
            long q0 = Math.max(from, qGlobal);
            long q1 = Math.min(to, qEnd);
            long k0 = Math.max(from, kGlobal);
            long k1 = Math.min(to, kEnd);
            if (q0 < q1 && k0 < k1) {
                out.add(new long[] {e[0] + q0 - qGlobal, q1 - q0, e[2], e[3] + k0 - kGlobal, k1 - k0, e[5]});
            }
        }
    }

    private static int indexOf(int[] a, int x) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == x) {
                return i;
            }
        }
        throw new IllegalStateException("block " + x + " is not among " + java.util.Arrays.toString(a));
    }
}
