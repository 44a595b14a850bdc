package io.github.taspdjl.attention;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.Dropout;
import ai.djl.nn.transformer.ScaledDotProductAttentionBlock;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.github.taspdjl.jni.ScalarOps;
import io.github.taspdjl.runtime.PackedSequence;
import io.github.taspdjl.runtime.RankContext;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.runtime.TokenPositions;
import java.lang.reflect.Field;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A drop-in for DJL's {@link ScaledDotProductAttentionBlock}: the same builder options, the same
 * child blocks in the same order (keyProjection, queryProjection, valueProjection,
 * resultProjection, probabilityDropout) and the same parameter format version, so it loads
 * parameters saved from DJL's block, and the same input forms:
 *
 * <ul>
 *   <li>[x (B, F, E)]: self-attention;
 *   <li>[x (B, F, E), mask (B, F, F)]: masked self-attention;
 *   <li>[keys (B, F, E), queries (B, T, E), values (B, F, E)];
 *   <li>[keys, queries, values, mask (B, T, F)].
 * </ul>
 *
 * <p>How attention runs (inference, {@code training = false}):
 *
 * <ul>
 *   <li>inside {@link RankContext#run} (a model running one rank's shard): this rank's part of TASP
 *       attention over the group's plan;
 *   <li>built with {@link Builder#optGroup}: the whole sequence goes through the group (sharded,
 *       run on every rank, gathered);
 *   <li>otherwise: single-device flash attention, which never builds the F x F score matrix.
 * </ul>
 *
 * <p>Masks: a mask of ones (or any mask whose every row is constant, which shifts all scores of a
 * row alike under DJL's mask arithmetic, as DJL's BERT passes) is ignored and a lower-triangular mask
 * of ones (F == T) runs as causal attention, on every path; any other mask is honoured only on one device, by DJL's own math (which
 * materializes the scores). {@link Builder#optCausal} makes every call causal without a mask.
 *
 * <p>Packed sequences: inside {@link PackedSequence#run} (or a rank of {@link
 * SequenceParallelGroup#runRanks(long, boolean, PackedSequence, SequenceParallelGroup.RankWork)})
 * no token attends to a token of another document, on every path. {@link Builder#optPositionEncoding}
 * (rotary embeddings) sees global positions that restart per document.
 *
 * <p>Grouped-query attention ({@link Builder#optKvHeadCount}): fewer key/value heads than query
 * heads, each key/value head shared by {@code headCount / kvHeadCount} consecutive query heads; the key
 * and value projections then have {@code kvHeadCount * E / headCount} units.
 *
 * <p>Training ({@code training = true}) on one device: attention runs through libtorch's flash
 * kernel called through the dispatcher ({@link FlashAttention#forwardRecorded}), so DJL's autograd
 * records it and no score matrix is built; with attention dropout above zero, a general mask or a
 * packed sequence it uses DJL's own math instead (debug log), as DJL's block does. With {@link
 * Builder#optGroup}: the attention is cut out of the autograd graph and recorded on the thread's
 * {@link SegmentedTape}, whose backward runs the distributed backward; train with {@code
 * io.github.taspdjl.training.TaspTrainer}, which opens the tape. Inside a {@link RankContext} of a
 * group with one rank per process ({@code ProcessGroup}, {@code NcclGroup}) each process trains on its
 * own shard: attention is cut the same way and runs this rank's part of the distributed backward;
 * {@code TaspTrainer} weights each rank's loss by its share of the tokens and sums the parameter
 * gradients over the processes.
 */
public final class TaspAttentionBlock extends AbstractBlock {

    private static final Logger logger = LoggerFactory.getLogger(TaspAttentionBlock.class);
    /** The parameter format version of DJL's ScaledDotProductAttentionBlock, which we read and write. */
    private static final byte VERSION = 1;

    private final int embeddingSize;
    private final int headCount;
    private final int kvHeadCount;
    private final boolean causal;
    private final PositionEncoding positionEncoding;
    private final SequenceParallelGroup group;
    private final Linear keyProjection;
    private final Linear queryProjection;
    private final Linear valueProjection;
    private final Linear resultProjection;
    private final Dropout attentionProbsDropout;
    /** The dropout rate of attention probabilities; NaN when unknown (a swapped DJL block). */
    private final float dropoutRate;

    private TaspAttentionBlock(Builder b, Linear key, Linear query, Linear value, Linear result, Dropout dropout,
            float dropoutRate) {
        super(VERSION);
        if (b.embeddingSize <= 0 || b.headCount <= 0 || b.embeddingSize % b.headCount != 0) {
            throw new IllegalArgumentException("embedding size (" + b.embeddingSize
                    + ") must be a positive multiple of the head count (" + b.headCount + ")");
        }
        int kvHeads = b.kvHeadCount == 0 ? b.headCount : b.kvHeadCount;
        if (kvHeads <= 0 || b.headCount % kvHeads != 0) {
            throw new IllegalArgumentException("key/value head count (" + kvHeads
                    + ") must be positive and divide the head count (" + b.headCount + ")");
        }
        this.embeddingSize = b.embeddingSize;
        this.headCount = b.headCount;
        this.kvHeadCount = kvHeads;
        this.causal = b.causal;
        this.positionEncoding = b.positionEncoding;
        this.group = b.group;
        this.keyProjection = addChildBlock("keyProjection", key);
        this.queryProjection = addChildBlock("queryProjection", query);
        this.valueProjection = addChildBlock("valueProjection", value);
        this.resultProjection = addChildBlock("resultProjection", result);
        this.attentionProbsDropout = addChildBlock("probabilityDropout", dropout);
        this.dropoutRate = dropoutRate;
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * A TaspAttentionBlock that shares the projections (and so the parameters) of an existing DJL
     * block, for swapping it into a model without copying weights.
     */
    public static TaspAttentionBlock from(ScaledDotProductAttentionBlock djl, boolean causal, SequenceParallelGroup g) {
        Builder b = builder().setEmbeddingSize(privateInt(djl, "embeddingSize")).setHeadCount(privateInt(djl, "headCount"))
                .optCausal(causal);
        b.group = g;
        Dropout dropout = null;
        for (var child : djl.getChildren()) {
            if (child.getKey().endsWith("probabilityDropout") && child.getValue() instanceof Dropout) {
                dropout = (Dropout) child.getValue();
            }
        }
        if (dropout == null) {
            throw new IllegalStateException("DJL's ScaledDotProductAttentionBlock has no probabilityDropout child "
                    + "(a DJL version this code does not know?): " + djl.getChildren().keys());
        }
        TaspAttentionBlock block = new TaspAttentionBlock(b, djl.getKeyProjection(), djl.getQueryProjection(),
                djl.getValueProjection(), djl.getResultProjection(), dropout, dropoutRate(dropout));
        // The projections are already initialized; without the input shapes of an initialized block,
        // Model.save would fail writing this block's metadata.
        if (djl.isInitialized()) {
            block.inputShapes = djl.getInputShapes();
            block.inputNames = new java.util.ArrayList<>(djl.describeInput().keys());
        }
        return block;
    }

    private static int privateInt(ScaledDotProductAttentionBlock djl, String name) {
        try {
            Field f = ScaledDotProductAttentionBlock.class.getDeclaredField(name);
            f.setAccessible(true);
            return f.getInt(djl);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("cannot read " + name + " of DJL's ScaledDotProductAttentionBlock "
                    + "(a DJL version this code does not know?): " + e, e);
        }
    }

    public Linear getKeyProjection() {
        return keyProjection;
    }

    public Linear getQueryProjection() {
        return queryProjection;
    }

    public Linear getValueProjection() {
        return valueProjection;
    }

    public Linear getResultProjection() {
        return resultProjection;
    }

    public int getEmbeddingSize() {
        return embeddingSize;
    }

    public int getHeadCount() {
        return headCount;
    }

    /** Key/value heads (equal to the head count unless grouped-query attention was asked for). */
    public int getKvHeadCount() {
        return kvHeadCount;
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        if (inputShapes.length == 1 || inputShapes.length == 2) {
            return new Shape[] {inputShapes[0]};
        } else if (inputShapes.length == 3 || inputShapes.length == 4) {
            return new Shape[] {inputShapes[1]};
        }
        throw new IllegalArgumentException("Invalid number of input shapes: " + inputShapes.length + ", must be 1-4.");
    }

    @Override
    public void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
        Shape projectionShape = new Shape(-1L, embeddingSize);
        for (Block projection : children.values()) {
            projection.initialize(manager, DataType.FLOAT32, projectionShape);
        }
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        if (training || inputs.isEmpty()) {
            return attend(ps, inputs, training, params);
        }
        if (group != null && inputs.size() == 1 && RankContext.current().isEmpty()) {
            // the whole block on every rank's shard (projections too), as runRanks by hand would
            return SequenceParallelBlock.runSharded(group, causal, this, ps, inputs, false, params);
        }
        return ForwardScope.run(inputs, () -> attend(ps, inputs, false, params));
    }

    private NDList attend(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        if (inputs.isEmpty() || inputs.size() > 4) {
            throw new IllegalArgumentException("TaspAttentionBlock takes 1 to 4 inputs, got " + inputs.size());
        }
        long e = embeddingSize;
        long n = headCount;
        long h = e / n;
        NDArray keyIn = inputs.get(0); // the input itself for self-attention, else the keys
        NDArray queryIn = inputs.size() < 3 ? inputs.get(0) : inputs.get(1);
        NDArray valueIn = inputs.size() < 3 ? inputs.get(0) : inputs.get(2);
        for (NDArray a : new NDArray[] {keyIn, queryIn, valueIn}) {
            if (a.getShape().dimension() != 3 || a.getShape().get(2) != e) {
                throw new IllegalArgumentException("TaspAttentionBlock inputs must be (batch, sequence, " + e
                        + "), got " + a.getShape());
            }
        }
        long b = queryIn.getShape().get(0);
        long f = keyIn.getShape().get(1);
        long t = queryIn.getShape().get(1);
        if (keyIn.getShape().get(0) != b || !valueIn.getShape().equals(keyIn.getShape())) {
            throw new IllegalArgumentException("keys " + keyIn.getShape() + ", queries " + queryIn.getShape()
                    + " and values " + valueIn.getShape() + " do not fit together");
        }
        NDArray mask = inputs.size() == 2 || inputs.size() == 4 ? inputs.get(inputs.size() - 1) : null;

        NDArray k = heads(keyProjection.forward(ps, new NDList(keyIn.reshape(b * f, e)), training, params).head(),
                b, f, kvHeadCount, h);
        NDArray q = heads(queryProjection.forward(ps, new NDList(queryIn.reshape(b * t, e)), training, params)
                .head(), b, t, n, h);
        NDArray v = heads(valueProjection.forward(ps, new NDList(valueIn.reshape(b * f, e)), training, params)
                .head(), b, f, kvHeadCount, h);
        if (positionEncoding != null) {
            requireSelfAttention(f, t);
            long[] positions = TokenPositions.ofLocalTokens(t);
            q = positionEncoding.apply(q, positions);
            k = positionEncoding.apply(k, positions);
        }
        PackedSequence documents = PackedSequence.current().orElse(null);
        if (documents != null) {
            requireSelfAttention(f, t);
        }

        Optional<RankContext> rank = RankContext.current();
        boolean distributed = rank.isPresent() || group != null;
        MaskKind kind = mask == null ? MaskKind.NONE : classify(mask, b, t, f);
        boolean isCausal = causal || kind == MaskKind.CAUSAL;
        NDArray result; // (B, N, T, H)
        if (training) {
            result = trainingAttention(ps, q, k, v, isCausal, kind, mask, documents, b, t, f, h, rank.isPresent(),
                    params);
        } else if (kind == MaskKind.OTHER) {
            if (distributed) {
                throw new IllegalArgumentException("TaspAttentionBlock can honour only no mask, a mask of ones or a "
                        + "causal (lower-triangular) mask inside a sequence-parallel group; got another mask "
                        + mask.getShape());
            }
            logger.debug("general attention mask: computing with DJL's operations (scores materialized)");
            result = materialized(ps, q, k, v, isCausal, mask, documents, b, t, f, h, false, params);
        } else if (rank.isPresent()) {
            RankContext c = rank.get();
            requireSelfAttention(f, t);
            if (c.causal() != isCausal) {
                throw new IllegalStateException("this rank's tokens were sharded for " + (c.causal() ? "causal" : "full")
                        + "-mask plans, but this attention block runs " + (isCausal ? "causal" : "full-mask")
                        + " attention, whose plan lays the sequence out differently; shard with causal=" + isCausal);
            }
            result = TaspAttention.forward(c.group(), c.rank(), q, k, v, isCausal, null, c.seqLen(), documents)
                    .output();
        } else if (group != null) {
            requireSelfAttention(f, t);
            result = TaspAttention.forward(group, q, k, v, isCausal, null, documents).output();
        } else {
            result = FlashAttention.forward(q, k, v, isCausal, null, documents).output();
        }
        NDArray flat = result.transpose(0, 2, 1, 3).reshape(b * t, e);
        NDArray out = resultProjection.forward(ps, new NDList(flat), training, params).head();
        return new NDList(out.reshape(b, t, e));
    }

    /** DJL's Dropout keeps its rate private; NaN (treated as "has dropout") when it cannot be read. */
    private static float dropoutRate(Dropout dropout) {
        try {
            Field f = Dropout.class.getDeclaredField("rate");
            f.setAccessible(true);
            return f.getFloat(dropout);
        } catch (ReflectiveOperationException | RuntimeException e) {
            return Float.NaN;
        }
    }

    /** Attention in training mode: recorded on one device, segmented inside a group. */
    private NDArray trainingAttention(ParameterStore ps, NDArray q, NDArray k, NDArray v, boolean isCausal,
            MaskKind kind, NDArray mask, PackedSequence documents, long b, long t, long f, long h,
            boolean inRankContext, PairList<String, Object> params) {
        if (inRankContext) {
            // One rank's shard per process (ProcessGroup, NcclGroup): this rank's part, cut and recorded.
            requireSelfAttention(f, t);
            if (kind == MaskKind.OTHER || documents != null || !(dropoutRate == 0f)) {
                throw new UnsupportedOperationException("TaspAttentionBlock trains inside a RankContext only without "
                        + "attention dropout (rate " + dropoutRate + "), general masks and packed sequences");
            }
            RankContext c = RankContext.current().orElseThrow();
            if (c.causal() != isCausal) {
                throw new IllegalStateException("this rank's tokens were sharded for " + (c.causal() ? "causal" : "full")
                        + "-mask plans, but this attention block runs " + (isCausal ? "causal" : "full-mask")
                        + " attention; shard with causal=" + isCausal);
            }
            SegmentedTape tape = SegmentedTape.active().orElseThrow(() -> new IllegalStateException(
                    "TaspAttentionBlock trains inside a RankContext only under a segmented tape: use "
                            + "io.github.taspdjl.training.TaspTrainer (EasyTrain works unchanged with it)"));
            return tape.attention(c, q, k, v, isCausal);
        }
        if (group != null) {
            requireSelfAttention(f, t);
            if (kind == MaskKind.OTHER || documents != null || !(dropoutRate == 0f)) {
                throw new UnsupportedOperationException("TaspAttentionBlock trains inside a group only without "
                        + "attention dropout (rate " + dropoutRate + "), general masks and packed sequences");
            }
            SegmentedTape tape = SegmentedTape.active().orElseThrow(() -> new IllegalStateException(
                    "TaspAttentionBlock trains inside a group only under a segmented tape: use "
                            + "io.github.taspdjl.training.TaspTrainer (EasyTrain works unchanged with it)"));
            return tape.attention(group, q, k, v, isCausal);
        }
        if (kind == MaskKind.OTHER || documents != null || !(dropoutRate == 0f)) {
            logger.debug("training with {}: DJL's attention math (scores materialized)", kind == MaskKind.OTHER
                    ? "a general mask" : documents != null ? "a packed sequence" : "attention dropout " + dropoutRate);
            return materialized(ps, q, k, v, isCausal, kind == MaskKind.OTHER ? mask : null, documents, b, t, f, h,
                    true, params);
        }
        return FlashAttention.forwardRecorded(q, k, v, isCausal, null);
    }

    private static void requireSelfAttention(long f, long t) {
        if (f != t) {
            throw new IllegalArgumentException("sequence-parallel attention needs queries and keys of one sequence: "
                    + "query length " + t + ", key length " + f);
        }
    }

    /** (B * S, E) -> (B, N, S, H). */
    private static NDArray heads(NDArray projected, long b, long s, long n, long h) {
        return projected.reshape(b, s, n, h).transpose(0, 2, 1, 3);
    }

    private enum MaskKind {
        NONE,
        CAUSAL,
        OTHER
    }

    /**
     * Every row constant (ones everywhere, or DJL BERT's all-valid offset mask): no mask, since DJL's
     * mask arithmetic then shifts a row's scores alike; ones on and below the diagonal (T == F):
     * causal; anything else: other.
     */
    private static MaskKind classify(NDArray mask, long b, long t, long f) {
        if (mask.getShape().size() != b * t * f) {
            throw new IllegalArgumentException("attention mask " + mask.getShape() + " must be (" + b + ", " + t + ", "
                    + f + ")");
        }
        NDArray m = mask.reshape(b, t, f).toType(DataType.FLOAT32, false);
        if (m.max(new int[] {2}).eq(m.min(new int[] {2})).all().getBoolean()) {
            return MaskKind.NONE;
        }
        if (t == f) {
            NDManager mm = m.getManager();
            NDArray rows = mm.arange(0, (int) t, 1, DataType.INT64).reshape(t, 1);
            NDArray cols = mm.arange(0, (int) f, 1, DataType.INT64).reshape(1, f);
            NDArray lower = cols.lte(rows).toType(DataType.FLOAT32, false).broadcast(b, t, f);
            if (m.eq(lower).all().getBoolean()) {
                return MaskKind.CAUSAL;
            }
        }
        return MaskKind.OTHER;
    }

    /** DJL's own attention math: scores, mask offset of -100000, softmax, dropout, weighted sum. */
    private NDArray materialized(ParameterStore ps, NDArray q, NDArray k, NDArray v, boolean isCausal, NDArray mask,
            PackedSequence documents, long b, long t, long f, long h, boolean training,
            PairList<String, Object> params) {
        if (kvHeadCount != headCount) { // query head i reads key/value head i / (headCount / kvHeadCount)
            k = k.repeat(1, headCount / kvHeadCount);
            v = v.repeat(1, headCount / kvHeadCount);
        }
        // Not mul(Number): autograd would keep a constant whose memory the GC frees (ScalarOps).
        NDArray scores = ScalarOps.mul(q.matMul(k.transpose(0, 1, 3, 2)), 1f / (float) Math.sqrt(h));
        NDManager mm = scores.getManager();
        if (mask != null) {
            NDArray keep = mask.reshape(b, 1, t, f).toType(DataType.FLOAT32, false);
            scores = scores.add(keep.mul(-1f).add(1f).mul(-100000f));
        }
        if (isCausal) {
            NDArray rows = mm.arange(0, (int) t, 1, DataType.INT64).reshape(t, 1);
            NDArray cols = mm.arange(0, (int) f, 1, DataType.INT64).reshape(1, f);
            scores = scores.add(cols.gt(rows).toType(DataType.FLOAT32, false).mul(-100000f));
        }
        if (documents != null) { // t == f: tokens of other documents are masked like DJL's masks
            long[] ids = new long[(int) t];
            for (int i = 0; i < t; i++) {
                ids[i] = documents.documentOf(i);
            }
            NDArray doc = mm.create(ids);
            NDArray other = doc.reshape(t, 1).neq(doc.reshape(1, t)).toType(DataType.FLOAT32, false);
            scores = scores.add(other.mul(-100000f));
        }
        NDArray probs = scores.softmax(3);
        probs = attentionProbsDropout.forward(ps, new NDList(probs), training, params).singletonOrThrow();
        return probs.matMul(v);
    }

    /** Builds a {@link TaspAttentionBlock}; the options of DJL's block plus causal and group. */
    public static final class Builder {
        private int embeddingSize;
        private int headCount;
        private int kvHeadCount;
        private boolean bias = true;
        private float attentionProbsDropoutProb = 0.1f;
        private boolean causal;
        private PositionEncoding positionEncoding;
        private SequenceParallelGroup group;

        private Builder() {}

        public Builder setEmbeddingSize(int embeddingSize) {
            this.embeddingSize = embeddingSize;
            return this;
        }

        public Builder setHeadCount(int headCount) {
            this.headCount = headCount;
            return this;
        }

        /**
         * Grouped-query attention: {@code kvHeadCount} key/value heads (a divisor of the head count);
         * the key and value projections shrink to match. Default: as many as query heads.
         */
        public Builder optKvHeadCount(int kvHeadCount) {
            this.kvHeadCount = kvHeadCount;
            return this;
        }

        /** Whether the four projections have a bias (default true, as in DJL's block; Llama has none). */
        public Builder optBias(boolean bias) {
            this.bias = bias;
            return this;
        }

        /** Dropout of attention probabilities, applied in training only (as in DJL's block). */
        public Builder optAttentionProbsDropoutProb(float attentionProbsDropoutProb) {
            this.attentionProbsDropoutProb = attentionProbsDropoutProb;
            return this;
        }

        /** Every call is causal (query i sees keys 0..i), without a mask input. */
        public Builder optCausal(boolean causal) {
            this.causal = causal;
            return this;
        }

        /**
         * Encodes queries and keys by position after the projections (rotary embeddings); needs
         * self-attention.
         */
        public Builder optPositionEncoding(PositionEncoding positionEncoding) {
            this.positionEncoding = positionEncoding;
            return this;
        }

        /** Runs attention over the whole sequence through this group (virtual or GPU ranks). */
        public Builder optGroup(SequenceParallelGroup group) {
            this.group = group;
            return this;
        }

        public TaspAttentionBlock build() {
            if (headCount <= 0 || embeddingSize % headCount != 0) {
                throw new IllegalArgumentException("embedding size (" + embeddingSize
                        + ") must be a positive multiple of the head count (" + headCount + ")");
            }
            long kvUnits = (long) (kvHeadCount == 0 ? headCount : kvHeadCount) * (embeddingSize / headCount);
            return new TaspAttentionBlock(this, projection(kvUnits), projection(embeddingSize), projection(kvUnits),
                    projection(embeddingSize), Dropout.builder().optRate(attentionProbsDropoutProb).build(),
                    attentionProbsDropoutProb);
        }

        private Linear projection(long units) {
            return Linear.builder().optBias(bias).setUnits(units).build();
        }
    }
}
