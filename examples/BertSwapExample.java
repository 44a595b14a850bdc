import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.transformer.BertBlock;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.attention.AttentionSwap;

/**
 * Swaps the attention of DJL's own BERT for TASP attention, keeping its weights. Run from the
 * repository root after {@code mvn -B -DskipTests package}:
 * {@code java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/BertSwapExample.java}
 */
public final class BertSwapExample {

    public static void main(String[] args) {
        try (NDManager manager = NDManager.newBaseManager("PyTorch")) {
            BertBlock bert = BertBlock.builder().setTokenDictionarySize(1000).optTransformerBlockCount(3)
                    .optEmbeddingSize(128).optAttentionHeadCount(4).optMaxSequenceLength(512).build();
            Shape ids = new Shape(1, 512);
            bert.initialize(manager, DataType.FLOAT32, ids, ids, ids);
            System.out.println(AttentionSwap.swap(bert, /* causal */ false, /* group */ null)); // 3 swapped
            NDList in = new NDList(manager.ones(ids, DataType.INT32), manager.zeros(ids, DataType.INT32),
                    manager.ones(ids, DataType.INT32));
            System.out.println(bert.forward(new ParameterStore(manager, false), in, false).head().getShape());
        }
    }
}
