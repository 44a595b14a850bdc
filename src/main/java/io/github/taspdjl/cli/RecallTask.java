package io.github.taspdjl.cli;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.SplittableRandom;

/**
 * The synthetic long-context task of {@code tasp train}: associative recall from far back. The first
 * half of a sequence is noise with one needle for each of {@link #SLOTS} slots hidden in its first
 * quarter (slot j's needle is one of {@code values} tokens of its own); every token of the second half
 * asks for one slot (a query token of that slot), and its label is that slot's needle. So each answer
 * sits a quarter to a whole sequence back, and only attention can bring it there: a query token alone
 * says which slot, not which value. Labels of the first half are {@link #NO_ANSWER}.
 *
 * <p>What a model can learn without looking back: the first half's label, and that a query's answer
 * is one of its slot's values; that leaves a loss of {@code log(values) / 2} (half the tokens are
 * queries). A loss below {@link #noRecallLoss} is recall over the sequence.
 *
 * <p>Needles and queries are told apart by content, not position, so models without position
 * encoding can learn the task. Tokens: 0 is only a label; then the needles of every slot, the query
 * tokens, the noise. Batches are a pure function of (seed, step): both runs of the command see the
 * same data.
 */
final class RecallTask {

    /** The label of the first half's tokens. */
    static final int NO_ANSWER = 0;
    /** Slots (needles per sequence). */
    static final int SLOTS = 4;
    /** The shortest sequence the task lays out (needles in the first quarter, queries in the second half). */
    static final int MIN_SEQ = 4 * SLOTS;

    private final int vocab;
    private final int values;

    RecallTask(int vocab) {
        this.values = (vocab - 1 - SLOTS) / (2 * SLOTS);
        if (values < 2) {
            throw new IllegalArgumentException("--vocab must be at least " + (1 + SLOTS + 4 * SLOTS)
                    + " (a label, " + SLOTS + " slots of at least 2 needle values, " + SLOTS + " query tokens, noise), got "
                    + vocab);
        }
        this.vocab = vocab;
    }

    int vocab() {
        return vocab;
    }

    /** Needle values per slot. */
    int values() {
        return values;
    }

    /** Noise token kinds. */
    int noiseTokens() {
        return vocab - 1 - SLOTS * values - SLOTS;
    }

    /** The loss of a model that answers every query with its slot's values alike and never looks back. */
    double noRecallLoss() {
        return Math.log(values) / 2;
    }

    /**
     * Input tokens (batch, seq) int32 and labels (batch, seq, 1) int64, the shape DJL's
     * SoftmaxCrossEntropyLoss picks from (batch, seq, vocab) logits with.
     */
    record Sample(NDArray tokens, NDArray labels) {}

    Sample sample(NDManager manager, long seed, int step, int batch, int seq) {
        if (seq < MIN_SEQ) {
            throw new IllegalArgumentException("--seq must be at least " + MIN_SEQ + " for the recall task, got " + seq);
        }
        int[] tokens = new int[batch * seq];
        long[] labels = new long[batch * seq];
        int firstNoise = 1 + SLOTS * values + SLOTS;
        for (int row = 0; row < batch; row++) {
            SplittableRandom random = new SplittableRandom(seed * 1_000_003L + step * 1_009L + row);
            int offset = row * seq;
            int[] needle = new int[SLOTS];
            for (int t = 0; t < seq / 2; t++) {
                tokens[offset + t] = firstNoise + random.nextInt(noiseTokens());
                labels[offset + t] = NO_ANSWER;
            }
            for (int j = 0; j < SLOTS; j++) {
                needle[j] = 1 + j * values + random.nextInt(values);
                int at;
                do {
                    at = random.nextInt(seq / 4);
                } while (tokens[offset + at] < firstNoise); // one needle per position
                tokens[offset + at] = needle[j];
            }
            for (int t = seq / 2; t < seq; t++) {
                int j = random.nextInt(SLOTS);
                tokens[offset + t] = 1 + SLOTS * values + j;
                labels[offset + t] = needle[j];
            }
        }
        return new Sample(manager.create(tokens, new Shape(batch, seq)), manager.create(labels, new Shape(batch, seq, 1)));
    }
}
