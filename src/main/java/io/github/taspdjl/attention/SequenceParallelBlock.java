package io.github.taspdjl.attention;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.runtime.PackedSequence;
import io.github.taspdjl.runtime.RankContext;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.runtime.Sharding;
import java.util.ArrayList;
import java.util.List;

/**
 * A whole model run sequence-parallel in one call: the input is the full sequence (batch,
 * sequence, ...), the output the full output. Inside, the input is sharded for the group's plan,
 * every rank runs the whole model on its shard at once (its {@link TaspAttentionBlock}s exchange
 * keys and values over the plan; every other block works on the rank's tokens alone), and the
 * outputs are gathered in sequence order: the same work as calling {@link
 * SequenceParallelGroup#runRanks} by hand, and only the output is left in the input's manager.
 *
 * <p>Every block but attention must work per token; {@link PerTokenCheck} refuses one that does
 * not (DJL's default LayerNorm, for one) before any work. Inference only: the distributed
 * backward is not built yet.
 */
public final class SequenceParallelBlock extends AbstractBlock {

    private static final byte VERSION = 1;

    private final Block model;
    private final SequenceParallelGroup group;
    private final boolean causal;

    private SequenceParallelBlock(Block model, SequenceParallelGroup group, boolean causal) {
        super(VERSION);
        this.model = addChildBlock("model", model);
        this.group = group;
        this.causal = causal;
    }

    /**
     * Wraps {@code model}, whose inputs and outputs are (batch, sequence, ...) arrays.
     *
     * @param causal the mask of the model's attention (the shards are laid out for that plan)
     * @throws IllegalArgumentException when a block of the model mixes tokens (see {@link PerTokenCheck})
     */
    public static SequenceParallelBlock wrap(Block model, SequenceParallelGroup group, boolean causal) {
        if (model == null || group == null) {
            throw new IllegalArgumentException("SequenceParallelBlock.wrap needs a model and a group");
        }
        PerTokenCheck.requirePerToken(model, 3); // (batch, sequence, embedding); checked again per input rank
        return new SequenceParallelBlock(model, group, causal);
    }

    public Block getModel() {
        return model;
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return model.getOutputShapes(inputShapes);
    }

    @Override
    protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
        model.initialize(manager, dataType, inputShapes);
    }

    @Override
    protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        if (RankContext.current().isPresent()) {
            return model.forward(ps, inputs, training, params); // already on a rank's shard
        }
        return runSharded(group, causal, model, ps, inputs, training, params);
    }

    /**
     * Shards every input along the sequence axis, runs {@code block} on every rank's shard and
     * gathers every output: the one-call path of this class and of blocks built with a group.
     */
    static NDList runSharded(SequenceParallelGroup group, boolean causal, Block block, ParameterStore ps,
            NDList inputs, boolean training, PairList<String, Object> params) {
        if (training) {
            throw new UnsupportedOperationException("a model cannot train sequence-parallel yet: the distributed "
                    + "backward is not built. Train on one device, or run inference (training = false).");
        }
        if (inputs.isEmpty()) {
            throw new IllegalArgumentException("sequence-parallel forward needs at least one input");
        }
        int rank = inputs.head().getShape().dimension();
        long seqLen = rank < 2 ? -1 : inputs.head().getShape().get(PerTokenCheck.SEQUENCE_AXIS);
        for (NDArray in : inputs) {
            if (in.getShape().dimension() < 2 || in.getShape().get(PerTokenCheck.SEQUENCE_AXIS) != seqLen) {
                throw new IllegalArgumentException("sequence-parallel inputs are (batch, sequence, ...) arrays of one "
                        + "sequence length; got " + shapes(inputs));
            }
        }
        PerTokenCheck.requirePerToken(block, rank);
        SequenceLayout layout = group.plan(causal).layout();
        if (seqLen < layout.minimumLength()) {
            throw new IllegalArgumentException("sequence length " + seqLen + " is shorter than the "
                    + layout.minimumLength() + " tokens a " + group.plan(causal).strategy().cliName() + " plan over "
                    + group.worldSize() + " ranks needs");
        }
        NDManager caller = inputs.head().getManager();
        try (NDManager scope = caller.newSubManager()) {
            // shards, every rank's intermediates and outputs live in the scope; only the gathered
            // outputs move to the caller's manager
            List<NDList> shards = new ArrayList<>();
            for (int r = 0; r < group.worldSize(); r++) {
                shards.add(new NDList());
            }
            for (NDArray in : inputs) {
                List<NDArray> parts = Sharding.shardAll(in, layout, Sharding.TOKENS_AXIS);
                for (int r = 0; r < parts.size(); r++) {
                    parts.get(r).attach(scope);
                    shards.get(r).add(parts.get(r));
                }
            }
            // a packed sequence set on the caller's thread (PackedSequence.run) goes with every rank
            PackedSequence documents = PackedSequence.current().orElse(null);
            List<NDList> outs = group.runRanks(seqLen, causal, documents,
                    r -> block.forward(ps, shards.get(r), false, params));
            NDList result = new NDList();
            for (int i = 0; i < outs.get(0).size(); i++) {
                List<NDArray> parts = new ArrayList<>();
                for (NDList out : outs) {
                    parts.add(out.get(i));
                }
                NDArray gathered = Sharding.gather(parts, layout, seqLen, Sharding.TOKENS_AXIS);
                gathered.attach(caller);
                result.add(gathered);
            }
            return result;
        }
    }

    private static String shapes(NDList inputs) {
        List<Shape> s = new ArrayList<>();
        for (NDArray a : inputs) {
            s.add(a.getShape());
        }
        return s.toString();
    }
}
