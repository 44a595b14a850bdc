package io.github.taspdjl.runtime;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.BindException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeSet;
import java.util.function.Function;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The meeting point of a job's ranks before they connect to each other: rank 0 serves a small TCP
 * store at {@code MASTER_ADDR:MASTER_PORT}; every other rank connects to it and sends its {@link
 * Card} (where its transport listens, which node it is on, and what it believes about the job:
 * library version, topology, plan, problem). Rank 0 waits for all of them until the deadline,
 * checks that every rank agrees with it on every item, and answers every rank with the same
 * table of cards, a session token and rank 0's payload (the NCCL unique id on GPUs); or, when a
 * rank is late or disagrees, with one message naming it, which every rank throws.
 */
public final class Rendezvous {

    private static final Logger LOG = LoggerFactory.getLogger(Rendezvous.class);
    private static final int MAGIC = 0x54415256; // "TARV"
    private static final int PROTOCOL = 1;
    private static final int MAX_ITEMS = 64;
    private static final int MAX_PAYLOAD = 1 << 20;
    /** How long rank 0 waits for one connected rank's hello before dropping that connection. */
    private static final int HELLO_MS = 10_000;

    private Rendezvous() {}

    /**
     * What one rank brings to the rendezvous.
     *
     * @param rank its rank
     * @param host the numeric address its transport listens on
     * @param port the port its transport listens on (0: none)
     * @param node the name of its node (host name)
     * @param agreement what every rank must agree on, by item (compared with rank 0's)
     */
    public record Card(int rank, String host, int port, String node, Map<String, String> agreement) {
        public Card {
            Objects.requireNonNull(host, "host");
            Objects.requireNonNull(node, "node");
            agreement = Map.copyOf(agreement);
        }
    }

    /**
     * What every rank gets back.
     *
     * @param token a random number naming this session (transports refuse strangers without it)
     * @param payload rank 0's payload (the NCCL unique id on GPUs; empty otherwise)
     * @param cards every rank's card, in rank order
     */
    public record Result(long token, byte[] payload, List<Card> cards) {}

    /**
     * Joins the rendezvous of {@code env}'s job.
     *
     * @param env this process's place in the job
     * @param cardFor makes this rank's card, given the local address that faces rank 0 (rank 0:
     *     the address it serves on); called once
     * @param payload rank 0's payload, called on rank 0 only (may return an empty array)
     * @param timeout how long to wait for every rank
     * @throws RendezvousException naming the ranks that did not come or disagree, on every rank
     */
    public static Result join(LaunchEnvironment env, Function<InetAddress, Card> cardFor, Supplier<byte[]> payload,
            Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        return env.rank() == 0 ? serve(env, cardFor, payload, timeout, deadline) : attend(env, cardFor, timeout, deadline);
    }

    /** A rendezvous that failed: a rank did not come in time, or ranks disagree. */
    public static final class RendezvousException extends IllegalStateException {
        private static final long serialVersionUID = 1L;

        public RendezvousException(String message) {
            super(message);
        }

        public RendezvousException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    // ---- rank 0 --------------------------------------------------------------------------------

    private static Result serve(LaunchEnvironment env, Function<InetAddress, Card> cardFor, Supplier<byte[]> payload,
            Duration timeout, long deadline) {
        int world = env.worldSize();
        String where = env.masterAddr() + ":" + env.masterPort();
        try (ServerSocket server = bind(env)) {
            Card[] cards = new Card[world];
            Socket[] peers = new Socket[world];
            cards[0] = checked(cardFor.apply(server.getInetAddress()), 0);
            try {
                String problem = null;
                while (problem == null && missing(cards).size() > 0) {
                    int left = remainingMs(deadline);
                    if (left <= 0) {
                        problem = "rank(s) " + join(missing(cards)) + " did not join the rendezvous at " + where
                                + " within " + seconds(timeout) + " (not started, crashed before joining, or given "
                                + "another MASTER_ADDR/MASTER_PORT)";
                        break;
                    }
                    server.setSoTimeout(left);
                    Socket s;
                    try {
                        s = server.accept();
                    } catch (SocketTimeoutException e) {
                        continue;
                    }
                    problem = admit(s, world, cards, peers, deadline);
                }
                if (problem == null) {
                    problem = disagreement(cards);
                }
                if (problem != null) {
                    answerError(peers, problem);
                    throw new RendezvousException("rank 0: " + problem);
                }
                long token = new SecureRandom().nextLong();
                byte[] blob;
                try {
                    blob = payload.get();
                } catch (RuntimeException ex) {
                    answerError(peers, "rank 0 failed: " + ex.getMessage());
                    throw ex;
                }
                Result result = new Result(token, blob == null ? new byte[0] : blob.clone(), List.of(cards));
                answer(peers, result);
                LOG.debug("rendezvous at {}: {} ranks joined", where, world);
                return result;
            } finally {
                for (Socket s : peers) {
                    closeQuietly(s);
                }
            }
        } catch (IOException e) {
            throw new RendezvousException("rank 0: cannot serve the rendezvous at " + where + ": " + e.getMessage(), e);
        }
    }

    private static ServerSocket bind(LaunchEnvironment env) throws IOException {
        InetAddress addr = InetAddress.getByName(env.masterAddr());
        ServerSocket server = new ServerSocket();
        server.setReuseAddress(true);
        try {
            server.bind(new InetSocketAddress(addr, env.masterPort()), env.worldSize());
        } catch (BindException e) {
            server.close();
            if (addr.isLoopbackAddress() || !String.valueOf(e.getMessage()).contains("assign")) {
                throw e;
            }
            // MASTER_ADDR names this host by an address it cannot bind (NAT, an alias): every interface.
            LOG.debug("cannot bind {} ({}); serving the rendezvous on every interface", addr, e.getMessage());
            server = new ServerSocket();
            server.setReuseAddress(true);
            server.bind(new InetSocketAddress(env.masterPort()), env.worldSize());
        }
        return server;
    }

    /** Reads one hello; returns a problem that ends the rendezvous, or null. */
    private static String admit(Socket s, int world, Card[] cards, Socket[] peers, long deadline) {
        try {
            s.setSoTimeout(Math.max(1, Math.min(HELLO_MS, remainingMs(deadline))));
            s.setTcpNoDelay(true);
            DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
            if (in.readInt() != MAGIC) {
                closeQuietly(s); // not one of ours
                return null;
            }
            int protocol = in.readInt();
            int theirWorld = in.readInt();
            Card card = readCard(in);
            if (protocol != PROTOCOL) {
                keep(peers, s);
                return "rank " + card.rank() + " speaks rendezvous protocol " + protocol + ", rank 0 speaks " + PROTOCOL;
            }
            if (theirWorld != world) {
                keep(peers, s);
                return "rank " + card.rank() + " was started for a world of " + theirWorld + " ranks, rank 0 for "
                        + world;
            }
            if (card.rank() <= 0 || card.rank() >= world) {
                keep(peers, s);
                return "a process claims rank " + card.rank() + ", outside 1.." + (world - 1);
            }
            if (cards[card.rank()] != null) {
                keep(peers, s);
                return "two processes claim rank " + card.rank() + " (on " + cards[card.rank()].node() + " and "
                        + card.node() + ")";
            }
            cards[card.rank()] = card;
            peers[card.rank()] = s;
            return null;
        } catch (IOException | RuntimeException e) {
            LOG.debug("dropped a rendezvous connection from {}: {}", s.getRemoteSocketAddress(), e.toString());
            closeQuietly(s);
            return null;
        }
    }

    /** Keeps a connection whose hello ends the rendezvous, so that it hears why. */
    private static void keep(Socket[] peers, Socket s) {
        for (int i = 0; i < peers.length; i++) {
            if (peers[i] == null && i > 0) {
                peers[i] = s;
                return;
            }
        }
        closeQuietly(s);
    }

    private static List<Integer> missing(Card[] cards) {
        List<Integer> m = new ArrayList<>();
        for (int r = 0; r < cards.length; r++) {
            if (cards[r] == null) {
                m.add(r);
            }
        }
        return m;
    }

    /** The first item on which a rank disagrees with rank 0, or null. */
    static String disagreement(Card[] cards) {
        Map<String, String> ours = cards[0].agreement();
        for (int r = 1; r < cards.length; r++) {
            Map<String, String> theirs = cards[r].agreement();
            TreeSet<String> items = new TreeSet<>(ours.keySet());
            items.addAll(theirs.keySet());
            for (String item : items) {
                String a = ours.get(item);
                String b = theirs.get(item);
                if (!Objects.equals(a, b)) {
                    return "rank " + r + " disagrees with rank 0 on the " + item + ": rank " + r + " has '" + b
                            + "', rank 0 has '" + a + "'";
                }
            }
        }
        return null;
    }

    private static void answer(Socket[] peers, Result result) {
        for (int r = 1; r < peers.length; r++) {
            try {
                DataOutputStream out = output(peers[r]);
                out.writeInt(MAGIC);
                out.writeByte(0);
                out.writeLong(result.token());
                out.writeInt(result.payload().length);
                out.write(result.payload());
                out.writeInt(result.cards().size());
                for (Card c : result.cards()) {
                    writeCard(out, c);
                }
                out.flush();
            } catch (IOException e) {
                // That rank is gone; the transport's connect names it.
                LOG.debug("could not answer rank {}: {}", r, e.toString());
            }
        }
    }

    private static void answerError(Socket[] peers, String problem) {
        for (Socket s : peers) {
            if (s == null) {
                continue;
            }
            try {
                DataOutputStream out = output(s);
                out.writeInt(MAGIC);
                out.writeByte(1);
                out.writeUTF(problem);
                out.flush();
            } catch (IOException e) {
                LOG.debug("could not tell a rank why the rendezvous failed: {}", e.toString());
            }
        }
    }

    // ---- other ranks ---------------------------------------------------------------------------

    private static Result attend(LaunchEnvironment env, Function<InetAddress, Card> cardFor, Duration timeout,
            long deadline) {
        int rank = env.rank();
        String where = env.masterAddr() + ":" + env.masterPort();
        try (Socket s = connect(env, timeout, deadline)) {
            Card mine = checked(cardFor.apply(s.getLocalAddress()), rank);
            DataOutputStream out = output(s);
            out.writeInt(MAGIC);
            out.writeInt(PROTOCOL);
            out.writeInt(env.worldSize());
            writeCard(out, mine);
            out.flush();
            // Rank 0 answers once everyone came or its own deadline passed (it may have started later).
            s.setSoTimeout((int) Math.min(Integer.MAX_VALUE, timeout.toMillis() + HELLO_MS));
            DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
            if (in.readInt() != MAGIC) {
                throw new RendezvousException("rank " + rank + ": the process at " + where + " is not a rendezvous");
            }
            if (in.readByte() != 0) {
                throw new RendezvousException("rank " + rank + ": the rendezvous failed: " + in.readUTF());
            }
            long token = in.readLong();
            int n = in.readInt();
            if (n < 0 || n > MAX_PAYLOAD) {
                throw new RendezvousException("rank " + rank + ": malformed rendezvous answer (payload " + n + ")");
            }
            byte[] payload = in.readNBytes(n);
            int count = in.readInt();
            if (count != env.worldSize()) {
                throw new RendezvousException("rank " + rank + ": rank 0 answered with " + count + " ranks, expected "
                        + env.worldSize());
            }
            List<Card> cards = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                cards.add(readCard(in));
            }
            return new Result(token, payload, List.copyOf(cards));
        } catch (SocketTimeoutException e) {
            throw new RendezvousException("rank " + rank + ": rank 0 at " + where + " did not answer within "
                    + seconds(timeout.plusMillis(HELLO_MS)), e);
        } catch (IOException e) {
            throw new RendezvousException("rank " + rank + ": lost rank 0 during the rendezvous at " + where + ": "
                    + e.getMessage(), e);
        }
    }

    private static Socket connect(LaunchEnvironment env, Duration timeout, long deadline) throws IOException {
        InetSocketAddress addr = new InetSocketAddress(env.masterAddr(), env.masterPort());
        IOException last = null;
        while (remainingMs(deadline) > 0) {
            Socket s = new Socket();
            try {
                s.connect(addr, Math.max(1, Math.min(2_000, remainingMs(deadline))));
                s.setTcpNoDelay(true);
                return s;
            } catch (IOException e) {
                last = e;
                s.close();
                try {
                    Thread.sleep(100);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new RendezvousException("rank " + env.rank() + ": interrupted while joining", ie);
                }
            }
        }
        throw new RendezvousException("rank " + env.rank() + ": rank 0 did not open the rendezvous at "
                + env.masterAddr() + ":" + env.masterPort() + " within " + seconds(timeout)
                + " (rank 0 not started, or MASTER_ADDR/MASTER_PORT wrong)"
                + (last == null ? "" : ": " + last.getMessage()));
    }

    // ---- wire ----------------------------------------------------------------------------------

    private static DataOutputStream output(Socket s) throws IOException {
        return new DataOutputStream(new BufferedOutputStream(s.getOutputStream()));
    }

    private static void writeCard(DataOutputStream out, Card c) throws IOException {
        out.writeInt(c.rank());
        out.writeUTF(c.host());
        out.writeInt(c.port());
        out.writeUTF(c.node());
        Map<String, String> items = new LinkedHashMap<>(c.agreement());
        out.writeInt(items.size());
        for (Map.Entry<String, String> e : items.entrySet()) {
            out.writeUTF(e.getKey());
            out.writeUTF(e.getValue());
        }
    }

    private static Card readCard(DataInputStream in) throws IOException {
        int rank = in.readInt();
        String host = in.readUTF();
        int port = in.readInt();
        String node = in.readUTF();
        int n = in.readInt();
        if (n < 0 || n > MAX_ITEMS) {
            throw new IOException("malformed card: " + n + " items");
        }
        Map<String, String> items = new LinkedHashMap<>();
        for (int i = 0; i < n; i++) {
            items.put(in.readUTF(), in.readUTF());
        }
        return new Card(rank, host, port, node, items);
    }

    private static Card checked(Card c, int rank) {
        if (c.rank() != rank) {
            throw new IllegalArgumentException("the card of rank " + rank + " says rank " + c.rank());
        }
        if (c.agreement().size() > MAX_ITEMS) {
            throw new IllegalArgumentException("at most " + MAX_ITEMS + " agreement items");
        }
        return c;
    }

    private static int remainingMs(long deadline) {
        long left = (deadline - System.nanoTime()) / 1_000_000;
        return (int) Math.max(0, Math.min(Integer.MAX_VALUE, left));
    }

    private static String seconds(Duration d) {
        return d.toMillis() % 1000 == 0 ? d.toSeconds() + " s" : d.toMillis() + " ms";
    }

    private static String join(List<Integer> ranks) {
        return String.join(", ", ranks.stream().map(String::valueOf).toList());
    }

    private static void closeQuietly(Socket s) {
        if (s != null) {
            try {
                s.close();
            } catch (IOException e) {
                LOG.trace("close", e);
            }
        }
    }
}
