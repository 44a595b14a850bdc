package io.github.taspdjl.training;

import static org.testng.Assert.assertFalse;
import static org.testng.Assert.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import io.github.taspdjl.attention.TaspTransformerLayer;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import java.nio.file.Files;
import java.nio.file.Path;
import org.testng.annotations.Test;

/**
 * A model whose attention runs over 8 virtual ranks trains with DJL's unchanged EasyTrain through
 * {@link TaspTrainer}, and matches the same model trained on one device (plain Trainer, autograd
 * through recorded flash attention) step by step: losses and every parameter (SGD).
 */
public class TaspTrainerTest {

    static final int E = 32;
    private static final int HEADS = 4;
    private static final long SEQ = 131; // odd: blocks of unequal length

    @Test
    public void trainsInsideAGroupLikeOnOneDevice() {
        try (NDManager m = NDManager.newBaseManager("PyTorch");
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(8).strategy(Strategy.TASP)
                        .timeout(30_000).build();
                Model distributed = Model.newInstance("distributed", "PyTorch");
                Model single = Model.newInstance("single", "PyTorch")) {
            Engine.getEngine("PyTorch").setRandomSeed(5);
            distributed.setBlock(model(group));
            single.setBlock(model(null));
            Shape input = new Shape(2, SEQ, E);
            try (Trainer ours = TaspTrainer.of(distributed, config());
                    Trainer reference = single.newTrainer(config())) {
                ours.initialize(input);
                reference.initialize(input);
                copyParameters(distributed, single);
                NDArray x = m.randomNormal(input);
                NDArray y = m.randomNormal(input);
                for (int step = 0; step < 3; step++) {
                    double lossOurs = trainStep(ours, x, y);
                    double lossRef = trainStep(reference, x, y);
                    assertTrue(Math.abs(lossOurs - lossRef) <= 1e-5 * Math.abs(lossRef),
                            "step " + step + ": loss " + lossOurs + " vs " + lossRef);
                    double diff = maxParameterDifference(distributed, single);
                    assertTrue(diff <= 1e-5, "step " + step + ": max parameter difference " + diff);
                }
            }
        }
    }

    static SequentialBlock model(SequenceParallelGroup group) {
        SequentialBlock block = new SequentialBlock();
        for (int i = 0; i < 2; i++) {
            block.add(TaspTransformerLayer.builder().setEmbeddingSize(E).setHeadCount(HEADS).optCausal(true)
                    .optGroup(group).build());
        }
        block.add(Linear.builder().setUnits(E).build());
        return block;
    }

    static DefaultTrainingConfig config() {
        return new DefaultTrainingConfig(Losses.l2Loss())
                // SGD: parameter differences then mirror gradient differences (Adam's first steps are
                // lr * sign(g), which flips on the key bias, whose exact gradient is zero)
                .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.05f)).build());
    }

    /** One EasyTrain step; returns the loss before it (the loss the step differentiates). */
    static double trainStep(Trainer trainer, NDArray x, NDArray y) {
        double loss = trainer.getLoss().evaluate(new NDList(y), trainer.evaluate(new NDList(x))).getFloat();
        NDManager bm = x.getManager().newSubManager();
        try (Batch batch = new Batch(bm, new NDList(x.duplicate()), new NDList(y.duplicate()), 1, null, null, 0, 1)) {
            EasyTrain.trainBatch(trainer, batch);
            trainer.step();
        }
        return loss;
    }

    static void copyParameters(Model from, Model to) {
        ai.djl.nn.ParameterList a = from.getBlock().getParameters();
        ai.djl.nn.ParameterList b = to.getBlock().getParameters();
        for (int i = 0; i < a.size(); i++) {
            b.get(i).getValue().getArray().set(a.get(i).getValue().getArray().toFloatArray());
        }
    }

    static double maxParameterDifference(Model a, Model b) {
        ai.djl.nn.ParameterList pa = a.getBlock().getParameters();
        ai.djl.nn.ParameterList pb = b.getBlock().getParameters();
        double worst = 0;
        for (int i = 0; i < pa.size(); i++) {
            NDArray x = pa.get(i).getValue().getArray().toType(DataType.FLOAT64, true);
            NDArray z = pb.get(i).getValue().getArray().toType(DataType.FLOAT64, true);
            worst = Math.max(worst, x.sub(z).abs().max().getDouble());
        }
        return worst;
    }

    /**
     * A loaded model (Model.load freezes what it loads) trains under TaspTrainer.of as under DJL's
     * own newTrainer: both unfreeze it, and one step gives the same parameters. A model with only
     * some parameters frozen keeps them frozen.
     */
    @Test
    public void ofUnfreezesALoadedModelAsNewTrainerDoes() throws Exception {
        Path dir = Files.createTempDirectory("tasp-trainer-load");
        Shape input = new Shape(2, 16, E);
        try (NDManager m = NDManager.newBaseManager("PyTorch");
                Model saved = Model.newInstance("saved", "PyTorch");
                Model ours = Model.newInstance("saved", "PyTorch");
                Model theirs = Model.newInstance("saved", "PyTorch")) {
            Engine.getEngine("PyTorch").setRandomSeed(11);
            saved.setBlock(model(null));
            saved.getBlock().initialize(m, DataType.FLOAT32, input);
            saved.save(dir, "saved");
            for (Model loaded : new Model[] {ours, theirs}) {
                loaded.setBlock(model(null));
                loaded.getBlock().initialize(m, DataType.FLOAT32, input);
                loaded.load(dir, "saved");
                assertFalse(loaded.getBlock().getParameters().values().stream().anyMatch(p -> p.getArray().hasGradient()),
                        "Model.load leaves every parameter frozen");
            }
            NDArray x = m.randomNormal(input);
            NDArray y = m.randomNormal(input);
            try (Trainer a = TaspTrainer.of(ours, config()); Trainer b = theirs.newTrainer(config())) {
                double lossA = trainStep(a, x, y);
                double lossB = trainStep(b, x, y);
                assertTrue(Math.abs(lossA - lossB) <= 1e-6 * Math.abs(lossB), lossA + " vs " + lossB);
                double moved = maxParameterDifference(ours, saved);
                assertTrue(moved > 1e-6, "the step changed no parameter: " + moved);
                double diff = maxParameterDifference(ours, theirs);
                assertTrue(diff <= 1e-6, "TaspTrainer.of vs newTrainer after one step: " + diff);
            }
            // Some parameters frozen on purpose: of() keeps that choice.
            Parameter first = ours.getBlock().getParameters().get(0).getValue();
            first.freeze(true);
            try (Trainer c = TaspTrainer.of(ours, config())) {
                assertFalse(first.getArray().hasGradient(), first.getName() + " was unfrozen");
            }
        }
    }
}
