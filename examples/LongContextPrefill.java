import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.attention.TaspTransformerLayer;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.runtime.Sharding;
import java.util.List;

/**
 * Long-context prefill: a causal 4-layer transformer over a 32K-token prompt, with the sequence
 * split over 8 ranks (virtual CPU ranks here). Each rank runs the whole model on its shard; only
 * attention talks to the other ranks. Run from the repository root after {@code mvn -B -DskipTests
 * package}:
 *
 * <pre>
 * java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/LongContextPrefill.java
 * </pre>
 */
public final class LongContextPrefill {

    public static void main(String[] args) {
        long seq = 32_768;
        int e = 64;
        try (NDManager manager = NDManager.newBaseManager("PyTorch");
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(8).build()) {
            SequentialBlock model = new SequentialBlock();
            for (int i = 0; i < 4; i++) {
                model.add(TaspTransformerLayer.builder().setEmbeddingSize(e).setHeadCount(4).optCausal(true).build());
            }
            model.initialize(manager, DataType.FLOAT32, new Shape(1, seq, e));
            NDArray prompt = manager.randomNormal(new Shape(1, seq, e)); // token embeddings of the prompt
            ParameterStore ps = new ParameterStore(manager, false);

            var layout = group.plan(true).layout();
            List<NDArray> shards = Sharding.shardAll(prompt, layout, Sharding.TOKENS_AXIS);
            long t0 = System.nanoTime();
            List<NDArray> outs = group.runRanks(seq, true,
                    rank -> model.forward(ps, new NDList(shards.get(rank)), false).singletonOrThrow());
            NDArray hidden = Sharding.gather(outs, layout, seq, Sharding.TOKENS_AXIS);
            System.out.printf("prefill of %d tokens on %d ranks: %.1f s, hidden states %s%n", seq, group.worldSize(),
                    (System.nanoTime() - t0) / 1e9, hidden.getShape());
            long perRank = group.lastStats().stream().mapToLong(NativeGroup.RankStats::bufferBytes).max().orElse(0);
            System.out.printf("attention buffers per rank: %.1f MiB (DJL's attention block would hold %.1f GiB of "
                    + "scores and probabilities)%n", perRank / 1048576.0, 2.0 * 4 * seq * seq * 4 / (1L << 30));
        }
    }
}
