package io.github.taspdjl.runtime;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertNull;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;
import static org.testng.Assert.fail;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.jni.NativeOps;
import io.github.taspdjl.jni.TaspNativeException;
import io.github.taspdjl.jni.TcpMesh;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Planner;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.topology.Topology;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.testng.annotations.Test;

/**
 * The all-to-all over TCP meshes ({@link TcpMesh#allToAll}): ranks of one loopback mesh run as threads of
 * one JVM, so that every received piece can be compared with what its sender sent, bit for bit.
 */
public class TcpAllToAllTest extends RankThreadsTest {

    @Override
    protected int seed() {
        return 15;
    }

    interface RankBody<T> {
        T run(TcpMesh mesh, int rank) throws Exception;
    }

    /** What every rank sends to every other in one exchange: pieces[src][dst], null where nothing goes. */
    private static final class Exchange {
        final NDArray[][] pieces;
        final String name;

        Exchange(String name, int world) {
            this.name = name;
            this.pieces = new NDArray[world][world];
        }

        NDArray[] sends(int rank) {
            return pieces[rank].clone();
        }

        long[][] recvShapes(int rank) {
            long[][] shapes = new long[pieces.length][];
            for (int src = 0; src < pieces.length; src++) {
                NDArray p = pieces[src][rank];
                shapes[src] = p == null ? null : p.getShape().getShape();
            }
            return shapes;
        }

        /** Every piece rank {@code rank} received is exactly what its sender sent; nothing where nothing was. */
        void check(int rank, NativeGroup.Exchanged got) {
            for (int src = 0; src < pieces.length; src++) {
                NDArray sent = pieces[src][rank];
                NDArray received = got.received()[src];
                String what = name + ": rank " + rank + " from rank " + src;
                if (sent == null) {
                    assertNull(received, what);
                    continue;
                }
                assertEquals(received.getShape(), sent.getShape(), what + " shape");
                assertEquals(NativeOps.dataType(received), NativeOps.dataType(sent), what + " dtype");
                // fp16 and bf16 widen to fp32 exactly, so equal fp32 arrays mean equal bits
                float[] a = NativeOps.cast(received, DataType.FLOAT32).toFloatArray();
                float[] e = NativeOps.cast(sent, DataType.FLOAT32).toFloatArray();
                if (!Arrays.equals(a, e)) {
                    fail(what + ": the received piece differs from the sent one");
                }
            }
        }
    }

    /**
     * Pieces of a different shape for every pair (dims 2, 1 + src, 3 + dst), in {@code type}; the pairs 0 to 3
     * and 2 to 1 exchange nothing; rank 1 sends rank 2 a transposed view and rank 3 sends rank 0 a slice with
     * a storage offset (neither contiguous).
     */
    private static Exchange mixed(NDManager m, int world, DataType type) {
        Exchange x = new Exchange("mixed " + type, world);
        for (int src = 0; src < world; src++) {
            for (int dst = 0; dst < world; dst++) {
                if (src == dst || (src == 0 && dst == 3) || (src == 2 && dst == 1)) {
                    continue;
                }
                NDArray p;
                if (src == 1 && dst == 2) {
                    p = typed(m.randomNormal(new Shape(3 + dst, 1 + src, 2)), type).transpose(2, 1, 0);
                } else if (src == 3 && dst == 0) {
                    p = typed(m.randomNormal(new Shape(2, 1 + src, 5 + dst)), type).get(":, :, 2:");
                } else {
                    p = typed(m.randomNormal(new Shape(2, 1 + src, 3 + dst)), type);
                }
                x.pieces[src][dst] = p;
            }
        }
        return x;
    }

    private static NDArray typed(NDArray a, DataType type) {
        return type == DataType.FLOAT32 ? a : NativeOps.cast(a, type);
    }

    /** 8 MB from every rank to every other: more than the sockets buffer, both ways at once. */
    private static Exchange large(NDManager m, int world) {
        Exchange x = new Exchange("8 MB pieces", world);
        for (int src = 0; src < world; src++) {
            for (int dst = 0; dst < world; dst++) {
                if (src != dst) {
                    x.pieces[src][dst] = m.randomNormal(new Shape(2, 1024, 1024));
                }
            }
        }
        return x;
    }

    @Test(timeOut = 120_000)
    public void piecesArriveExactlyAsSentBetweenForwardsAndAllReducesOnOneMesh() throws Exception {
        int world = 4;
        long seq = 96;
        try (NDManager m = manager.newSubManager()) {
            List<Exchange> exchanges = List.of(mixed(m, world, DataType.FLOAT32), mixed(m, world, DataType.BFLOAT16),
                    large(m, world), mixed(m, world, DataType.FLOAT16));
            NDArray q = m.randomNormal(new Shape(1, 2, seq, 8));
            NDArray k = m.randomNormal(new Shape(1, 2, seq, 8));
            NDArray v = m.randomNormal(new Shape(1, 2, seq, 8));
            Plan plan = Planner.plan(Topology.virtualCpu(world), Strategy.TASP, true);
            long[][] programs = RankProgram.lowerAll(plan, seq);
            NDArray ref = ReferenceAttention.compute(q, k, v, true, null).output();

            List<List<NDArray>> outs = onMesh(world, 20_000, (mesh, rank) -> {
                List<NDArray> mine = new ArrayList<>();
                NDArray qs = Sharding.shard(q, plan.layout(), rank);
                NDArray ks = Sharding.shard(k, plan.layout(), rank);
                NDArray vs = Sharding.shard(v, plan.layout(), rank);
                for (Exchange x : exchanges) {
                    NDArray like = x.pieces[rank][(rank + 1) % world];
                    NativeGroup.Exchanged got = mesh.allToAll(x.sends(rank), x.recvShapes(rank), like);
                    x.check(rank, got);
                    long sent = 0;
                    for (NDArray p : x.pieces[rank]) {
                        sent += p == null ? 0 : p.getShape().size() * NativeOps.dataType(p).getNumOfBytes();
                    }
                    assertEquals(got.stats().bytesSent(), sent, x.name + ": rank " + rank + " bytes sent");
                    // a forward and an all-reduce between the exchanges: one run sequence on every rank
                    mine.add(mesh.rankForward(programs[rank], qs, ks, vs, null).output());
                    NDArray ones = m.ones(new Shape(3)).mul(rank + 1);
                    mesh.allReduceSum(List.of(ones));
                    assertEquals(ones.toFloatArray(), new float[] {10, 10, 10}, 0f);
                }
                return mine;
            });
            for (int i = 0; i < exchanges.size(); i++) {
                List<NDArray> parts = new ArrayList<>();
                for (List<NDArray> o : outs) {
                    parts.add(o.get(i));
                }
                assertClose(Sharding.gather(parts, plan.layout(), seq), ref, 1e-5, "forward after " + exchanges.get(i).name);
            }
        }
    }

    @Test(timeOut = 60_000)
    public void ranksThatDisagreeOnAPieceAllFailNamingThePairThenTheMeshStillWorks() throws Exception {
        int world = 3;
        try (NDManager m = manager.newSubManager()) {
            Exchange good = mixed(m, world, DataType.FLOAT32);
            List<String> results = onMesh(world, 10_000, (mesh, rank) -> {
                long[][] shapes = good.recvShapes(rank);
                if (rank == 1) {
                    shapes[0] = new long[] {2, 1, 5}; // rank 0 sends (2, 1, 4)
                }
                String first;
                try {
                    mesh.allToAll(good.sends(rank), shapes, good.pieces[0][1]);
                    first = "no failure";
                } catch (IllegalArgumentException e) {
                    first = e.getMessage();
                }
                good.check(rank, mesh.allToAll(good.sends(rank), good.recvShapes(rank), good.pieces[0][1]));
                return first;
            });
            for (String r : results) {
                assertTrue(r.contains("what rank 0 sends to rank 1 is not what rank 1 expects"), r);
            }
        }
    }

    @Test(timeOut = 60_000)
    public void aRankThatNeverCallsIsNamedByTheOthersWithinTheTimeout() throws Exception {
        int world = 3;
        try (NDManager m = manager.newSubManager()) {
            Exchange x = mixed(m, world, DataType.FLOAT32);
            long start = System.nanoTime();
            List<String> results = onMesh(world, 1_500, (mesh, rank) -> {
                if (rank == 2) {
                    Thread.sleep(4_000); // connected, but never takes part
                    TaspNativeException later = expectThrows(TaspNativeException.class,
                            () -> mesh.allToAll(x.sends(rank), x.recvShapes(rank), x.pieces[0][1]));
                    return "later: " + later.getMessage();
                }
                TaspNativeException e = expectThrows(TaspNativeException.class,
                        () -> mesh.allToAll(x.sends(rank), x.recvShapes(rank), x.pieces[0][1]));
                return (System.nanoTime() - start) / 1e9 + " s: " + e.getMessage();
            });
            for (int r = 0; r < 2; r++) {
                assertTrue(results.get(r).contains("rank(s) 2"), results.get(r));
                assertTrue(Double.parseDouble(results.get(r).split(" ")[0]) < 4, results.get(r));
            }
            assertTrue(results.get(2).contains("rank(s) 2"), "the idle rank learns why: " + results.get(2));
        }
    }

    @Test(timeOut = 60_000)
    public void aRankThatClosesItsMeshFailsTheOthersNamingIt() throws Exception {
        int world = 3;
        try (NDManager m = manager.newSubManager()) {
            Exchange x = mixed(m, world, DataType.FLOAT32);
            long start = System.nanoTime();
            // Every rank finishes the first exchange before rank 1 leaves: a rank still receiving its
            // pieces when a peer leaves fails too (the mesh fails as a whole), which is not this test.
            CyclicBarrier firstDone = new CyclicBarrier(world);
            List<String> results = onMesh(world, 10_000, (mesh, rank) -> {
                x.check(rank, mesh.allToAll(x.sends(rank), x.recvShapes(rank), x.pieces[0][1]));
                firstDone.await(30, TimeUnit.SECONDS);
                if (rank == 1) {
                    mesh.close(); // leaves after the first exchange
                    IllegalStateException e = expectThrows(IllegalStateException.class,
                            () -> mesh.allToAll(x.sends(rank), x.recvShapes(rank), x.pieces[0][1]));
                    return e.getMessage();
                }
                TaspNativeException e = expectThrows(TaspNativeException.class,
                        () -> mesh.allToAll(x.sends(rank), x.recvShapes(rank), x.pieces[0][1]));
                return (System.nanoTime() - start) / 1e9 + " s: " + e.getMessage();
            });
            assertTrue(results.get(1).contains("closed"), results.get(1));
            for (int r : new int[] {0, 2}) {
                String e = results.get(r);
                assertTrue(e.contains("rank 1 left the group") || e.contains("lost rank 1"), e);
                assertTrue(Double.parseDouble(e.split(" ")[0]) < 10, "failed before the timeout: " + e);
            }
        }
    }

    @Test(timeOut = 60_000)
    public void badInputOnOneRankFailsEveryRankAtOnce() throws Exception {
        int world = 3;
        try (NDManager m = manager.newSubManager()) {
            Exchange x = mixed(m, world, DataType.FLOAT32);
            NDArray half = NativeOps.cast(x.pieces[1][0], DataType.FLOAT16);
            // found natively: a piece in another dtype than the exchange's
            List<String> natively = onMesh(world, 10_000, (mesh, rank) -> {
                NDArray[] sends = x.sends(rank);
                if (rank == 1) {
                    sends[0] = half;
                }
                RuntimeException e = expectThrows(RuntimeException.class,
                        () -> mesh.allToAll(sends, x.recvShapes(rank), x.pieces[0][1]));
                return e.getMessage();
            });
            assertTrue(natively.get(1).contains("the piece for rank 0 is float16"), natively.get(1));
            for (int r : new int[] {0, 2}) {
                assertTrue(natively.get(r).contains("rank 1 failed") && natively.get(r).contains("float16"),
                        natively.get(r));
            }
            // found in Java before the native call: a shape of the wrong rank
            List<String> inJava = onMesh(world, 10_000, (mesh, rank) -> {
                long[][] shapes = x.recvShapes(rank);
                if (rank == 2) {
                    shapes[0] = new long[] {2, 1};
                }
                RuntimeException e = expectThrows(RuntimeException.class,
                        () -> mesh.allToAll(x.sends(rank), shapes, x.pieces[0][1]));
                return e.getMessage();
            });
            assertTrue(inJava.get(2).contains("the shape expected from rank 0 has 2 sizes"), inJava.get(2));
            for (int r : new int[] {0, 1}) {
                assertTrue(inJava.get(r).contains("rank 2 rejected its all-to-all input"), inJava.get(r));
            }
        }
    }

    /** Runs {@code body} on every rank of a new loopback mesh, one thread each; closes the meshes. */
    private <T> List<T> onMesh(int world, long timeoutMs, RankBody<T> body) throws Exception {
        List<TcpMesh> meshes = new ArrayList<>();
        try {
            for (int r = 0; r < world; r++) {
                meshes.add(TcpMesh.listen(world, r, "127.0.0.1", timeoutMs));
            }
            int[] ports = meshes.stream().mapToInt(TcpMesh::port).toArray();
            List<String> hosts = Collections.nCopies(world, "127.0.0.1");
            long token = System.nanoTime();
            List<Future<T>> futures = new ArrayList<>();
            for (TcpMesh mesh : meshes) {
                futures.add(pool.submit(() -> {
                    mesh.connect(hosts, ports, token);
                    return body.run(mesh, mesh.rank());
                }));
            }
            return ProcessGroupTest.results(futures);
        } finally {
            for (TcpMesh mesh : meshes) {
                mesh.close();
            }
        }
    }
}
