import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.attention.SequenceParallelBlock;
import io.github.taspdjl.attention.TaspTransformerLayer;
import io.github.taspdjl.runtime.SequenceParallelGroup;

/**
 * A whole model run sequence-parallel in one call, checked against the same model on one device;
 * and the check that refuses a layer that is not per token. Run it from the repository root after
 * {@code mvn -B -DskipTests package}:
 * {@code java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/SequenceParallelModel.java}
 */
public final class SequenceParallelModel {

    public static void main(String[] args) {
        long seq = 4096;
        int e = 64;
        try (NDManager manager = NDManager.newBaseManager("PyTorch");
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(8).build()) {
            SequentialBlock model = new SequentialBlock();
            for (int i = 0; i < 2; i++) {
                model.add(TaspTransformerLayer.builder().setEmbeddingSize(e).setHeadCount(4).optCausal(true).build());
            }
            model.add(LayerNorm.builder().axis(2).build()); // per token: normalizes each token's embedding
            model.add(Linear.builder().setUnits(e).build());
            model.initialize(manager, DataType.FLOAT32, new Shape(1, seq, e));
            ParameterStore ps = new ParameterStore(manager, false);
            NDArray x = manager.randomNormal(new Shape(1, seq, e));

            // one call: shards x for the plan, runs the whole model on every rank, gathers the output
            SequenceParallelBlock parallel = SequenceParallelBlock.wrap(model, group, /* causal */ true);
            NDArray out = parallel.forward(ps, new NDList(x), false).singletonOrThrow();
            NDArray single = model.forward(ps, new NDList(x), false).singletonOrThrow();
            System.out.println(seq + " tokens on " + group.worldSize() + " ranks, output " + out.getShape()
                    + ", max difference to one device = " + out.sub(single).abs().max().getFloat());

            // DJL's default LayerNorm normalizes over (sequence, embedding): refused before any work
            SequentialBlock mixing = new SequentialBlock().add(LayerNorm.builder().build());
            try {
                SequenceParallelBlock.wrap(mixing, group, true);
                throw new IllegalStateException("a sequence-mixing LayerNorm was accepted");
            } catch (IllegalArgumentException refused) {
                System.out.println("refused: " + refused.getMessage());
            }
        }
    }
}
