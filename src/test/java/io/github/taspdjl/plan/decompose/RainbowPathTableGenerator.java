package io.github.taspdjl.plan.decompose;

import java.io.FileWriter;
import java.io.IOException;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.Optional;
import java.util.StringJoiner;

/**
 * Developer tool (not a test): searches rainbow paths for n = 2 mod 4 and appends them to a table file
 * in the format of {@code rainbow-paths.txt}. One thread; stops at the total time budget.
 *
 * <pre>
 * java -cp target/classes:target/test-classes:$(cat cp.txt) \
 *   io.github.taspdjl.plan.decompose.RainbowPathTableGenerator OUT FROM TO PER_N_SECONDS TOTAL_SECONDS
 * </pre>
 */
public final class RainbowPathTableGenerator {

    private RainbowPathTableGenerator() {}

    public static void main(String[] args) throws IOException {
        String out = args[0];
        int from = Integer.parseInt(args[1]);
        int to = Integer.parseInt(args[2]);
        Duration perN = Duration.ofSeconds(Long.parseLong(args[3]));
        long end = System.nanoTime() + Duration.ofSeconds(Long.parseLong(args[4])).toNanos();
        for (int n = from; n <= to; n += 4) {
            if (n % 4 != 2) {
                throw new IllegalArgumentException("sizes must be 2 mod 4, got n=" + n);
            }
            long left = end - System.nanoTime();
            if (left <= 0) {
                System.out.println("total budget spent before n=" + n);
                break;
            }
            Duration bound = Duration.ofNanos(Math.min(perN.toNanos(), left));
            int[][] colour = RainbowPathExtension.colours(WaleckiDecomposition.cycles(n - 1), n - 1);
            long t0 = System.nanoTime();
            Optional<int[]> path = RainbowPaths.search(colour, bound, n);
            double secs = (System.nanoTime() - t0) / 1e9;
            if (path.isEmpty()) {
                System.out.printf("n=%d: none within %.1f s%n", n, secs);
                continue;
            }
            if (RainbowPathExtension.rainbowProblem(colour, path.get()) != null) {
                throw new IllegalStateException("search returned a bad path for n=" + n);
            }
            StringJoiner line = new StringJoiner(" ", n + ": ", "");
            for (int v : path.get()) {
                line.add(Integer.toString(v));
            }
            try (PrintWriter w = new PrintWriter(new FileWriter(out, true))) {
                w.println(line);
            }
            System.out.printf("n=%d: found in %.1f s%n", n, secs);
        }
    }
}
