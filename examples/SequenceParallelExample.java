import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.FlashAttention;
import io.github.taspdjl.attention.TaspAttention;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.runtime.SequenceParallelGroup;

/**
 * TASP attention over 8 virtual ranks (threads of this JVM), checked against single-device flash
 * attention over the whole sequence. Run from the repository root after {@code mvn -B -DskipTests
 * package}:
 *
 * <pre>
 * java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/SequenceParallelExample.java
 * </pre>
 */
public final class SequenceParallelExample {

    public static void main(String[] args) {
        try (NDManager manager = NDManager.newBaseManager("PyTorch");
                SequenceParallelGroup group =
                        SequenceParallelGroup.builder().worldSize(8).strategy(Strategy.TASP).build()) {
            NDArray q = manager.randomNormal(new Shape(1, 8, 10000, 64));
            NDArray k = manager.randomNormal(new Shape(1, 2, 10000, 64));
            NDArray v = manager.randomNormal(new Shape(1, 2, 10000, 64));
            TaspAttention.Result r = TaspAttention.forward(group, q, k, v, /* causal */ true, null);
            NDArray single = FlashAttention.forward(q, k, v, true).output();
            // the plan that ran: TASP asked with a causal mask runs TASP_CAUSAL, and the notes say why
            System.out.println("plan " + r.plan().strategy() + " with " + r.plan().cycles().size() + " cycles "
                    + r.plan().notes() + "; max difference to one device = "
                    + r.output().sub(single).abs().max().getFloat());
        }
    }
}
