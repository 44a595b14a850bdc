package io.github.taspdjl.runtime;

import java.util.Arrays;
import java.util.Optional;
import java.util.concurrent.Callable;

/**
 * Documents packed into one sequence, given by their boundaries as offsets ({@code cu_seqlens}
 * style): document d is tokens {@code [offsets[d], offsets[d+1])}, with {@code offsets[0] = 0} and
 * the last offset the sequence length. Attention never crosses a boundary, and positions (rotary
 * embeddings) restart at each document's first token.
 *
 * <p>Blocks deep inside a model see the documents of the sequence they run on through {@link
 * #run}, like {@link RankContext}: on one device around the model's forward, and on each rank's
 * thread ({@link SequenceParallelGroup#runRanks(long, boolean, PackedSequence, SequenceParallelGroup.RankWork)}).
 */
public final class PackedSequence {

    private static final ThreadLocal<PackedSequence> CURRENT = new ThreadLocal<>();

    private final long[] offsets;

    private PackedSequence(long[] offsets) {
        this.offsets = offsets;
    }

    /**
     * Documents from cumulative offsets: 0, then each document's end, strictly increasing.
     *
     * @throws IllegalArgumentException naming the first offset that breaks the rule
     */
    public static PackedSequence of(long... offsets) {
        if (offsets == null || offsets.length < 2) {
            throw new IllegalArgumentException("document offsets need at least two entries (0 and the length), got "
                    + Arrays.toString(offsets));
        }
        if (offsets[0] != 0) {
            throw new IllegalArgumentException("document offsets must start at 0, got " + offsets[0]);
        }
        for (int i = 1; i < offsets.length; i++) {
            if (offsets[i] <= offsets[i - 1]) {
                throw new IllegalArgumentException("document offsets must increase strictly: offset " + i + " is "
                        + offsets[i] + " after " + offsets[i - 1] + " (an empty or negative-length document)");
            }
        }
        return new PackedSequence(offsets.clone());
    }

    /** Documents of the given lengths, packed in that order. */
    public static PackedSequence ofLengths(long... lengths) {
        long[] offsets = new long[lengths.length + 1];
        for (int i = 0; i < lengths.length; i++) {
            offsets[i + 1] = offsets[i] + lengths[i];
        }
        return of(offsets);
    }

    /** The offsets: 0, then each document's end. */
    public long[] offsets() {
        return offsets.clone();
    }

    public int documentCount() {
        return offsets.length - 1;
    }

    /** The length of the packed sequence (the last offset). */
    public long length() {
        return offsets[offsets.length - 1];
    }

    public long start(int document) {
        return offsets[document];
    }

    public long end(int document) {
        return offsets[document + 1];
    }

    /** The document that holds global token {@code position}. */
    public int documentOf(long position) {
        if (position < 0 || position >= length()) {
            throw new IllegalArgumentException("token " + position + " outside a packed sequence of " + length());
        }
        int i = Arrays.binarySearch(offsets, position);
        return i >= 0 ? i : -i - 2;
    }

    /** Fails unless this packs exactly {@code seqLen} tokens. */
    public void requireLength(long seqLen) {
        if (length() != seqLen) {
            throw new IllegalArgumentException("the documents cover " + length() + " tokens but the sequence has "
                    + seqLen + " (offsets " + summary() + ")");
        }
    }

    /** The documents of the sequence the calling thread is running, if it runs a packed one. */
    public static Optional<PackedSequence> current() {
        return Optional.ofNullable(CURRENT.get());
    }

    /** Runs {@code body} with {@code documents} as the calling thread's packed sequence (null: none). */
    public static <T> T run(PackedSequence documents, Callable<T> body) throws Exception {
        return ThreadScopes.with(CURRENT, documents, body);
    }

    private String summary() {
        return offsets.length <= 12 ? Arrays.toString(offsets) : "[" + offsets[0] + ", " + offsets[1] + ", ... "
                + offsets[offsets.length - 1] + "] (" + documentCount() + " documents)";
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PackedSequence p && Arrays.equals(p.offsets, offsets);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(offsets);
    }

    @Override
    public String toString() {
        return documentCount() + " document(s) " + summary();
    }
}
