package io.github.taspdjl;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;

/**
 * Ranks as real processes for multi-process tests: JVMs started from the test's own classpath (small
 * heap, offline DJL, the same native library and cache settings), output to a log file, without the
 * launcher variables of the surrounding environment. {@link #killAll} ends every one of them.
 */
public final class RankJvms {

    private final List<Process> started = new ArrayList<>();

    /** Starts {@code mainClass} with {@code args}, extra environment variables, output to {@code log}. */
    public Process start(String mainClass, List<String> args, Map<String, String> env, Path log) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-Xmx512m");
        cmd.add("-XX:+UseSerialGC");
        cmd.add("-XX:TieredStopAtLevel=1");
        cmd.add("-Dai.djl.offline=true");
        cmd.add("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn");
        for (String p : new String[] {"tasp.cache.dir", "tasp.native.library"}) {
            if (System.getProperty(p) != null) {
                cmd.add("-D" + p + "=" + System.getProperty(p));
            }
        }
        cmd.add("-cp");
        cmd.add(System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")));
        cmd.add(mainClass);
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().keySet().removeIf(k -> k.startsWith("SLURM_") || k.startsWith("OMPI_")
                || k.startsWith("TORCHELASTIC_") || k.equals("TASP_MASTER_PORT") || k.equals("RANK")
                || k.equals("WORLD_SIZE"));
        pb.environment().putAll(env);
        pb.redirectErrorStream(true).redirectOutput(log.toFile());
        Process p = pb.start();
        started.add(p);
        return p;
    }

    /**
     * Starts one JVM per rank ({@code mainClass} with {@code args.apply(rank)}), waits for all of them
     * and returns their outputs by rank; fails (with the output) when one runs past {@code seconds}
     * or exits with a nonzero status.
     */
    public List<String> runAll(String mainClass, int world, IntFunction<List<String>> args, int seconds)
            throws IOException, InterruptedException {
        List<Process> ranks = new ArrayList<>();
        List<Path> logs = new ArrayList<>();
        for (int r = 0; r < world; r++) {
            Path log = Files.createTempFile("tasp-rank" + r + "-", ".log");
            log.toFile().deleteOnExit();
            logs.add(log);
            ranks.add(start(mainClass, args.apply(r), Map.of(), log));
        }
        List<String> outputs = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        for (int r = 0; r < world; r++) {
            Process p = ranks.get(r);
            boolean ended = p.waitFor(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            String out = Files.readString(logs.get(r), StandardCharsets.UTF_8);
            if (!ended || p.exitValue() != 0) {
                throw new AssertionError("rank " + r + (ended ? " exited with " + p.exitValue() : " still running after "
                        + seconds + " s") + ": " + out);
            }
            outputs.add(out);
        }
        return outputs;
    }

    /** Kills every process started here and waits for them (at most 30 s each). */
    public void killAll() throws InterruptedException {
        for (Process p : started) {
            p.destroyForcibly();
        }
        for (Process p : started) {
            p.waitFor(30, TimeUnit.SECONDS);
        }
        started.clear();
    }

    /** The same values in every process: normal values from a seeded java.util.Random, not the engine. */
    public static NDArray gaussian(NDManager m, long seed, Shape shape) {
        Random r = new Random(seed);
        float[] x = new float[(int) shape.size()];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return m.create(x, shape);
    }
}
