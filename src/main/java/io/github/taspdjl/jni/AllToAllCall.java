package io.github.taspdjl.jni;

import ai.djl.ndarray.NDArray;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;

/**
 * The Java side of an all-to-all, shared by every transport ({@link NativeGroup}, and the process
 * transports): checks the per-rank arguments, flattens them for the native call (a piece handle per rank,
 * 0 for none; ndim sizes per rank, a first size of -1 for none) and wraps what came back in {@code
 * like}'s manager.
 */
final class AllToAllCall {

    /** The native call: received handles per rank (0 where nothing came); fills {@code stats}. */
    @FunctionalInterface
    interface Native {
        long[] call(long[] pieces, long[] sizes, int ndim, long like, double[] stats);
    }

    private AllToAllCall() {}

    static NativeGroup.Exchanged run(int worldSize, NDArray[] sends, long[][] recvShapes, NDArray like, Native call) {
        if (sends == null || recvShapes == null || like == null) {
            throw new IllegalArgumentException("all-to-all needs pieces, shapes and a tensor giving dtype and device");
        }
        if (sends.length != worldSize || recvShapes.length != worldSize) {
            throw new IllegalArgumentException("all-to-all over " + worldSize + " ranks needs one piece and one shape per"
                    + " rank, got " + sends.length + " and " + recvShapes.length);
        }
        int ndim = like.getShape().dimension();
        if (ndim < 1) {
            throw new IllegalArgumentException("all-to-all pieces need at least one dimension (like is a scalar)");
        }
        long[] pieces = new long[worldSize];
        long[] sizes = new long[worldSize * ndim];
        for (int p = 0; p < worldSize; p++) {
            pieces[p] = sends[p] == null ? 0 : NativeOps.handle(sends[p], "piece for rank " + p);
            if (recvShapes[p] == null) {
                sizes[p * ndim] = -1;
            } else if (recvShapes[p].length != ndim) {
                throw new IllegalArgumentException("the shape expected from rank " + p + " has " + recvShapes[p].length
                        + " sizes, the exchange " + ndim);
            } else {
                System.arraycopy(recvShapes[p], 0, sizes, p * ndim, ndim);
            }
        }
        double[] stats = new double[TaspLibrary.statsLength(0)];
        long[] r = call.call(pieces, sizes, ndim, NativeOps.handle(like, "like"), stats);
        PtNDManager manager = (PtNDManager) like.getManager();
        NDArray[] received = new NDArray[worldSize];
        for (int p = 0; p < worldSize; p++) {
            received[p] = r[p] == 0 ? null : new PtNDArray(manager, r[p]);
        }
        return new NativeGroup.Exchanged(received, NativeGroup.RankStats.of(stats));
    }
}
