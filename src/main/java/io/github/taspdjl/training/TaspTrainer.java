package io.github.taspdjl.training;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.TrainingConfig;
import ai.djl.training.initializer.Initializer;
import ai.djl.util.Pair;
import io.github.taspdjl.attention.SegmentedTape;
import io.github.taspdjl.runtime.LocalGpuGroup;
import io.github.taspdjl.runtime.RankContext;
import io.github.taspdjl.runtime.RankGroup;
import io.github.taspdjl.runtime.RankProgram;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Predicate;

/**
 * A DJL {@link Trainer} for models whose {@code TaspAttentionBlock}s run inside a sequence-parallel
 * group: DJL's unchanged {@code EasyTrain.fit} / {@code EasyTrain.trainBatch}, any {@code Optimizer}
 * and {@code Loss}. Its gradient collector records the step's attention cuts on a {@link
 * SegmentedTape} and runs the segmented backward, whose attention gradients come from the exact
 * distributed backward. Two ways to run:
 * <ul>
 *   <li>Blocks built with {@code optGroup} (an in-process group): the model runs on the whole
 *       sequence on the calling thread (only attention is spread over the group's ranks), so
 *       parameters are shared by the ranks and their gradients are the sum over ranks, and the loss
 *       is normalized over the whole sequence's tokens.
 *   <li>One rank per process ({@code ProcessGroup} over TCP or NCCL, {@code NcclGroup}): each process
 *       runs the model on its own shard inside {@code RankContext.run(group, rank, seqLen, causal,
 *       ...)} (around {@code EasyTrain.trainBatch} and {@link #step}). The loss must be a mean over the
 *       rank's tokens (DJL's losses are means); the backward weights it by the rank's share of the
 *       sequence's tokens, so the sum over ranks is the loss normalized over the whole sequence, and
 *       {@link #step} first sums the parameter gradients over the processes (an fp32 all-reduce over
 *       the group's transport), so every process applies the same update.
 * </ul>
 * Models without such blocks train as with a plain Trainer.
 *
 * <p>{@code Model.newTrainer} always builds a plain Trainer; use {@link #of} instead.
 */
public class TaspTrainer extends Trainer {

    private final Model model;
    /** The group whose processes' gradients the next step sums (set by a backward in a RankContext). */
    private volatile RankGroup pendingSum;

    /** Prefer {@link #of}, which also applies the config's initializers as {@code Model.newTrainer} does. */
    public TaspTrainer(Model model, TrainingConfig config) {
        super(model, config);
        this.model = model;
    }

    /**
     * A trainer for {@code model}, prepared as {@code Model.newTrainer} prepares one: the config's
     * initializers are set on its block, and a model whose parameters are all frozen (what
     * {@code Model.load} leaves) has them unfrozen, except running statistics. A model with only
     * some parameters frozen keeps them frozen: that is a deliberate choice of what to fine-tune.
     */
    public static TaspTrainer of(Model model, TrainingConfig config) {
        if (allFrozen(model)) {
            model.getBlock().freezeParameters(false, p -> p.getType() != Parameter.Type.RUNNING_MEAN
                    && p.getType() != Parameter.Type.RUNNING_VAR);
        }
        for (Pair<Initializer, Predicate<Parameter>> p : config.getInitializers()) {
            if (p.getKey() != null && p.getValue() != null) {
                model.getBlock().setInitializer(p.getKey(), p.getValue());
            }
        }
        return new TaspTrainer(model, config);
    }

    // Model.load replaces every parameter's array by one that requires no gradient (DJL's PtModel
    // unfreezes them in newTrainer, keyed on a field of its own); "no trainable parameter's array
    // requires a gradient" is the state it leaves.
    private static boolean allFrozen(Model model) {
        if (model.getBlock() == null) {
            return false;
        }
        boolean any = false;
        for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
            Parameter parameter = p.getValue();
            if (parameter.getType() == Parameter.Type.RUNNING_MEAN
                    || parameter.getType() == Parameter.Type.RUNNING_VAR) {
                continue;
            }
            if (!parameter.isInitialized()) {
                return false;
            }
            if (parameter.getArray().hasGradient()) {
                return false;
            }
            any = true;
        }
        return any;
    }

    @Override
    public GradientCollector newGradientCollector() {
        return new SegmentedCollector(this);
    }

    /**
     * Sums the parameter gradients over the processes of the group the step's backward ran in (if
     * it ran inside a {@code RankContext} of a group with one rank per process), then updates.
     */
    @Override
    public void step() {
        RankGroup group = pendingSum;
        pendingSum = null;
        if (group != null) {
            sumGradients(group);
        }
        super.step();
    }

    private void sumGradients(RankGroup group) {
        List<NDArray> grads = new ArrayList<>();
        try {
            for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
                NDArray array = p.getValue().getArray();
                if (array.hasGradient()) {
                    grads.add(array.getGradient());
                }
            }
            group.allReduceSum(grads);
        } finally {
            grads.forEach(NDArray::close); // views of the gradients; the gradients stay
        }
    }

    /** The weight of this rank's loss in a RankContext: its tokens over the sequence's (1 outside). */
    private float lossWeight() {
        Optional<RankContext> c = RankContext.current();
        if (c.isEmpty() || c.get().group().worldSize() == 1) {
            return 1f;
        }
        RankContext rc = c.get();
        if (rc.group() instanceof SequenceParallelGroup || rc.group() instanceof LocalGpuGroup) {
            throw new UnsupportedOperationException("TaspTrainer trains inside a RankContext only with one rank per "
                    + "process (ProcessGroup, NcclGroup); for ranks of one process build the blocks with optGroup");
        }
        pendingSum = rc.group();
        long local = RankProgram.localTokens(rc.group().plan(rc.causal()).layout(), rc.rank(), rc.seqLen());
        return (float) ((double) local / rc.seqLen());
    }

    /**
     * DJL's own collector (grad mode and whatever else DJL sets while collecting) plus a tape
     * recording on this thread; backward = the tape's segmented backward.
     */
    private static final class SegmentedCollector implements GradientCollector {
        private final GradientCollector djl;
        private final SegmentedTape tape;

        private final TaspTrainer trainer;

        SegmentedCollector(TaspTrainer trainer) {
            this.trainer = trainer;
            this.djl = trainer.model.getNDManager().getEngine().newGradientCollector();
            this.tape = SegmentedTape.open();
        }

        @Override
        public void backward(NDArray target) {
            tape.backward(target, trainer.lossWeight());
        }

        @Override
        public void zeroGradients() {
            djl.zeroGradients();
        }

        @Override
        public void close() {
            tape.close();
            djl.close();
        }
    }
}
