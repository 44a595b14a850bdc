package io.github.taspdjl.jni;

import ai.djl.ndarray.NDArray;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import java.util.List;

/**
 * This process's rank of a TCP mesh: the transport between processes for CPU ranks (native
 * {@code transport_tcp.cpp}). Made in two steps because the peers' addresses come from a
 * rendezvous: {@link #listen} opens the listening socket (its port goes into the rendezvous), then
 * {@link #connect} joins every peer. Every wait on a peer gives up after the timeout; a peer whose
 * connection closes without a goodbye fails every rank at once, and the exception names it.
 */
public final class TcpMesh implements ProcessTransport, AutoCloseable {

    private final int worldSize;
    private final int rank;
    private final int port;
    private long handle;

    private TcpMesh(int worldSize, int rank, int port, long handle) {
        this.worldSize = worldSize;
        this.rank = rank;
        this.port = port;
        this.handle = handle;
    }

    /**
     * Listens for the peers on {@code bindAddress} (a numeric IP address, e.g. "127.0.0.1") at a
     * port the system picks ({@link #port()}).
     */
    public static TcpMesh listen(int worldSize, int rank, String bindAddress, long timeoutMs) {
        if (worldSize < 1 || rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("rank " + rank + " outside a world of " + worldSize);
        }
        if (timeoutMs < 1) {
            throw new IllegalArgumentException("timeout must be at least 1 ms, got " + timeoutMs);
        }
        NativeLoader.load();
        long[] r = TaspLibrary.tcpMeshCreate(worldSize, rank, bindAddress, timeoutMs);
        return new TcpMesh(worldSize, rank, (int) r[1], r[0]);
    }

    @Override
    public int worldSize() {
        return worldSize;
    }

    @Override
    public int rank() {
        return rank;
    }

    /** The port this rank listens on. */
    public int port() {
        return port;
    }

    /**
     * Connects to every peer ({@code hosts.get(r)}, {@code ports[r]}); every rank presents {@code
     * token}, so connections from other jobs are refused. Returns when all are connected.
     */
    public void connect(List<String> hosts, int[] ports, long token) {
        if (hosts.size() != worldSize || ports.length != worldSize) {
            throw new IllegalArgumentException("need " + worldSize + " addresses, got " + hosts.size());
        }
        TaspLibrary.tcpMeshConnect(handle(), hosts.toArray(new String[0]), ports, token);
    }

    /** Runs this rank's lowered plan over the mesh; every rank must call it. q, k, v on the CPU. */
    @Override
    public NativeGroup.RankOutput rankForward(long[] program, NDArray q, NDArray k, NDArray v, Float scale) {
        double[] stats = NativeGroup.RankStats.buffer(program);
        long[] r = TaspLibrary.tcpRankForward(handle(), program, NativeOps.handle(q, "q"),
                NativeOps.handle(k, "k"), NativeOps.handle(v, "v"),
                scale != null, scale == null ? 0 : scale, stats);
        PtNDManager manager = (PtNDManager) q.getManager();
        return new NativeGroup.RankOutput(new PtNDArray(manager, r[0]), new PtNDArray(manager, r[1]),
                NativeGroup.RankStats.of(stats));
    }

    /**
     * The backward of {@link #rankForward} over the mesh (the same program and its return map; see
     * {@code NativeGroup.rankBackward}); every rank must call it. Returns dq, dk, dv of this rank's shard.
     */
    @Override
    public NativeGroup.RankGradients rankBackward(long[] program, long[] returnMap, NDArray dout, NDArray q,
            NDArray k, NDArray v, NDArray out, NDArray lse, Float scale) {
        double[] stats = NativeGroup.RankStats.backwardBuffer(program);
        long[] r = TaspLibrary.tcpRankBackward(handle(), program, returnMap, NativeOps.handle(dout, "dout"),
                NativeOps.handle(q, "q"), NativeOps.handle(k, "k"), NativeOps.handle(v, "v"),
                NativeOps.handle(out, "out"), NativeOps.handle(lse, "lse"), scale != null, scale == null ? 0 : scale,
                stats);
        return NativeGroup.RankGradients.wrap(q, r, stats);
    }

    /**
     * This rank's part of an all-to-all over the mesh (CPU arrays; see {@link NativeGroup#allToAll}):
     * {@code sends[p]} (null: nothing) goes to rank p, and from each rank p whose {@code recvShapes[p]} is
     * not null an array of that shape comes back, with {@code like}'s dtype, in {@code like}'s manager.
     * Every rank must call it, in the same order as its forwards and backwards on the mesh. Ranks that
     * disagree on a piece's shape all throw an {@link IllegalArgumentException} naming the pair, and the
     * mesh stays usable; bad input on one rank, a timeout or a lost peer fails the mesh on every rank.
     */
    @Override
    public NativeGroup.Exchanged allToAll(NDArray[] sends, long[][] recvShapes, NDArray like) {
        boolean[] called = {false};
        try {
            return AllToAllCall.run(worldSize, sends, recvShapes, like, (pieces, sizes, ndim, likeHandle, stats) -> {
                called[0] = true;
                return TaspLibrary.tcpAllToAll(handle(), pieces, sizes, ndim, likeHandle, stats);
            });
        } catch (IllegalArgumentException e) {
            if (!called[0]) {
                rejected("rank " + rank + " rejected its all-to-all input: " + e.getMessage());
            }
            throw e;
        }
    }

    /** Input this rank rejected before the native call: the peers would wait for it, so they fail now. */
    private synchronized void rejected(String why) {
        if (handle != 0) {
            TaspLibrary.tcpMeshFail(handle, why);
        }
    }

    /**
     * Sums each array over the ranks, in place (fp32, contiguous, on the CPU); every rank passes the
     * same number of arrays with the same element counts and gets the same values.
     */
    public void allReduceSum(List<NDArray> arrays) {
        long[] handles = new long[arrays.size()];
        for (int i = 0; i < handles.length; i++) {
            handles[i] = NativeOps.handle(arrays.get(i), "array " + i);
        }
        TaspLibrary.allReduce(false, handle(), handles);
    }

    /** Fails the mesh on every rank with {@code message} (for failures outside the transport). */
    public void fail(String message) {
        TaspLibrary.tcpMeshFail(handle(), message);
    }

    private synchronized long handle() {
        if (handle == 0) {
            throw new IllegalStateException("the TCP mesh is closed");
        }
        return handle;
    }

    /** Says goodbye to the peers and closes every connection. */
    @Override
    public synchronized void close() {
        if (handle != 0) {
            TaspLibrary.tcpMeshDestroy(handle);
            handle = 0;
        }
    }
}
