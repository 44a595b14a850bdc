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
import java.util.function.Predicate;

/**
 * A DJL {@link Trainer} for models whose {@code TaspAttentionBlock}s run inside a sequence-parallel
 * group ({@code optGroup}): DJL's unchanged {@code EasyTrain.fit} / {@code EasyTrain.trainBatch},
 * any {@code Optimizer} and {@code Loss}. Its gradient collector records the step's attention cuts on
 * a {@link SegmentedTape} and runs the segmented backward, whose attention gradients come from the
 * exact distributed backward. The model runs on the whole sequence on the calling thread (only
 * attention is spread over the group's ranks), so parameters are shared by the ranks and their
 * gradients are the sum over ranks, and the loss is normalized over the whole sequence's tokens.
 * Models without such blocks train as with a plain Trainer.
 *
 * <p>{@code Model.newTrainer} always builds a plain Trainer; use {@link #of} instead.
 */
public class TaspTrainer extends Trainer {

    private final Model model;

    /** Prefer {@link #of}, which also applies the config's initializers as {@code Model.newTrainer} does. */
    public TaspTrainer(Model model, TrainingConfig config) {
        super(model, config);
        this.model = model;
    }

    /** A trainer for {@code model}: the config's initializers are set on its block first. */
    public static TaspTrainer of(Model model, TrainingConfig config) {
        for (Pair<Initializer, Predicate<Parameter>> p : config.getInitializers()) {
            if (p.getKey() != null && p.getValue() != null) {
                model.getBlock().setInitializer(p.getKey(), p.getValue());
            }
        }
        return new TaspTrainer(model, config);
    }

    @Override
    public GradientCollector newGradientCollector() {
        return new SegmentedCollector(model);
    }

    /**
     * DJL's own collector (grad mode and whatever else DJL sets while collecting) plus a tape
     * recording on this thread; backward = the tape's segmented backward.
     */
    private static final class SegmentedCollector implements GradientCollector {
        private final GradientCollector djl;
        private final SegmentedTape tape;

        SegmentedCollector(Model model) {
            this.djl = model.getNDManager().getEngine().newGradientCollector();
            this.tape = SegmentedTape.open();
        }

        @Override
        public void backward(NDArray target) {
            tape.backward(target);
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
