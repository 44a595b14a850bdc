import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.models.LlamaConfig;
import io.github.taspdjl.models.LlamaModel;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.runtime.Sharding;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * A small Llama-style model (grouped-query attention, rotary embeddings, RMSNorm, SwiGLU) built,
 * saved, loaded back, then run over 32K tokens on 8 virtual ranks and on one device. Run from the
 * repository root after {@code mvn -B -DskipTests package}:
 *
 * <pre>
 * java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/LlamaLongContext.java
 * </pre>
 */
public final class LlamaLongContext {

    public static void main(String[] args) throws Exception {
        long seq = 32_768;
        // vocab, hidden, MLP, layers, 4 query heads, 1 key/value head, rope theta, RMSNorm eps, untied head
        LlamaConfig config = new LlamaConfig(256, 64, 128, 2, 4, 1, 500_000, 1e-5, false);
        Path dir = Files.createTempDirectory("llama");
        try (NDManager manager = NDManager.newBaseManager("PyTorch");
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(8).build()) {
            try (Model model = Model.newInstance("llama", "PyTorch")) {
                LlamaModel built = LlamaModel.builder().setConfig(config).build();
                built.initialize(model.getNDManager());
                model.setBlock(built);
                model.save(dir, "llama");
            }
            try (Model model = Model.newInstance("llama", "PyTorch")) {
                LlamaModel llama = LlamaModel.builder().setConfig(config).build();
                model.setBlock(llama);
                model.load(dir, "llama");
                NDArray ids = manager.randomInteger(0, config.vocabSize(), new Shape(1, seq), DataType.INT64);

                long t0 = System.nanoTime();
                NDArray single = llama.forward(ids);
                long t1 = System.nanoTime();
                var layout = group.plan(true).layout(); // causal: zigzag shards, not contiguous
                List<NDArray> shards = Sharding.shardAll(ids, layout, Sharding.TOKENS_AXIS);
                List<NDArray> parts = group.runRanks(seq, true, rank -> llama.forward(shards.get(rank)));
                NDArray ranks = Sharding.gather(parts, layout, seq, Sharding.TOKENS_AXIS);
                long t2 = System.nanoTime();

                System.out.printf("loaded a saved %d-layer Llama-style model; %d tokens -> logits %s%n",
                        config.layers(), seq, ranks.getShape());
                System.out.printf("one device %.1f s, 8 virtual ranks %.1f s%n", (t1 - t0) / 1e9, (t2 - t1) / 1e9);
                System.out.println("8 ranks (each holding 1/8 of the tokens, rotary positions global) vs one device: "
                        + "max logit difference = " + ranks.sub(single).abs().max().getFloat());
            }
        }
    }
}
