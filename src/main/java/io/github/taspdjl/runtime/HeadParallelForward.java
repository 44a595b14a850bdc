package io.github.taspdjl.runtime;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.index.NDIndex;
import io.github.taspdjl.attention.FlashAttention;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.plan.HeadParallel;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.SequenceLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * One rank's forward of a head-parallel plan ({@link HeadParallel}: Ulysses, hybrids) over any transport
 * ({@link RankTransport}). Rank {@code g*u+j}: (1) cuts its shard (B, H, T_j, D) by head into one piece per
 * member of its group (the member's query heads and the key/value heads they use, stacked along heads) and
 * exchanges the pieces with the transport's all-to-all; (2) puts the group's tokens together block by
 * block, members in order, which makes inner rank g's blocks whole (the plan's grouped layout), and splits
 * q, k, v again (expanding key/value heads where its query heads do not map onto them as plain
 * grouped-query attention, see {@link #expands}); (3) runs attention: over the whole sequence on this rank
 * for Ulysses, or, for a hybrid, its inner rank's program lifted to world ranks ({@link
 * RankProgram#liftAll}) over the same transport, where all members' copies of the inner plan run as one
 * world run; (4) cuts the output and LSE by member tokens and exchanges them back, then stacks the heads in
 * member order.
 */
final class HeadParallelForward {

    private HeadParallelForward() {}

    /**
     * Rank {@code rank}'s forward.
     *
     * @param inner a hybrid's lifted program of this rank ({@link RankProgram#liftAll}); null for Ulysses
     */
    static NativeGroup.RankOutput forward(Plan plan, RankTransport transport, long[] inner, int rank, NDArray q,
            NDArray k, NDArray v, boolean causal, Float scale, long seqLen, PackedSequence documents) {
        HeadParallel hp = plan.headParallel();
        int heads = (int) q.getShape().get(1);
        int kvHeads = (int) k.getShape().get(1);
        hp.requireHeads(heads, kvHeads);
        int u = hp.degree();
        int g = hp.groupOf(rank);
        int j = hp.memberOf(rank);
        int per = hp.queryHeadsPerMember(heads);
        int n = plan.worldSize();
        SequenceLayout layout = plan.layout();
        long b = q.getShape().get(0);
        long d = q.getShape().get(3);
        List<NDArray> temps = new ArrayList<>();
        long t0 = System.nanoTime();
        try {
            // (1) q, k, v by member: its query heads and the key/value heads they use
            int[] mine = hp.kvHeads(j, heads, kvHeads);
            int width = per + 2 * (mine[1] - mine[0]);
            NDArray[] sends = new NDArray[n];
            long[][] shapes = new long[n][];
            NDArray own = null;
            for (int p = 0; p < u; p++) {
                int[] kv = hp.kvHeads(p, heads, kvHeads);
                NDArray piece = keep(temps, NDArrays.concat(new NDList(keep(temps, heads(q, p * per, (p + 1) * per)),
                        keep(temps, heads(k, kv[0], kv[1])), keep(temps, heads(v, kv[0], kv[1]))), 1));
                int peer = hp.rank(g, p);
                if (p == j) {
                    own = piece;
                } else {
                    sends[peer] = piece;
                    shapes[peer] = new long[] {b, width, RankProgram.localTokens(layout, peer, seqLen), d};
                }
            }
            NativeGroup.Exchanged in = transport.allToAll(sends, shapes, q);
            double[] moved = new double[3]; // comm ms, wait ms, bytes sent: every all-to-all of this rank
            count(moved, in.stats());
            NDArray[] pieces = new NDArray[u];
            for (int p = 0; p < u; p++) {
                pieces[p] = p == j ? own : keep(temps, in.received()[hp.rank(g, p)]);
            }
            // (2) the group's tokens, block by block, members in order: inner rank g's blocks whole
            NDArray all = keep(temps, joinTokens(layout, hp, g, pieces, seqLen, temps));
            NDArray qi = keep(temps, heads(all, 0, per));
            NDArray ki = keep(temps, heads(all, per, per + mine[1] - mine[0]));
            NDArray vi = keep(temps, heads(all, per + mine[1] - mine[0], width));
            if (expands(hp, j, heads, kvHeads)) {
                ki = keep(temps, expand(hp, j, heads, kvHeads, ki, temps));
                vi = keep(temps, expand(hp, j, heads, kvHeads, vi, temps));
            }
            // (3) attention over the whole sequence of these heads, here or with the other inner ranks
            NDArray out;
            NDArray lse;
            NativeGroup.RankStats innerStats = null;
            long tAttention = System.nanoTime();
            if (inner == null) {
                FlashAttention.Result r = FlashAttention.forward(qi, ki, vi, causal, scale, documents);
                out = keep(temps, r.output());
                lse = keep(temps, r.lse());
            } else {
                NativeGroup.RankOutput r = transport.forward(inner, qi, ki, vi, scale);
                out = keep(temps, r.output());
                lse = keep(temps, r.lse());
                innerStats = r.stats();
            }
            double attentionMs = (System.nanoTime() - tAttention) / 1e6;
            // (4) output and LSE back to the members their tokens belong to
            NDArray output = back(hp, layout, rank, out, seqLen, temps, transport, moved);
            NDArray lseOut = back(hp, layout, rank, lse, seqLen, temps, transport, moved);
            double totalMs = (System.nanoTime() - t0) / 1e6;
            double computeMs = innerStats != null ? innerStats.computeMs() : attentionMs;
            double commMs = moved[0] + (innerStats != null ? innerStats.commMs() : 0);
            double waitMs = moved[1] + (innerStats != null ? innerStats.waitMs() : 0);
            long bytes = (long) moved[2] + (innerStats != null ? innerStats.bytesSent() : 0);
            NativeGroup.RankStats stats = new NativeGroup.RankStats(computeMs, commMs, waitMs, totalMs, bytes,
                    innerStats != null ? innerStats.bufferBytes() : 0, new double[0], new double[0], new double[0]);
            return new NativeGroup.RankOutput(output, lseOut, stats);
        } finally {
            for (NDArray t : temps) {
                t.close();
            }
        }
    }

    /**
     * Whether member {@code j} expands its key/value heads to one per query head before attention: where its
     * query heads do not use them as plain grouped-query attention, and, in a hybrid, where the members would
     * otherwise attend over different numbers of key/value heads (a member whose query heads straddle two
     * key/value heads gets both): every member's copy of the inner plan runs in one world run, and its ranks
     * must agree on the key/value heads.
     */
    static boolean expands(HeadParallel hp, int j, int heads, int kvHeads) {
        if (!hp.uniform(j, heads, kvHeads)) {
            return true;
        }
        if (hp.inner().worldSize() == 1) {
            return false;
        }
        int width = -1;
        for (int p = 0; p < hp.degree(); p++) {
            int[] kv = hp.kvHeads(p, heads, kvHeads);
            int w = hp.uniform(p, heads, kvHeads) ? kv[1] - kv[0] : hp.queryHeadsPerMember(heads);
            if (width >= 0 && w != width) {
                return true;
            }
            width = w;
        }
        return false;
    }

    static void count(double[] moved, NativeGroup.RankStats s) {
        moved[0] += s.commMs();
        moved[1] += s.waitMs();
        moved[2] += s.bytesSent();
    }

    /** Heads [from, to) of a (B, H, S, ...) tensor. */
    static NDArray heads(NDArray a, int from, int to) {
        return a.get(new NDIndex(":, {}:{}", from, to));
    }

    static NDArray keep(List<NDArray> temps, NDArray a) {
        temps.add(a);
        return a;
    }

    /** Token ranges [start, end) within member p's shard of each of its blocks, in shard order. */
    private static long[][] segments(SequenceLayout layout, int rank, long seqLen) {
        int[] blocks = layout.blocksOfRank(rank);
        long[][] out = new long[blocks.length][];
        long at = 0;
        for (int s = 0; s < blocks.length; s++) {
            long[] r = layout.blockRange(blocks[s], seqLen);
            out[s] = new long[] {at, at + r[1] - r[0]};
            at += r[1] - r[0];
        }
        return out;
    }

    static NDArray joinTokens(SequenceLayout layout, HeadParallel hp, int g, NDArray[] pieces, long seqLen,
            List<NDArray> temps) {
        NDList parts = new NDList();
        int slots = layout.blocksPerRank();
        for (int s = 0; s < slots; s++) {
            for (int p = 0; p < pieces.length; p++) {
                long[] seg = segments(layout, hp.rank(g, p), seqLen)[s];
                parts.add(keep(temps, pieces[p].get(new NDIndex(":, :, {}:{}", seg[0], seg[1]))));
            }
        }
        return parts.size() == 1 ? parts.get(0).duplicate() : NDArrays.concat(parts, 2);
    }

    /** Key/value heads expanded to one per query head of member j (local query head i uses its own copy). */
    static NDArray expand(HeadParallel hp, int j, int heads, int kvHeads, NDArray kv, List<NDArray> temps) {
        int per = hp.queryHeadsPerMember(heads);
        int lo = hp.kvHeads(j, heads, kvHeads)[0];
        int group = heads / kvHeads;
        NDList copies = new NDList();
        for (int i = 0; i < per; i++) {
            int local = (j * per + i) / group - lo;
            copies.add(keep(temps, heads(kv, local, local + 1)));
        }
        return NDArrays.concat(copies, 1);
    }

    /**
     * The reverse all-to-all: member p gets its tokens (its segments of every block) of this rank's heads;
     * this rank gets its tokens of every member's heads and stacks them in member order.
     */
    private static NDArray back(HeadParallel hp, SequenceLayout layout, int rank, NDArray result, long seqLen,
            List<NDArray> temps, RankTransport transport, double[] moved) {
        int u = hp.degree();
        int g = hp.groupOf(rank);
        int j = hp.memberOf(rank);
        NDArray[] pieces = cutTokens(hp, layout, rank, result, seqLen, temps);
        NDArray[] sends = new NDArray[layout.worldSize()];
        long[][] shapes = new long[layout.worldSize()][];
        long[] expected = result.getShape().getShape().clone();
        expected[2] = RankProgram.localTokens(layout, rank, seqLen);
        for (int p = 0; p < u; p++) {
            if (p != j) {
                sends[hp.rank(g, p)] = pieces[p];
                shapes[hp.rank(g, p)] = expected;
            }
        }
        NativeGroup.Exchanged got = transport.allToAll(sends, shapes, result);
        count(moved, got.stats());
        NDList stack = new NDList();
        for (int p = 0; p < u; p++) {
            stack.add(p == j ? pieces[p] : keep(temps, got.received()[hp.rank(g, p)]));
        }
        return NDArrays.concat(stack, 1);
    }

    /**
     * The inverse of {@link #joinTokens}: a (B, H', tokens of the group, ...) result cut into one piece per
     * member, each the member's own tokens (its segments of every block, in shard order).
     */
    static NDArray[] cutTokens(HeadParallel hp, SequenceLayout layout, int rank, NDArray result, long seqLen,
            List<NDArray> temps) {
        int u = hp.degree();
        int g = hp.groupOf(rank);
        int slots = layout.blocksPerRank();
        // offset of (slot s, member p) in the joined tokens: slot-major, members in order
        long[][] start = new long[slots][u];
        long at = 0;
        for (int s = 0; s < slots; s++) {
            for (int p = 0; p < u; p++) {
                long[] seg = segments(layout, hp.rank(g, p), seqLen)[s];
                start[s][p] = at;
                at += seg[1] - seg[0];
            }
        }
        NDArray[] pieces = new NDArray[u];
        for (int p = 0; p < u; p++) {
            NDList parts = new NDList();
            long[][] segs = segments(layout, hp.rank(g, p), seqLen);
            for (int s = 0; s < slots; s++) {
                long from = start[s][p];
                parts.add(keep(temps, result.get(new NDIndex(":, :, {}:{}", from, from + segs[s][1] - segs[s][0]))));
            }
            pieces[p] = keep(temps, parts.size() == 1 ? parts.get(0).duplicate() : NDArrays.concat(parts, 2));
        }
        return pieces;
    }
}
