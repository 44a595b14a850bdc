package io.github.taspdjl.plan;

/**
 * Where a chunk lives on a rank. Buffer {@link #LOCAL} is the rank's own key/value shard (position = chunk
 * index, or {@link ChunkId#WHOLE} for the whole shard). Buffers 0 and 1 are the two receive buffers: the
 * chunks received in step {@code t} land in buffer {@code t % 2} at consecutive positions 0, 1, ..., so one
 * step's chunks form one contiguous tensor.
 *
 * @param buffer {@link #LOCAL}, 0 or 1
 * @param position chunk position in the buffer
 */
public record Slot(int buffer, int position) {

    /** The rank's own key/value shard. */
    public static final int LOCAL = -1;

    /** Number of receive buffers (double buffering). */
    public static final int RECEIVE_BUFFERS = 2;

    /** Own chunk {@code index} ({@link ChunkId#WHOLE} for the whole shard). */
    public static Slot local(int index) {
        return new Slot(LOCAL, index);
    }

    /** The receive buffer that step {@code step}'s received chunks land in. */
    public static int receiveBufferOf(int step) {
        return step % RECEIVE_BUFFERS;
    }

    public boolean isLocal() {
        return buffer == LOCAL;
    }

    @Override
    public String toString() {
        return buffer == LOCAL ? "L" + (position == ChunkId.WHOLE ? "*" : Integer.toString(position))
                : "B" + buffer + "." + position;
    }
}
