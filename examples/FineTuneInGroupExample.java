import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import io.github.taspdjl.attention.TaspTransformerLayer;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.training.Losses;
import io.github.taspdjl.training.TaspTrainer;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Fine-tunes a saved model with its attention over 4 virtual ranks: Model.load, TaspTrainer,
 * DJL's unchanged EasyTrain.fit over a Dataset, Model.save. Run from the repository root after
 * {@code mvn -B -DskipTests package}:
 * {@code java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/FineTuneInGroupExample.java}
 */
public final class FineTuneInGroupExample {

    static final int E = 32;
    static final int SEQ = 1024;

    /** Your model; built with a group, its attention runs over the group's ranks. */
    static SequentialBlock net(SequenceParallelGroup group) {
        SequentialBlock net = new SequentialBlock();
        net.add(TaspTransformerLayer.builder().setEmbeddingSize(E).setHeadCount(4).optCausal(true).optGroup(group)
                .build());
        net.add(Linear.builder().setUnits(E).build());
        return net;
    }

    public static void main(String[] args) throws Exception {
        Path dir = Files.createTempDirectory("fine-tune");
        try (NDManager manager = NDManager.newBaseManager("PyTorch")) {
            // a checkpoint to start from (here a freshly initialized one; yours comes from a pretraining run)
            try (Model pretrained = Model.newInstance("long-context", "PyTorch")) {
                pretrained.setBlock(net(null));
                pretrained.getBlock().initialize(manager, DataType.FLOAT32, new Shape(1, SEQ, E));
                pretrained.save(dir, "long-context");
            }
            try (SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4).build();
                    Model model = Model.newInstance("long-context", "PyTorch")) {
                model.setBlock(net(group)); // the same block, now with attention over the group
                // initialized first only so that Model.save works after Model.load (DJL 0.36 restores no input names)
                model.getBlock().initialize(manager, DataType.FLOAT32, new Shape(1, SEQ, E));
                model.load(dir, "long-context");
                NDArray x = manager.randomNormal(new Shape(4, SEQ, E));
                NDArray y = manager.randomNormal(new Shape(4, SEQ, E));
                ArrayDataset data = new ArrayDataset.Builder().setData(x).optLabels(y).setSampling(1, false).build();
                DefaultTrainingConfig config = new DefaultTrainingConfig(Losses.l2Loss())
                        .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.05f)).build())
                        .addTrainingListeners(TrainingListener.Defaults.basic());
                try (Trainer trainer = TaspTrainer.of(model, config)) {
                    EasyTrain.fit(trainer, 2, data, null); // 2 epochs of 4 sequences
                    System.out.println("fine-tuned over " + group.worldSize() + " ranks: training loss "
                            + trainer.getTrainingResult().getTrainLoss());
                }
                model.save(dir, "long-context");
                System.out.println("saved to " + dir);
            }
        }
    }
}
