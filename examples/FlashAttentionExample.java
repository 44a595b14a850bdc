import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.FlashAttention;

/**
 * Single-device flash attention on DJL NDArrays, forward and backward. Run from the repository root
 * after {@code mvn -B -DskipTests package}:
 *
 * <pre>
 * java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/FlashAttentionExample.java
 * </pre>
 */
public final class FlashAttentionExample {

    public static void main(String[] args) {
        try (NDManager manager = NDManager.newBaseManager("PyTorch")) {
            NDArray q = manager.randomNormal(new Shape(1, 8, 4096, 64)); // (batch, heads, seq, head_dim)
            NDArray k = manager.randomNormal(new Shape(1, 2, 4096, 64)); // grouped-query: 2 kv heads
            NDArray v = manager.randomNormal(new Shape(1, 2, 4096, 64));
            FlashAttention.Result r = FlashAttention.forward(q, k, v, /* causal */ true);
            NDArray out = r.output(); // (1, 8, 4096, 64); no 4096 x 4096 score matrix was built
            NDArray lse = r.lse(); // (1, 8, 4096), float32
            FlashAttention.Gradients g = FlashAttention.backward(out.onesLike(), q, k, v, out, lse, true, null);
            System.out.println("kernel " + r.backend() + ", output " + out.getShape() + ", dk " + g.dk().getShape());
        }
    }
}
