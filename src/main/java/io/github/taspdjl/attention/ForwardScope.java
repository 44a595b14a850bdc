package io.github.taspdjl.attention;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import java.util.function.Supplier;

/**
 * Runs an inference forward so that it leaves only its outputs in the caller's manager: the inputs
 * move into a sub-manager for the call ({@link NDArray#tempAttach}), so every intermediate computed
 * from them lands there; the outputs are attached to the first input's manager and the sub-manager
 * closes, freeing the intermediates and handing the inputs back. Not for training: there the
 * intermediates may be needed by the backward.
 */
final class ForwardScope {

    private ForwardScope() {}

    static NDList run(NDList inputs, Supplier<NDList> body) {
        NDManager caller = inputs.head().getManager();
        try (NDManager scope = caller.newSubManager()) {
            Set<NDArray> moved = Collections.newSetFromMap(new IdentityHashMap<>());
            for (NDArray in : inputs) {
                if (moved.add(in)) {
                    in.tempAttach(scope);
                }
            }
            NDList out = body.get();
            for (NDArray o : out) {
                if (!moved.contains(o)) {
                    o.attach(caller);
                }
            }
            return out;
        }
    }
}
