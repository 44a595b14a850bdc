package io.github.taspdjl.serving;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.runtime.Sharding;
import io.github.taspdjl.runtime.TokenPositions;
import io.github.taspdjl.topology.Topology;
import io.github.taspdjl.topology.TopologyDetector;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.ReentrantLock;
import java.util.stream.IntStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Scores a prompt with a {@link DecoderModel}: the K most likely next tokens and the log-likelihood
 * of the prompt itself. Short prompts run on the calling thread on the model's device; prompts of at
 * least {@link Settings#shardMinTokens} tokens run sharded over a {@link SequenceParallelGroup}
 * (every rank runs the whole model on its shard; attention goes over the plan), as a causal plan
 * lays them out; the model takes its tokens' global positions from the rank context.
 *
 * <p>Thread-safe. Short prompts run concurrently (the parameters are only read). The group runs one
 * sequence at a time, so sharded prompts take turns on a fair lock; a group run that fails (a rank
 * error or a peer timeout) discards the group, which cannot run again, and the next sharded prompt
 * builds a new one.
 */
public final class SequenceScorer implements AutoCloseable {

    private static final Logger logger = LoggerFactory.getLogger(SequenceScorer.class);

    /** How prompts are run. */
    public record Settings(int ranks, Strategy strategy, long groupTimeoutMs, int shardMinTokens) {

        public static final String RANKS = "ranks";
        public static final String STRATEGY = "strategy";
        public static final String GROUP_TIMEOUT_MS = "group_timeout_ms";
        public static final String SHARD_MIN_TOKENS = "shard_min_tokens";

        public Settings {
            if (ranks < 1) {
                throw new IllegalArgumentException(RANKS + " must be at least 1, got " + ranks);
            }
            if (groupTimeoutMs < 1) {
                throw new IllegalArgumentException(GROUP_TIMEOUT_MS + " must be at least 1, got " + groupTimeoutMs);
            }
            if (shardMinTokens < 1) {
                throw new IllegalArgumentException(SHARD_MIN_TOKENS + " must be at least 1, got " + shardMinTokens);
            }
        }

        /** Reads the settings from translator arguments; absent keys take the defaults. */
        public static Settings fromArguments(Map<String, ?> arguments) {
            int ranks = arguments.containsKey(RANKS) ? ServedModelConfig.intArgument(arguments, RANKS)
                    : TopologyDetector.DEFAULT_VIRTUAL_RANKS;
            Object strategy = arguments.get(STRATEGY);
            long timeout = arguments.containsKey(GROUP_TIMEOUT_MS)
                    ? ServedModelConfig.intArgument(arguments, GROUP_TIMEOUT_MS) : 60_000;
            int minTokens = arguments.containsKey(SHARD_MIN_TOKENS)
                    ? ServedModelConfig.intArgument(arguments, SHARD_MIN_TOKENS) : 2048;
            return new Settings(ranks, strategy == null ? Strategy.TASP : Strategy.fromName(strategy.toString()),
                    timeout, minTokens);
        }
    }

    /** One of the most likely next tokens. */
    public record TokenLogprob(int token, double logprob) {}

    /**
     * The answer for one prompt: the {@code topK} most likely next tokens (highest first), the
     * log-likelihood of the prompt's tokens after the first, and how it ran.
     */
    public record Scores(List<TokenLogprob> next, double sequenceLogprob, int tokens, int ranks, double millis) {}

    /** One rank's (or the whole sequence's) share: next-token log-probs, and the last row if held. */
    private record Part(NDArray picked, NDArray lastRow) {}

    /** The whole sequence's part and how many ranks computed it. */
    private record Run(Part whole, int ranks) {}

    private final DecoderModel model;
    private final NDManager manager;
    private final Settings settings;
    private final ReentrantLock groupLock = new ReentrantLock(true);
    private SequenceParallelGroup group; // guarded by groupLock
    private boolean closed; // guarded by groupLock

    /**
     * @param model a model whose parameters live on {@code manager}'s device
     * @param manager where each request's arrays are made (a sub-manager per request)
     */
    public SequenceScorer(DecoderModel model, NDManager manager, Settings settings) {
        this.model = model;
        this.manager = manager;
        this.settings = settings;
    }

    public DecoderModel model() {
        return model;
    }

    public Settings settings() {
        return settings;
    }

    /** Checks a request against the model; throws {@link InvalidRequestException} naming the problem. */
    public void validate(int[] tokens, int topK) {
        if (tokens == null || tokens.length == 0) {
            throw new InvalidRequestException("'tokens' is empty: give at least one token id");
        }
        if (tokens.length > model.maxLength()) {
            throw new InvalidRequestException(tokens.length + " tokens is longer than this model's maximum of "
                    + model.maxLength());
        }
        int vocabulary = model.vocabularySize();
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= vocabulary) {
                throw new InvalidRequestException("token id " + tokens[i] + " at index " + i
                        + " is outside the vocabulary [0, " + vocabulary + ")");
            }
        }
        if (topK < 1 || topK > vocabulary) {
            throw new InvalidRequestException("'top_k' must be between 1 and the vocabulary size " + vocabulary
                    + ", got " + topK);
        }
    }

    /**
     * Whether a prompt of this length goes to the group (which still runs one shorter than its plan's
     * minimum, a token per block piece, on one device).
     */
    public boolean runsSharded(int length) {
        return settings.ranks() > 1 && length >= settings.shardMinTokens();
    }

    /**
     * Scores {@code tokens}. Throws {@link InvalidRequestException} for a request the model cannot
     * take; any other exception is a failure of the model or the group.
     */
    public Scores score(int[] tokens, int topK) throws InterruptedException {
        validate(tokens, topK);
        long t0 = System.nanoTime();
        int s = tokens.length;
        try (NDManager m = manager.newSubManager()) {
            int[] targets = new int[s]; // targets[i] = tokens[i + 1]; the last row has no target (masked below)
            System.arraycopy(tokens, 1, targets, 0, s - 1);
            NDArray ids = m.create(tokens, new Shape(1, s));
            NDArray tgt = m.create(targets, new Shape(1, s));
            Run run = runsSharded(s) ? scoreSharded(ids, tgt, s) : new Run(scorePart(ids, tgt, s - 1), 1);
            Part whole = run.whole();
            float[] picked = whole.picked().toFloatArray();
            double sequence = 0;
            for (int i = 0; i < s - 1; i++) {
                sequence += picked[i];
            }
            List<TokenLogprob> next = topK(whole.lastRow().toFloatArray(), topK);
            return new Scores(next, sequence, s, run.ranks(), (System.nanoTime() - t0) / 1e6);
        }
    }

    private Run scoreSharded(NDArray ids, NDArray tgt, int s) throws InterruptedException {
        groupLock.lockInterruptibly();
        try {
            if (closed) {
                throw new IllegalStateException("this scorer is closed");
            }
            if (group == null) {
                group = newGroup();
            }
            SequenceLayout layout = group.plan(true).layout();
            if (s < layout.minimumLength()) {
                // the plan needs a token per block piece; such a prompt is cheap on one device anyway
                return new Run(scorePart(ids, tgt, s - 1), 1);
            }
            List<NDArray> idShards = Sharding.shardAll(ids, layout, Sharding.TOKENS_AXIS);
            List<NDArray> tgtShards = Sharding.shardAll(tgt, layout, Sharding.TOKENS_AXIS);
            List<Part> parts;
            try {
                parts = group.runRanks(s, true,
                        rank -> scorePart(idShards.get(rank), tgtShards.get(rank), lastIndex(layout, rank, s)));
            } catch (RuntimeException e) {
                logger.warn("sequence-parallel group failed; discarding it (the next long prompt builds a new one): {}",
                        e.toString());
                discardGroup();
                throw new IllegalStateException("the sequence-parallel group of " + settings.ranks()
                        + " ranks failed: " + e.getMessage(), e);
            }
            List<NDArray> picked = new ArrayList<>();
            NDArray lastRow = null;
            for (Part p : parts) {
                picked.add(p.picked());
                if (p.lastRow() != null) {
                    lastRow = p.lastRow();
                }
            }
            if (lastRow == null) {
                throw new IllegalStateException("no rank held the last position " + (s - 1));
            }
            return new Run(new Part(Sharding.gather(picked, layout, s, Sharding.TOKENS_AXIS), lastRow),
                    group.worldSize());
        } finally {
            groupLock.unlock();
        }
    }

    /**
     * Log-probs of the targets and, when {@code lastIndex >= 0} (these tokens include the sequence's
     * last position, at that local index), that row's log-probs.
     */
    private Part scorePart(NDArray ids, NDArray tgt, int lastIndex) {
        ParameterStore ps = new ParameterStore(ids.getManager(), false); // one per call: its caches are not thread-safe
        NDArray logprobs = model.logits(ps, ids).logSoftmax(2); // (1, s, V)
        NDArray picked = logprobs.gather(tgt.toType(DataType.INT64, false).expandDims(2), 2).squeeze(2);
        return new Part(picked, lastIndex >= 0 ? logprobs.get(0, lastIndex) : null);
    }

    /** Where rank {@code rank}'s shard holds the sequence's last token, or -1. */
    private static int lastIndex(SequenceLayout layout, int rank, int seqLen) {
        long[] positions = TokenPositions.global(layout, rank, seqLen);
        for (int i = 0; i < positions.length; i++) {
            if (positions[i] == seqLen - 1) {
                return i;
            }
        }
        return -1;
    }

    private static List<TokenLogprob> topK(float[] logprobs, int k) {
        return IntStream.range(0, logprobs.length).boxed()
                .sorted(Comparator.<Integer>comparingDouble(i -> -logprobs[i]).thenComparingInt(i -> i))
                .limit(k).map(i -> new TokenLogprob(i, logprobs[i])).toList();
    }

    private SequenceParallelGroup newGroup() {
        Device device = manager.getDevice();
        Topology topology = Topology.virtualCpu(settings.ranks());
        if (device.isGpu()) {
            TopologyDetector.Detection d = TopologyDetector.standard().detect();
            if (d.gpuFound() && d.topology().deviceCount() == settings.ranks()) {
                topology = d.topology(); // plan for the node's links; the ranks run on the model's device
            }
        }
        logger.info("building a sequence-parallel group: {} ranks, {} plan, timeout {} ms", settings.ranks(),
                settings.strategy().cliName(), settings.groupTimeoutMs());
        return SequenceParallelGroup.builder().topology(topology).strategy(settings.strategy())
                .timeout(settings.groupTimeoutMs()).build();
    }

    private void discardGroup() {
        if (group != null) {
            try {
                group.close();
            } catch (RuntimeException e) {
                logger.warn("closing a failed group: {}", e.toString());
            }
            group = null;
        }
    }

    /**
     * Test hook: makes rank {@code rank} of the current group (built now if needed) post no sends, so
     * the next sharded prompt fails when the group's timeout passes.
     */
    void silenceRankOfCurrentGroup(int rank) {
        groupLock.lock();
        try {
            if (group == null) {
                group = newGroup();
            }
            group.makeSilent(rank);
        } finally {
            groupLock.unlock();
        }
    }

    /** Closes the group (after any sharded prompt in flight); later sharded prompts fail. */
    @Override
    public void close() {
        groupLock.lock();
        try {
            closed = true;
            discardGroup();
        } finally {
            groupLock.unlock();
        }
    }
}
