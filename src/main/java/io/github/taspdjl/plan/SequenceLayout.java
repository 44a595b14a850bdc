package io.github.taspdjl.plan;

import java.util.Arrays;

/**
 * How the full sequence is cut and placed. The sequence of length {@code L} is cut into
 * {@link #blockCount()} blocks {@code B}; block {@code b} is tokens {@code [floor(b*L/B), floor((b+1)*L/B))},
 * so any length works and block sizes differ by at most one token (no padding). Rank {@code r} holds the
 * blocks {@link #blocksOfRank(int)}, in that order, as its local queries, keys and values (its shard).
 *
 * <p>For transport each block is cut the same way into {@link #chunksPerRank()} pieces; chunk
 * {@code (owner, i)} is piece {@code i} of each of the owner's blocks, in the owner's block order.
 *
 * <ul>
 *   <li>{@link Kind#CONTIGUOUS}: {@code B = n}, rank r holds block r.
 *   <li>{@link Kind#ZIGZAG}: {@code B = 2n}, rank r holds blocks r and 2n-1-r, which balances causal work.
 * </ul>
 */
public final class SequenceLayout {

    /** Block placement. */
    public enum Kind {
        CONTIGUOUS(0),
        ZIGZAG(1);

        private final int code;

        Kind(int code) {
            this.code = code;
        }

        /** Code in the flat form. */
        public int code() {
            return code;
        }

        static Kind fromCode(int code) {
            for (Kind k : values()) {
                if (k.code == code) {
                    return k;
                }
            }
            throw new IllegalArgumentException("unknown layout code " + code);
        }
    }

    private final Kind kind;
    private final int worldSize;
    private final int chunksPerRank;

    public SequenceLayout(Kind kind, int worldSize, int chunksPerRank) {
        if (worldSize < 1) {
            throw new IllegalArgumentException("world size must be at least 1, got " + worldSize);
        }
        if (chunksPerRank < 1) {
            throw new IllegalArgumentException("chunks per rank must be at least 1, got " + chunksPerRank);
        }
        this.kind = kind;
        this.worldSize = worldSize;
        this.chunksPerRank = chunksPerRank;
    }

    public Kind kind() {
        return kind;
    }

    public int worldSize() {
        return worldSize;
    }

    /** Pieces each block is cut into for transport; chunks each rank's key/values are split into. */
    public int chunksPerRank() {
        return chunksPerRank;
    }

    public int blockCount() {
        return kind == Kind.CONTIGUOUS ? worldSize : 2 * worldSize;
    }

    public int blocksPerRank() {
        return kind == Kind.CONTIGUOUS ? 1 : 2;
    }

    /** Global block indices that rank {@code r} holds, in shard order. */
    public int[] blocksOfRank(int r) {
        checkRank(r);
        return kind == Kind.CONTIGUOUS ? new int[] {r} : new int[] {r, 2 * worldSize - 1 - r};
    }

    /** The rank that holds block {@code b}. */
    public int ownerOfBlock(int b) {
        if (b < 0 || b >= blockCount()) {
            throw new IllegalArgumentException("block " + b + " outside [0, " + blockCount() + ")");
        }
        return kind == Kind.CONTIGUOUS || b < worldSize ? b : 2 * worldSize - 1 - b;
    }

    /** Whether rank {@code r} holds block {@code b}. */
    public boolean holds(int r, int b) {
        return b >= 0 && b < blockCount() && ownerOfBlock(b) == r;
    }

    /** Global token range {@code [start, end)} of block {@code b} for sequence length {@code seqLen}. */
    public long[] blockRange(int b, long seqLen) {
        checkLength(seqLen);
        ownerOfBlock(b);
        int blocks = blockCount();
        return new long[] {Math.floorDiv(b * seqLen, blocks), Math.floorDiv((b + 1) * seqLen, blocks)};
    }

    /** Global token range {@code [start, end)} of piece {@code i} of block {@code b}. */
    public long[] pieceRange(int b, int i, long seqLen) {
        if (i < 0 || i >= chunksPerRank) {
            throw new IllegalArgumentException("piece " + i + " outside [0, " + chunksPerRank + ")");
        }
        long[] r = blockRange(b, seqLen);
        long len = r[1] - r[0];
        return new long[] {r[0] + Math.floorDiv(i * len, chunksPerRank), r[0] + Math.floorDiv((i + 1) * len, chunksPerRank)};
    }

    /**
     * Global token ranges of a chunk, one {@code [start, end)} per block of the owner in shard order; for
     * {@link ChunkId#WHOLE} the owner's whole blocks.
     */
    public long[][] chunkRanges(ChunkId chunk, long seqLen) {
        int[] blocks = blocksOfRank(chunk.owner());
        long[][] out = new long[blocks.length][];
        for (int k = 0; k < blocks.length; k++) {
            out[k] = chunk.isWhole() ? blockRange(blocks[k], seqLen) : pieceRange(blocks[k], chunk.index(), seqLen);
        }
        return out;
    }

    /** Shortest sequence this layout can cut: one token per piece. */
    public long minimumLength() {
        return (long) blockCount() * chunksPerRank;
    }

    private void checkLength(long seqLen) {
        if (seqLen < minimumLength()) {
            throw new IllegalArgumentException("sequence length " + seqLen + " is shorter than the " + minimumLength()
                    + " tokens this layout needs (" + blockCount() + " blocks x " + chunksPerRank + " pieces)");
        }
    }

    private void checkRank(int r) {
        if (r < 0 || r >= worldSize) {
            throw new IllegalArgumentException("rank " + r + " outside [0, " + worldSize + ")");
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SequenceLayout l && l.kind == kind && l.worldSize == worldSize && l.chunksPerRank == chunksPerRank;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(new int[] {kind.ordinal(), worldSize, chunksPerRank});
    }

    @Override
    public String toString() {
        return kind.name().toLowerCase(java.util.Locale.ROOT) + "(" + blockCount() + " blocks, " + chunksPerRank
                + " chunk(s) per rank)";
    }
}
