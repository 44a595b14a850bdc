package io.github.taspdjl.cli;

import io.github.taspdjl.runtime.LaunchEnvironment;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code tasp launch --nprocs N -- COMMAND...}: starts N processes on this machine as the ranks of
 * one job, each with the variables torchrun would give it ({@code MASTER_ADDR}, {@code MASTER_PORT},
 * {@code RANK}, {@code WORLD_SIZE}, {@code LOCAL_RANK}, {@code LOCAL_WORLD_SIZE}), and waits for
 * them. When one fails, the others get {@code --grace} seconds to notice and exit on their own
 * (a TASP group fails every rank and names the lost one), then they are stopped. The exit code is
 * the first failure's, or 0.
 */
@Command(name = "launch", description = "Start N local processes as the ranks of one job (torchrun-style "
        + "environment) and wait for them: tasp launch --nprocs 4 -- bin/tasp demo", mixinStandardHelpOptions = true)
public final class LaunchCommand implements Callable<Integer> {

    @Option(names = "--nprocs", required = true, description = "processes (ranks) to start")
    int nprocs;

    @Option(names = "--master-addr", defaultValue = "127.0.0.1",
            description = "address of rank 0's rendezvous (default ${DEFAULT-VALUE})")
    String masterAddr;

    @Option(names = "--master-port", description = "port of the rendezvous (default: a free port)")
    Integer masterPort;

    @Option(names = "--grace", defaultValue = "30",
            description = "seconds the other ranks get to exit after one failed, before they are stopped (default ${DEFAULT-VALUE})")
    int graceSeconds;

    @Parameters(arity = "1..*", paramLabel = "COMMAND", description = "the command every rank runs (after --)")
    List<String> command;

    @Override
    public Integer call() throws Exception {
        if (nprocs < 1) {
            throw new IllegalArgumentException("--nprocs must be at least 1, got " + nprocs);
        }
        if (graceSeconds < 0) {
            throw new IllegalArgumentException("--grace must not be negative, got " + graceSeconds);
        }
        int port = masterPort != null ? masterPort : freePort(masterAddr);
        List<Process> ranks = new ArrayList<>();
        Thread reaper = new Thread(() -> ranks.forEach(LaunchCommand::stop), "tasp-launch-reaper");
        Runtime.getRuntime().addShutdownHook(reaper);
        try {
            for (int r = 0; r < nprocs; r++) {
                ProcessBuilder pb = new ProcessBuilder(command).inheritIO();
                pb.environment().putAll(LaunchEnvironment.torchrunVariables(r, nprocs, r, nprocs, masterAddr, port));
                try {
                    ranks.add(pb.start());
                } catch (IOException e) {
                    throw new IllegalArgumentException("cannot start '" + String.join(" ", command) + "': "
                            + e.getMessage(), e);
                }
            }
            return waitAll(ranks);
        } finally {
            ranks.forEach(LaunchCommand::stop);
            try {
                Runtime.getRuntime().removeShutdownHook(reaper);
            } catch (IllegalStateException e) {
                // the JVM is shutting down: the hook runs anyway
            }
        }
    }

    /** Waits for every rank; after the first failure, stops the rest once the grace period ends. */
    private int waitAll(List<Process> ranks) throws InterruptedException {
        int firstFailure = 0;
        int failedRank = -1;
        long stopAt = Long.MAX_VALUE;
        while (ranks.stream().anyMatch(Process::isAlive)) {
            for (int r = 0; r < ranks.size(); r++) {
                Process p = ranks.get(r);
                if (!p.isAlive() && p.exitValue() != 0 && firstFailure == 0) {
                    firstFailure = p.exitValue();
                    failedRank = r;
                    stopAt = System.nanoTime() + TimeUnit.SECONDS.toNanos(graceSeconds);
                }
            }
            if (System.nanoTime() >= stopAt) {
                System.err.println("tasp launch: rank " + failedRank + " failed; stopping the ranks still running after "
                        + graceSeconds + " s");
                ranks.forEach(LaunchCommand::stop);
                break;
            }
            Thread.sleep(100);
        }
        StringBuilder summary = new StringBuilder();
        for (int r = 0; r < ranks.size(); r++) {
            Process p = ranks.get(r);
            p.waitFor();
            if (p.exitValue() != 0) {
                summary.append(summary.length() == 0 ? "" : ", ").append("rank ").append(r).append(" exited with ")
                        .append(p.exitValue());
            }
            if (firstFailure == 0 && p.exitValue() != 0) {
                firstFailure = p.exitValue();
            }
        }
        if (summary.length() > 0) {
            System.err.println("tasp launch: " + summary);
        }
        return firstFailure;
    }

    private static void stop(Process p) {
        if (!p.isAlive()) {
            return;
        }
        p.destroy();
        try {
            if (!p.waitFor(5, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    private static int freePort(String addr) throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName(addr))) {
            return s.getLocalPort();
        }
    }
}
