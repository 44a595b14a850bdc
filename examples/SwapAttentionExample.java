import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.transformer.ScaledDotProductAttentionBlock;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.attention.AttentionSwap;

/**
 * Swaps DJL's attention blocks in an existing model for TaspAttentionBlocks (same weights, flash
 * attention instead of materialized scores) and checks that the model's output is unchanged. Run
 * from the repository root after {@code mvn -B -DskipTests package}:
 *
 * <pre>
 * java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/SwapAttentionExample.java
 * </pre>
 */
public final class SwapAttentionExample {

    public static void main(String[] args) {
        int e = 64;
        try (NDManager manager = NDManager.newBaseManager("PyTorch")) {
            SequentialBlock model = new SequentialBlock();
            for (int i = 0; i < 3; i++) {
                model.add(ScaledDotProductAttentionBlock.builder().setEmbeddingSize(e).setHeadCount(8)
                        .optAttentionProbsDropoutProb(0f).build());
                model.add(Linear.builder().setUnits(e).build());
                model.add(Activation::relu);
            }
            model.initialize(manager, DataType.FLOAT32, new Shape(1, 2048, e));
            NDArray x = manager.randomNormal(new Shape(1, 2048, e));
            ParameterStore ps = new ParameterStore(manager, false);
            NDArray before = model.forward(ps, new NDList(x), false).singletonOrThrow();

            AttentionSwap.Report report = AttentionSwap.swap(model, /* causal */ false, /* group */ null);
            System.out.println(report);

            NDArray after = model.forward(ps, new NDList(x), false).singletonOrThrow();
            System.out.println("max difference after the swap = " + after.sub(before).abs().max().getFloat());
        }
    }
}
