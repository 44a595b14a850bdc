import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.github.taspdjl.attention.TaspTransformerLayer;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.runtime.ProcessGroup;
import io.github.taspdjl.runtime.RankContext;
import io.github.taspdjl.runtime.Sharding;

/**
 * One rank of a job of processes: started by {@code tasp launch}, torchrun, srun or mpirun (which
 * set the variables {@code ProcessGroup} reads), every rank builds the same layer and input (same
 * seed), joins the group and runs the layer on its shard of the sequence; attention goes across the
 * group (TCP between CPU processes, NCCL between GPU processes). From the repository root after
 * {@code mvn -B -DskipTests package}:
 *
 * <pre>
 * bin/tasp launch --nprocs 4 -- java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/ProcessGroupExample.java
 * </pre>
 */
public final class ProcessGroupExample {

    public static void main(String[] args) throws Exception {
        int seq = 4096;
        int embedding = 64;
        Engine.getEngine("PyTorch").setRandomSeed(7); // the same weights and input on every rank
        try (NDManager manager = NDManager.newBaseManager("PyTorch");
                ProcessGroup group = ProcessGroup.builder().strategy(Strategy.TASP)
                        .problem("example layer, seq " + seq).join()) {
            TaspTransformerLayer layer = TaspTransformerLayer.builder().setEmbeddingSize(embedding).setHeadCount(4)
                    .optCausal(true).build();
            layer.initialize(manager, DataType.FLOAT32, new Shape(1, seq, embedding));
            NDArray x = manager.randomNormal(new Shape(1, seq, embedding));
            SequenceLayout layout = group.plan(true).layout();
            NDArray shard = Sharding.shard(x, layout, group.rank(), Sharding.TOKENS_AXIS);
            ParameterStore ps = new ParameterStore(manager, false);
            NDArray out = RankContext.run(group, group.rank(), seq, true,
                    () -> layer.forward(ps, new NDList(shard), false).singletonOrThrow());
            System.out.println("rank " + group.rank() + " of " + group.worldSize() + " over " + group.transport()
                    + ": output " + out.getShape() + " for its " + shard.getShape().get(1) + " tokens");
        }
    }
}
