package io.github.taspdjl.runtime;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Where this process stands in a job of one rank per process, as a launcher described it in the
 * environment: torchrun ({@code RANK}, {@code WORLD_SIZE}, {@code LOCAL_RANK}, {@code
 * LOCAL_WORLD_SIZE}, {@code MASTER_ADDR}, {@code MASTER_PORT}; also what {@code tasp launch} sets),
 * Open MPI's mpirun ({@code OMPI_COMM_WORLD_RANK}, {@code _SIZE}, {@code _LOCAL_RANK}, {@code
 * _LOCAL_SIZE}) or Slurm's srun ({@code SLURM_PROCID}, {@code SLURM_NTASKS}, {@code SLURM_LOCALID},
 * {@code SLURM_NODEID}, {@code SLURM_TASKS_PER_NODE}, {@code SLURM_NODELIST}), checked in that
 * order. The rendezvous runs at {@code MASTER_ADDR:MASTER_PORT}, served by rank 0: Slurm defaults
 * the address to the first node of the job, mpirun on one node to 127.0.0.1; the port defaults
 * to {@value #DEFAULT_PORT}. Under torchrun, whose agent serves its own store on {@code
 * MASTER_PORT} ({@code TORCHELASTIC_USE_AGENT_STORE=True}), the rendezvous takes the next port.
 * {@code TASP_MASTER_PORT} overrides the port in every case.
 *
 * @param launcher "torchrun", "mpirun" or "srun": whose variables were read
 * @param rank this process's rank, 0 to worldSize - 1
 * @param worldSize the number of ranks in the job
 * @param localRank this process's rank on its node (its GPU index on a GPU node)
 * @param localWorldSize the ranks on this node
 * @param masterAddr where rank 0 serves the rendezvous
 * @param masterPort its port
 */
public record LaunchEnvironment(String launcher, int rank, int worldSize, int localRank, int localWorldSize,
        String masterAddr, int masterPort) {

    public static final int DEFAULT_PORT = 29500;

    public LaunchEnvironment {
        if (worldSize < 1) {
            throw new IllegalArgumentException(launcher + ": the world size must be at least 1, got " + worldSize);
        }
        if (rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException(launcher + ": rank " + rank + " outside a world of " + worldSize);
        }
        if (localWorldSize < 1 || localRank < 0 || localRank >= localWorldSize) {
            throw new IllegalArgumentException(launcher + ": local rank " + localRank + " outside " + localWorldSize
                    + " local ranks");
        }
        if (masterAddr == null || masterAddr.isBlank()) {
            throw new IllegalArgumentException(launcher + ": no rendezvous address (set MASTER_ADDR)");
        }
        if (masterPort < 1 || masterPort > 65535) {
            throw new IllegalArgumentException(launcher + ": MASTER_PORT " + masterPort + " is not a TCP port");
        }
    }

    /** This process's launch environment, if a launcher set one. */
    public static Optional<LaunchEnvironment> detect() {
        return detect(System.getenv());
    }

    /**
     * Reads a launch environment from {@code env}; empty when no launcher's variables are there.
     *
     * @throws IllegalArgumentException when the variables are there but malformed or incomplete
     */
    public static Optional<LaunchEnvironment> detect(Map<String, String> env) {
        if (env.containsKey("RANK") && env.containsKey("WORLD_SIZE")) {
            int world = number(env, "WORLD_SIZE");
            int port = numberOr(env, "MASTER_PORT", DEFAULT_PORT);
            if ("True".equals(env.get("TORCHELASTIC_USE_AGENT_STORE"))) {
                port += 1; // torchrun's agent already serves its own store on MASTER_PORT
            }
            return Optional.of(new LaunchEnvironment("torchrun", number(env, "RANK"), world,
                    numberOr(env, "LOCAL_RANK", number(env, "RANK")), numberOr(env, "LOCAL_WORLD_SIZE", world),
                    required(env, "MASTER_ADDR", "torchrun"), numberOr(env, "TASP_MASTER_PORT", port)));
        }
        if (env.containsKey("OMPI_COMM_WORLD_RANK")) {
            int world = number(env, "OMPI_COMM_WORLD_SIZE");
            int localWorld = numberOr(env, "OMPI_COMM_WORLD_LOCAL_SIZE", world);
            String addr = env.get("MASTER_ADDR");
            if (addr == null && localWorld == world) {
                addr = "127.0.0.1"; // every rank on this node
            }
            if (addr == null) {
                throw new IllegalArgumentException("mpirun over several nodes: set MASTER_ADDR to rank 0's host "
                        + "(mpirun -x MASTER_ADDR=host)");
            }
            return Optional.of(new LaunchEnvironment("mpirun", number(env, "OMPI_COMM_WORLD_RANK"), world,
                    numberOr(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0), localWorld, addr, port(env)));
        }
        if (env.containsKey("SLURM_PROCID") && env.containsKey("SLURM_NTASKS")) {
            int world = number(env, "SLURM_NTASKS");
            int localWorld = slurmLocalTasks(env, world);
            String addr = env.get("MASTER_ADDR");
            if (addr == null) {
                String nodes = env.getOrDefault("SLURM_STEP_NODELIST",
                        env.getOrDefault("SLURM_NODELIST", env.get("SLURM_JOB_NODELIST")));
                if (nodes == null) {
                    throw new IllegalArgumentException("srun: neither MASTER_ADDR nor SLURM_NODELIST is set");
                }
                addr = firstHost(nodes);
            }
            return Optional.of(new LaunchEnvironment("srun", number(env, "SLURM_PROCID"), world,
                    numberOr(env, "SLURM_LOCALID", 0), localWorld, addr, port(env)));
        }
        return Optional.empty();
    }

    /** Nodes of the job, assuming the same number of ranks on every node. */
    public int nodes() {
        return Math.max(1, worldSize / localWorldSize);
    }

    /** The torchrun-style variables that describe rank {@code rank} of this job's shape. */
    public static Map<String, String> torchrunVariables(int rank, int worldSize, int localRank, int localWorldSize,
            String masterAddr, int masterPort) {
        Map<String, String> env = new LinkedHashMap<>();
        env.put("MASTER_ADDR", masterAddr);
        env.put("MASTER_PORT", Integer.toString(masterPort));
        env.put("RANK", Integer.toString(rank));
        env.put("WORLD_SIZE", Integer.toString(worldSize));
        env.put("LOCAL_RANK", Integer.toString(localRank));
        env.put("LOCAL_WORLD_SIZE", Integer.toString(localWorldSize));
        return env;
    }

    /**
     * The first host of a Slurm host list: {@code "gpu[07-09,12],login1"} gives {@code "gpu07"}.
     */
    static String firstHost(String hostList) {
        String s = hostList.trim();
        int bracket = s.indexOf('[');
        int comma = s.indexOf(',');
        if (bracket < 0 || (comma >= 0 && comma < bracket)) {
            return comma < 0 ? s : s.substring(0, comma);
        }
        int close = s.indexOf(']', bracket);
        if (close < 0) {
            throw new IllegalArgumentException("malformed Slurm host list '" + hostList + "'");
        }
        String first = s.substring(bracket + 1, close).split(",")[0].split("-")[0];
        return s.substring(0, bracket) + first;
    }

    /** This node's task count from SLURM_TASKS_PER_NODE ("4(x2),3") and SLURM_NODEID. */
    private static int slurmLocalTasks(Map<String, String> env, int world) {
        String perNode = env.getOrDefault("SLURM_STEP_TASKS_PER_NODE", env.get("SLURM_TASKS_PER_NODE"));
        if (perNode == null) {
            int nodes = numberOr(env, "SLURM_NNODES", 1);
            return Math.max(1, world / nodes);
        }
        List<Integer> counts = new ArrayList<>();
        for (String part : perNode.split(",")) {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("(\\d+)(?:\\(x(\\d+)\\))?").matcher(part.trim());
            if (!m.matches()) {
                throw new IllegalArgumentException("malformed SLURM_TASKS_PER_NODE '" + perNode + "'");
            }
            int repeat = m.group(2) == null ? 1 : Integer.parseInt(m.group(2));
            for (int i = 0; i < repeat; i++) {
                counts.add(Integer.parseInt(m.group(1)));
            }
        }
        int node = numberOr(env, "SLURM_NODEID", 0);
        if (node < 0 || node >= counts.size()) {
            throw new IllegalArgumentException("SLURM_NODEID " + node + " outside SLURM_TASKS_PER_NODE '" + perNode + "'");
        }
        return counts.get(node);
    }

    /** TASP_MASTER_PORT, else MASTER_PORT, else the default. */
    private static int port(Map<String, String> env) {
        return numberOr(env, "TASP_MASTER_PORT", numberOr(env, "MASTER_PORT", DEFAULT_PORT));
    }

    private static String required(Map<String, String> env, String name, String launcher) {
        String v = env.get(name);
        if (v == null || v.isBlank()) {
            throw new IllegalArgumentException(launcher + ": " + name + " is not set");
        }
        return v.trim();
    }

    private static int number(Map<String, String> env, String name) {
        String v = env.get(name);
        if (v == null) {
            throw new IllegalArgumentException(name + " is not set");
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + "='" + v + "' is not a whole number", e);
        }
    }

    private static int numberOr(Map<String, String> env, String name, int fallback) {
        return env.containsKey(name) ? number(env, name) : fallback;
    }
}
