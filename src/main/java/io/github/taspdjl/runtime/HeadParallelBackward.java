package io.github.taspdjl.runtime;

import static io.github.taspdjl.runtime.HeadParallelForward.count;
import static io.github.taspdjl.runtime.HeadParallelForward.cutTokens;
import static io.github.taspdjl.runtime.HeadParallelForward.expand;
import static io.github.taspdjl.runtime.HeadParallelForward.expands;
import static io.github.taspdjl.runtime.HeadParallelForward.heads;
import static io.github.taspdjl.runtime.HeadParallelForward.joinTokens;
import static io.github.taspdjl.runtime.HeadParallelForward.keep;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;
import io.github.taspdjl.attention.FlashAttention;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.NativeOps;
import io.github.taspdjl.plan.HeadParallel;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.SequenceLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * One rank's backward of a head-parallel plan, the mirror of {@link HeadParallelForward}: (1) q, k, v,
 * the output gradient and the forward's output go to the members by head in one all-to-all, the fp32 LSE
 * in a second; (2) the group's tokens are joined as in the forward; (3) the flash backward runs over the
 * whole sequence of this rank's heads (Ulysses) or the inner plan's distributed backward runs with its
 * lifted program over the same transport (hybrid), with the global output and LSE, so each gradient is exact; (4) dq, dk, dv go back by
 * tokens in one all-to-all, and the key/value gradients of a head that several members used (replicated
 * key/value heads, or heads expanded locally) are added up in fp32.
 */
final class HeadParallelBackward {

    private HeadParallelBackward() {}

    /**
     * Rank {@code rank}'s backward.
     *
     * @param program a hybrid's lifted program of this rank ({@link RankProgram#liftAll}); null for Ulysses
     * @param returnMap its return map ({@link RankProgram#liftReturnMapsAll}); null for Ulysses
     */
    static NativeGroup.RankGradients backward(Plan plan, RankTransport transport, long[] program, long[] returnMap,
            int rank, NDArray dout, NDArray q, NDArray k, NDArray v, NDArray out, NDArray lse, boolean causal,
            Float scale, long seqLen) {
        HeadParallel hp = plan.headParallel();
        int heads = (int) q.getShape().get(1);
        int kvHeads = (int) k.getShape().get(1);
        hp.requireHeads(heads, kvHeads);
        if (!dout.getShape().equals(q.getShape()) || !out.getShape().equals(q.getShape())) {
            throw new IllegalArgumentException("rank " + rank + ": dout " + dout.getShape() + " and out " + out.getShape()
                    + " must have q's shape " + q.getShape());
        }
        int u = hp.degree();
        int g = hp.groupOf(rank);
        int j = hp.memberOf(rank);
        int per = hp.queryHeadsPerMember(heads);
        int n = plan.worldSize();
        SequenceLayout layout = plan.layout();
        long b = q.getShape().get(0);
        long d = q.getShape().get(3);
        long myTokens = RankProgram.localTokens(layout, rank, seqLen);
        List<NDArray> temps = new ArrayList<>();
        double[] moved = new double[3];
        long t0 = System.nanoTime();
        try {
            // (1) by member: q, k, v, dout, out of its heads; then the LSE of its query heads
            int[] mine = hp.kvHeads(j, heads, kvHeads);
            int c = mine[1] - mine[0];
            int width = 3 * per + 2 * c;
            NDArray[] sends = new NDArray[n];
            NDArray[] lseSends = new NDArray[n];
            long[][] shapes = new long[n][];
            long[][] lseShapes = new long[n][];
            NDArray[] pieces = new NDArray[u];
            NDArray[] lsePieces = new NDArray[u];
            for (int p = 0; p < u; p++) {
                int[] kv = hp.kvHeads(p, heads, kvHeads);
                NDArray piece = keep(temps, NDArrays.concat(new NDList(keep(temps, heads(q, p * per, (p + 1) * per)),
                        keep(temps, heads(k, kv[0], kv[1])), keep(temps, heads(v, kv[0], kv[1])),
                        keep(temps, heads(dout, p * per, (p + 1) * per)), keep(temps, heads(out, p * per, (p + 1) * per))), 1));
                NDArray lsePiece = keep(temps, heads(lse, p * per, (p + 1) * per));
                int peer = hp.rank(g, p);
                if (p == j) {
                    pieces[p] = piece;
                    lsePieces[p] = lsePiece;
                } else {
                    long tokens = RankProgram.localTokens(layout, peer, seqLen);
                    sends[peer] = piece;
                    lseSends[peer] = lsePiece;
                    shapes[peer] = new long[] {b, width, tokens, d};
                    lseShapes[peer] = new long[] {b, per, tokens};
                }
            }
            NativeGroup.Exchanged in = transport.allToAll(sends, shapes, q);
            count(moved, in.stats());
            NativeGroup.Exchanged inLse = transport.allToAll(lseSends, lseShapes, lse);
            count(moved, inLse.stats());
            for (int p = 0; p < u; p++) {
                if (p != j) {
                    pieces[p] = keep(temps, in.received()[hp.rank(g, p)]);
                    lsePieces[p] = keep(temps, inLse.received()[hp.rank(g, p)]);
                }
            }
            // (2) the group's tokens, as in the forward
            NDArray all = keep(temps, joinTokens(layout, hp, g, pieces, seqLen, temps));
            NDArray lseAll = keep(temps, joinTokens(layout, hp, g, lsePieces, seqLen, temps));
            NDArray qi = keep(temps, heads(all, 0, per));
            NDArray ki = keep(temps, heads(all, per, per + c));
            NDArray vi = keep(temps, heads(all, per + c, per + 2 * c));
            NDArray douti = keep(temps, heads(all, per + 2 * c, 2 * per + 2 * c));
            NDArray outi = keep(temps, heads(all, 2 * per + 2 * c, width));
            boolean expanded = expands(hp, j, heads, kvHeads);
            if (expanded) {
                ki = keep(temps, expand(hp, j, heads, kvHeads, ki, temps));
                vi = keep(temps, expand(hp, j, heads, kvHeads, vi, temps));
            }
            // (3) exact gradients of these heads over the whole sequence
            NDArray dq;
            NDArray dk;
            NDArray dv;
            NativeGroup.RankStats innerStats = null;
            long tAttention = System.nanoTime();
            if (program == null) {
                FlashAttention.Gradients r = FlashAttention.backward(douti, qi, ki, vi, outi, lseAll, causal, scale);
                dq = keep(temps, r.dq());
                dk = keep(temps, r.dk());
                dv = keep(temps, r.dv());
            } else {
                NativeGroup.RankGradients r = transport.backward(program, returnMap, douti, qi, ki, vi, outi, lseAll, scale);
                dq = keep(temps, r.dq());
                dk = keep(temps, r.dk());
                dv = keep(temps, r.dv());
                innerStats = r.stats();
            }
            double attentionMs = (System.nanoTime() - tAttention) / 1e6;
            if (expanded) {
                dk = keep(temps, fold(hp, j, heads, kvHeads, dk, temps));
                dv = keep(temps, fold(hp, j, heads, kvHeads, dv, temps));
            }
            // (4) gradients back by tokens: dq of this rank's query heads, dk and dv of its key/value heads
            NDArray grads = keep(temps, NDArrays.concat(new NDList(dq, dk, dv), 1));
            NDArray[] back = cutTokens(hp, layout, rank, grads, seqLen, temps);
            NDArray[] backSends = new NDArray[n];
            long[][] backShapes = new long[n][];
            for (int p = 0; p < u; p++) {
                if (p != j) {
                    int[] kv = hp.kvHeads(p, heads, kvHeads);
                    backSends[hp.rank(g, p)] = back[p];
                    backShapes[hp.rank(g, p)] = new long[] {b, per + 2L * (kv[1] - kv[0]), myTokens, d};
                }
            }
            NativeGroup.Exchanged got = transport.allToAll(backSends, backShapes, dq);
            count(moved, got.stats());
            NDList dqParts = new NDList();
            List<List<NDArray>> dkParts = new ArrayList<>();
            List<List<NDArray>> dvParts = new ArrayList<>();
            for (int h = 0; h < kvHeads; h++) {
                dkParts.add(new ArrayList<>());
                dvParts.add(new ArrayList<>());
            }
            for (int p = 0; p < u; p++) {
                NDArray part = p == j ? back[p] : keep(temps, got.received()[hp.rank(g, p)]);
                int[] kv = hp.kvHeads(p, heads, kvHeads);
                int cp = kv[1] - kv[0];
                dqParts.add(keep(temps, heads(part, 0, per)));
                for (int h = kv[0]; h < kv[1]; h++) {
                    dkParts.get(h).add(keep(temps, heads(part, per + h - kv[0], per + h - kv[0] + 1)));
                    dvParts.get(h).add(keep(temps, heads(part, per + cp + h - kv[0], per + cp + h - kv[0] + 1)));
                }
            }
            NDArray dqOut = NDArrays.concat(dqParts, 1);
            NDArray dkOut = sumByHead(dkParts, k, temps);
            NDArray dvOut = sumByHead(dvParts, v, temps);
            double totalMs = (System.nanoTime() - t0) / 1e6;
            NativeGroup.RankStats stats = new NativeGroup.RankStats(innerStats != null ? innerStats.computeMs() : attentionMs,
                    moved[0] + (innerStats != null ? innerStats.commMs() : 0),
                    moved[1] + (innerStats != null ? innerStats.waitMs() : 0), totalMs,
                    (long) moved[2] + (innerStats != null ? innerStats.bytesSent() : 0),
                    innerStats != null ? innerStats.bufferBytes() : 0, new double[0], new double[0], new double[0]);
            return new NativeGroup.RankGradients(dqOut, dkOut, dvOut, stats);
        } finally {
            for (NDArray t : temps) {
                t.close();
            }
        }
    }

    /** The gradients of expanded key/value heads (one per query head) added back onto the member's own heads. */
    private static NDArray fold(HeadParallel hp, int j, int heads, int kvHeads, NDArray expanded, List<NDArray> temps) {
        int per = hp.queryHeadsPerMember(heads);
        int[] kv = hp.kvHeads(j, heads, kvHeads);
        int group = heads / kvHeads;
        List<List<NDArray>> byHead = new ArrayList<>();
        for (int h = kv[0]; h < kv[1]; h++) {
            byHead.add(new ArrayList<>());
        }
        for (int i = 0; i < per; i++) {
            byHead.get((j * per + i) / group - kv[0]).add(keep(temps, heads(expanded, i, i + 1)));
        }
        return sumByHead(byHead, expanded, temps);
    }

    /** Per head, the sum of its contributions (in fp32 for half-precision inputs), stacked along heads in like's dtype. */
    private static NDArray sumByHead(List<List<NDArray>> byHead, NDArray like, List<NDArray> temps) {
        boolean fp32 = like.getDataType() == DataType.FLOAT32;
        NDList stacked = new NDList();
        for (List<NDArray> contributions : byHead) {
            NDArray sum = null;
            for (NDArray x : contributions) {
                NDArray term = fp32 ? x : keep(temps, NativeOps.cast(x, DataType.FLOAT32));
                sum = sum == null ? term : keep(temps, sum.add(term));
            }
            stacked.add(fp32 ? sum : keep(temps, NativeOps.cast(sum, NativeOps.dataType(like))));
        }
        return NDArrays.concat(stacked, 1);
    }
}
