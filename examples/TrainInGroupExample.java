import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import io.github.taspdjl.attention.TaspTransformerLayer;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.training.Losses;
import io.github.taspdjl.training.TaspTrainer;

/**
 * Trains a model whose attention runs over 8 virtual ranks with DJL's unchanged EasyTrain. Run from
 * the repository root after {@code mvn -B -DskipTests package}:
 * {@code java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/TrainInGroupExample.java}
 */
public final class TrainInGroupExample {

    public static void main(String[] args) {
        try (NDManager manager = NDManager.newBaseManager("PyTorch");
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(8).build();
                Model model = Model.newInstance("long-context", "PyTorch")) {
            SequentialBlock net = new SequentialBlock();
            net.add(TaspTransformerLayer.builder().setEmbeddingSize(64).setHeadCount(4).optCausal(true)
                    .optGroup(group).build());
            net.add(Linear.builder().setUnits(64).build());
            model.setBlock(net);
            // TaspTrainer instead of model.newTrainer: its gradient collector runs the distributed backward
            try (Trainer trainer = TaspTrainer.of(model, new DefaultTrainingConfig(Losses.l2Loss()))) {
                trainer.initialize(new Shape(1, 4096, 64));
                for (int step = 0; step < 3; step++) {
                    NDList x = new NDList(manager.randomNormal(new Shape(1, 4096, 64)));
                    NDList y = new NDList(manager.randomNormal(new Shape(1, 4096, 64)));
                    try (Batch batch = new Batch(manager.newSubManager(), x, y, 1, null, null, step, 3)) {
                        EasyTrain.trainBatch(trainer, batch);
                        trainer.step();
                    }
                }
                System.out.println("3 training steps with attention over " + group.worldSize() + " ranks (EasyTrain, "
                        + "TaspTrainer's distributed backward)");
            }
        }
    }
}
