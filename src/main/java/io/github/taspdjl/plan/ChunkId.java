package io.github.taspdjl.plan;

/**
 * A unit of key/value data: piece {@code index} of every block that rank {@code owner} holds (see
 * {@link SequenceLayout}). {@link #WHOLE} as index means the owner's whole shard; it is only used by a
 * rank's attention tasks on its own key/values and never travels.
 *
 * @param owner rank whose keys and values these are
 * @param index piece index in [0, chunksPerRank), or {@link #WHOLE}
 */
public record ChunkId(int owner, int index) {

    /** Index meaning "all pieces": the owner's whole shard. */
    public static final int WHOLE = -1;

    /** The owner's whole shard. */
    public static ChunkId whole(int owner) {
        return new ChunkId(owner, WHOLE);
    }

    public boolean isWhole() {
        return index == WHOLE;
    }

    @Override
    public String toString() {
        return "(" + owner + "," + (index == WHOLE ? "*" : Integer.toString(index)) + ")";
    }
}
