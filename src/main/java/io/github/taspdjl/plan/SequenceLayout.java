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
 *
 * <p><b>Grouped</b> ({@link #grouped}, for head-parallel hybrids): ranks form groups of {@code u}
 * consecutive ranks; the layout above is taken over the {@code n/u} groups and each of its blocks is cut
 * into {@code u} sub-blocks, so {@code B} is {@code u} times the groups' block count, and rank {@code g*u+j}
 * holds sub-block {@code j} of each block of group {@code g}. After an all-to-all inside a group, every
 * member holds the group's blocks whole, in the order the groups' layout gives them. Grouped contiguous is
 * plain contiguous.
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
    /** Ranks per group (1: not grouped). */
    private final int groupSize;

    public SequenceLayout(Kind kind, int worldSize, int chunksPerRank) {
        this(kind, worldSize, chunksPerRank, 1);
    }

    /**
     * The layout of {@code kind} over {@code worldSize / groupSize} groups of {@code groupSize} consecutive
     * ranks, each block cut into one sub-block per member (see the class comment); one chunk per rank.
     */
    public static SequenceLayout grouped(Kind kind, int worldSize, int groupSize) {
        if (groupSize < 1 || worldSize % groupSize != 0) {
            throw new IllegalArgumentException("group size " + groupSize + " must divide the world size " + worldSize);
        }
        return new SequenceLayout(kind, worldSize, 1, kind == Kind.CONTIGUOUS ? 1 : groupSize);
    }

    private SequenceLayout(Kind kind, int worldSize, int chunksPerRank, int groupSize) {
        if (worldSize < 1) {
            throw new IllegalArgumentException("world size must be at least 1, got " + worldSize);
        }
        if (chunksPerRank < 1) {
            throw new IllegalArgumentException("chunks per rank must be at least 1, got " + chunksPerRank);
        }
        this.kind = kind;
        this.worldSize = worldSize;
        this.chunksPerRank = chunksPerRank;
        this.groupSize = groupSize;
    }

    /** Ranks per group of a {@link #grouped} layout; 1 for the others. */
    public int groupSize() {
        return groupSize;
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

    /** Ranks of the layout that groups are placed by (the world size when not grouped). */
    private int groups() {
        return worldSize / groupSize;
    }

    public int blocksPerRank() {
        return kind == Kind.CONTIGUOUS ? 1 : 2;
    }

    /** Global block indices that rank {@code r} holds, in shard order. */
    public int[] blocksOfRank(int r) {
        checkRank(r);
        if (kind == Kind.CONTIGUOUS) {
            return new int[] {r};
        }
        int u = groupSize;
        int g = r / u;
        int j = r % u;
        return new int[] {g * u + j, (2 * groups() - 1 - g) * u + j};
    }

    /** The rank that holds block {@code b}. */
    public int ownerOfBlock(int b) {
        if (b < 0 || b >= blockCount()) {
            throw new IllegalArgumentException("block " + b + " outside [0, " + blockCount() + ")");
        }
        if (kind == Kind.CONTIGUOUS) {
            return b;
        }
        int u = groupSize;
        int g = b / u;
        return (g < groups() ? g : 2 * groups() - 1 - g) * u + b % u;
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
        return o instanceof SequenceLayout l && l.kind == kind && l.worldSize == worldSize && l.chunksPerRank == chunksPerRank
                && l.groupSize == groupSize;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(new int[] {kind.ordinal(), worldSize, chunksPerRank, groupSize});
    }

    @Override
    public String toString() {
        return kind.name().toLowerCase(java.util.Locale.ROOT) + "(" + blockCount() + " blocks, " + chunksPerRank
                + " chunk(s) per rank" + (groupSize > 1 ? ", groups of " + groupSize : "") + ")";
    }
}
