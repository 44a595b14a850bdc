package io.github.taspdjl.topology;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Finds the topology of this machine by trying sources, most trusted first:
 *
 * <ol>
 *   <li>{@code file}: the JSON file named by system property {@value #PROPERTY_FILE} or environment
 *       variable {@value #ENV_FILE}. A file that is set but cannot be read is an error, not a
 *       fallback: the user asked for it.
 *   <li>{@code nvml}: NVML through JNA, NICs from sysfs.
 *   <li>{@code nvidia-smi}: runs {@code nvidia-smi topo -m} and {@code --query-gpu} for names.
 *   <li>{@code rocm-smi}: runs {@code rocm-smi --showtopo}.
 *   <li>{@code amd-smi}: runs {@code amd-smi topology}.
 *   <li>{@code jcuda}: CUDA driver peer queries through JCuda.
 *   <li>none: {@link Topology#virtualCpu(int)} with N from {@value #PROPERTY_RANKS} / {@value
 *       #ENV_RANKS}, default 8.
 * </ol>
 *
 * Each source other than the file fails softly: its reason is logged (SLF4J, info) and kept in the
 * {@link Detection}. The result's {@link Topology#source()} names the source that answered.
 */
public final class TopologyDetector {

    private static final Logger LOG = LoggerFactory.getLogger(TopologyDetector.class);

    /** System property naming a topology JSON file. */
    public static final String PROPERTY_FILE = "tasp.topology";
    /** Environment variable naming a topology JSON file. */
    public static final String ENV_FILE = "TASP_TOPOLOGY";
    /** System property: number of virtual CPU ranks when no GPU is found. */
    public static final String PROPERTY_RANKS = "tasp.virtualRanks";
    /** Environment variable: number of virtual CPU ranks when no GPU is found. */
    public static final String ENV_RANKS = "TASP_VIRTUAL_RANKS";
    /** Virtual CPU ranks when nothing is set. */
    public static final int DEFAULT_VIRTUAL_RANKS = 8;

    /** One source of topology facts. */
    public interface Source {
        /** Short name, recorded in the {@link Detection}. */
        String name();

        /**
         * The topology, or empty when this source has nothing to say (reason in the exception or
         * log); any exception counts as a soft failure except from the explicit file.
         */
        Topology detect(BandwidthTable table) throws Exception;
    }

    /** Runs an external command and returns its standard output; empty when it cannot run. */
    @FunctionalInterface
    public interface CommandRunner {
        /**
         * @throws IOException with the reason when the command is missing, fails or times out
         */
        String run(List<String> command) throws IOException;
    }

    /**
     * What one source said.
     *
     * @param source the source's name
     * @param found whether it gave the topology
     * @param reason why it did not (null when found)
     */
    public record Attempt(String source, boolean found, String reason) {}

    /**
     * The outcome of detection.
     *
     * @param topology the topology used
     * @param attempts the sources tried, in order
     * @param gpuFound false when the virtual CPU default was used
     */
    public record Detection(Topology topology, List<Attempt> attempts, boolean gpuFound) {}

    private final List<Source> sources;
    private final BandwidthTable table;
    private final int virtualRanks;

    /**
     * @param sources sources in order of trust
     * @param table bandwidth figures
     * @param virtualRanks ranks of the CPU fallback
     */
    public TopologyDetector(List<Source> sources, BandwidthTable table, int virtualRanks) {
        this.sources = List.copyOf(sources);
        this.table = table;
        if (virtualRanks < 1) {
            throw new IllegalArgumentException("virtual rank count must be at least 1, got " + virtualRanks);
        }
        this.virtualRanks = virtualRanks;
    }

    /** The standard sources, settings from system properties and the environment. */
    public static TopologyDetector standard() {
        return standard(TopologyDetector::runProcess);
    }

    /** The standard sources, running external tools through {@code runner} (tests pass a fake). */
    public static TopologyDetector standard(CommandRunner runner) {
        List<Source> s = new ArrayList<>();
        s.add(source("file", t -> {
            String f = setting(PROPERTY_FILE, ENV_FILE);
            if (f == null) {
                return null;
            }
            return TopologyJson.read(Path.of(f), t);
        }));
        s.add(source("nvml", NvmlDetector::detect));
        s.add(source("nvidia-smi", t -> {
            String topo = runner.run(List.of("nvidia-smi", "topo", "-m"));
            List<GpuInfo> gpus = List.of();
            try {
                gpus = NvidiaSmiTopoParser.parseQueryGpu(runner.run(List.of("nvidia-smi",
                        "--query-gpu=index,name,pci.bus_id,memory.total", "--format=csv,noheader,nounits")));
            } catch (IOException | IllegalArgumentException e) {
                LOG.info("nvidia-smi --query-gpu gave no names: {}", e.getMessage());
            }
            return NvidiaSmiTopoParser.parse(topo, gpus, t);
        }));
        s.add(source("rocm-smi", t -> AmdSmiTopoParser.parseRocmSmi(runner.run(List.of("rocm-smi", "--showtopo")), List.of(), t)));
        s.add(source("amd-smi", t -> AmdSmiTopoParser.parseAmdSmi(runner.run(List.of("amd-smi", "topology")), List.of(), t)));
        s.add(source("jcuda", JCudaDetector::detect));
        return new TopologyDetector(s, BandwidthTable.load(), virtualRanks());
    }

    /** A source from a name and a function. */
    public static Source source(String name, ThrowingDetect fn) {
        return new Source() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public Topology detect(BandwidthTable table) throws Exception {
                return fn.detect(table);
            }
        };
    }

    /** A detection function that may throw. */
    @FunctionalInterface
    public interface ThrowingDetect {
        /** The topology, or null when the source is not configured. */
        Topology detect(BandwidthTable table) throws Exception;
    }

    /** Tries the sources in order; never fails except for a bad explicit file. */
    public Detection detect() {
        List<Attempt> attempts = new ArrayList<>();
        for (Source s : sources) {
            try {
                Topology t = s.detect(table);
                if (t == null) {
                    attempts.add(new Attempt(s.name(), false, "not configured"));
                    LOG.debug("topology source {}: not configured", s.name());
                    continue;
                }
                if (t.deviceCount() == 0) {
                    attempts.add(new Attempt(s.name(), false, "no devices"));
                    continue;
                }
                attempts.add(new Attempt(s.name(), true, null));
                LOG.info("topology from {}: {}", s.name(), t);
                return new Detection(t, attempts, true);
            } catch (Exception | LinkageError e) {
                if (s.name().equals("file")) {
                    throw e instanceof IllegalArgumentException iae ? iae
                            : new IllegalArgumentException("topology file set by " + PROPERTY_FILE + "/" + ENV_FILE
                                    + " could not be read: " + e.getMessage(), e);
                }
                String reason = shortReason(e);
                attempts.add(new Attempt(s.name(), false, reason));
                LOG.info("topology source {} failed: {}", s.name(), reason);
            }
        }
        Topology cpu = Topology.virtualCpu(virtualRanks);
        LOG.info("no GPU found; using {} virtual CPU ranks", virtualRanks);
        return new Detection(cpu, attempts, false);
    }

    /** The first line of an exception's message, at most 200 characters: native errors are long. */
    private static String shortReason(Throwable e) {
        String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage().strip();
        int nl = m.indexOf('\n');
        if (nl >= 0) {
            m = m.substring(0, nl).strip();
        }
        return m.length() > 200 ? m.substring(0, 200) + "..." : m;
    }

    /** N for the CPU fallback from {@value #PROPERTY_RANKS} / {@value #ENV_RANKS}, default 8. */
    public static int virtualRanks() {
        String v = setting(PROPERTY_RANKS, ENV_RANKS);
        if (v == null) {
            return DEFAULT_VIRTUAL_RANKS;
        }
        try {
            int n = Integer.parseInt(v.strip());
            if (n < 1) {
                throw new NumberFormatException();
            }
            return n;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(PROPERTY_RANKS + "/" + ENV_RANKS + " must be a positive integer, got '" + v + "'");
        }
    }

    private static String setting(String property, String env) {
        String v = System.getProperty(property);
        if (v == null || v.isBlank()) {
            v = System.getenv(env);
        }
        return v == null || v.isBlank() ? null : v;
    }

    /** Runs a command with a 20 s limit; a missing tool or a non-zero exit is an IOException. */
    static String runProcess(List<String> command) throws IOException {
        Process p;
        try {
            p = new ProcessBuilder(command).redirectErrorStream(false).start();
        } catch (IOException e) {
            throw new IOException(command.get(0) + " not found or not runnable: " + e.getMessage(), e);
        }
        CompletableFuture<String> out = CompletableFuture.supplyAsync(() -> drain(p.getInputStream()));
        CompletableFuture<String> err = CompletableFuture.supplyAsync(() -> drain(p.getErrorStream()));
        try {
            if (!p.waitFor(20, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", command) + " timed out after 20 s");
            }
            if (p.exitValue() != 0) {
                throw new IOException(String.join(" ", command) + " exited with " + p.exitValue() + ": "
                        + err.get(5, TimeUnit.SECONDS).strip());
            }
            return out.get(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
            throw new IOException("interrupted while running " + command.get(0), e);
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            throw new IOException("could not read the output of " + command.get(0) + ": " + e.getMessage(), e);
        }
    }

    private static String drain(InputStream in) {
        try (in) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }

    /** Convenience: the topology alone. */
    public static Topology detectTopology() {
        return standard().detect().topology();
    }

    /** Convenience for callers that only need to know whether detection would find a GPU. */
    public static Optional<Topology> detectGpu() {
        Detection d = standard().detect();
        return d.gpuFound() ? Optional.of(d.topology()) : Optional.empty();
    }
}
