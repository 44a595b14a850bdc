import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.models.LlamaConfig;
import io.github.taspdjl.models.LlamaModel;
import io.github.taspdjl.models.LlamaWeights;
import io.github.taspdjl.runtime.PackedSequence;
import java.nio.file.Path;

/**
 * A Llama-style model: random weights, or a Hugging Face safetensors checkpoint given as the argument.
 * Run from the repository root after {@code mvn -B -DskipTests package}:
 * {@code java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/LlamaExample.java [checkpoint]}
 */
public final class LlamaExample {

    public static void main(String[] args) throws Exception {
        // vocab, hidden, MLP, layers, query heads, key/value heads, rope theta, RMSNorm eps, tied head
        LlamaConfig config = new LlamaConfig(32000, 256, 688, 4, 8, 2, 500_000, 1e-5, false);
        try (NDManager manager = NDManager.newBaseManager("PyTorch")) {
            LlamaModel llama = LlamaModel.builder().setConfig(config).build();
            if (args.length > 0) {
                LlamaWeights.loadSafetensors(llama, Path.of(args[0]), manager); // file or sharded folder
            } else {
                llama.initialize(manager);
            }
            NDArray ids = manager.randomInteger(0, config.vocabSize(), new Shape(1, 4096), DataType.INT64);
            NDArray logits = llama.forward(ids); // (1, 4096, 32000)
            // Two documents packed in one sequence: no attention across the boundary, positions restart.
            NDArray packed = PackedSequence.run(PackedSequence.ofLengths(1000, 3096), () -> llama.forward(ids));
            System.out.println(logits.getShape() + ", packed " + packed.getShape());
        }
    }
}
