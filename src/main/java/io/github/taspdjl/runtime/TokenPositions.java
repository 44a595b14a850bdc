package io.github.taspdjl.runtime;

import io.github.taspdjl.plan.SequenceLayout;
import java.util.Optional;

/**
 * The position of each token a thread holds, for position encodings (rotary embeddings): inside
 * {@link RankContext#run} a rank holds blocks of the sequence that are not contiguous under the
 * zigzag layout, so a local index is not a position; in a {@link PackedSequence} positions restart
 * at 0 at each document's first token.
 */
public final class TokenPositions {

    private TokenPositions() {}

    /** Global positions of rank {@code rank}'s tokens, in its shard's order. */
    public static long[] global(SequenceLayout layout, int rank, long seqLen) {
        long[] out = new long[Math.toIntExact(RankProgram.localTokens(layout, rank, seqLen))];
        int at = 0;
        for (int b : layout.blocksOfRank(rank)) {
            long[] range = layout.blockRange(b, seqLen);
            for (long p = range[0]; p < range[1]; p++) {
                out[at++] = p;
            }
        }
        return out;
    }

    /**
     * Positions of the {@code localTokens} tokens the calling thread holds: their global positions
     * (those of its rank's shard inside a rank context, else 0, 1, ...), counted from the start of
     * their document when the thread runs a packed sequence.
     */
    public static long[] ofLocalTokens(long localTokens) {
        Optional<RankContext> rank = RankContext.current();
        long seqLen = rank.map(RankContext::seqLen).orElse(localTokens);
        long[] positions;
        if (rank.isPresent()) {
            RankContext c = rank.get();
            positions = global(c.group().plan(c.causal()).layout(), c.rank(), c.seqLen());
            if (positions.length != localTokens) {
                throw new IllegalArgumentException("rank " + c.rank() + " holds " + positions.length + " tokens of a "
                        + c.seqLen() + "-token sequence, but the block got " + localTokens);
            }
        } else {
            positions = new long[Math.toIntExact(localTokens)];
            for (int i = 0; i < positions.length; i++) {
                positions[i] = i;
            }
        }
        Optional<PackedSequence> docs = PackedSequence.current();
        if (docs.isPresent()) {
            PackedSequence d = docs.get();
            d.requireLength(seqLen);
            for (int i = 0; i < positions.length; i++) {
                positions[i] -= d.start(d.documentOf(positions[i]));
            }
        }
        return positions;
    }
}
