package io.github.taspdjl.plan.decompose;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.Map;
import java.util.TreeMap;

/**
 * The stored table of rainbow paths for n = 2 mod 4 (no closed form is known for those), resource
 * {@code rainbow-paths.txt} beside this class. One line per n: {@code n: v_0 v_1 ... v_(n-2)}, in the
 * vertex labels of {@link WaleckiDecomposition} for K*_(n-1). Every line is checked on load: a line
 * that is not a rainbow path fails loudly, naming n, because it would otherwise give wrong cycles.
 */
final class StoredRainbowPaths {

    static final String RESOURCE = "rainbow-paths.txt";

    private StoredRainbowPaths() {}

    private static final class Holder {
        static final Map<Integer, int[]> TABLE = load();
    }

    /** The stored path for n, or null when the table has none. */
    static int[] get(int n) {
        int[] p = Holder.TABLE.get(n);
        return p == null ? null : p.clone();
    }

    /** The sizes the table holds. */
    static java.util.Set<Integer> sizes() {
        return Holder.TABLE.keySet();
    }

    private static Map<Integer, int[]> load() {
        Map<Integer, int[]> table = new TreeMap<>();
        try (InputStream in = StoredRainbowPaths.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                return Collections.emptyMap();
            }
            BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
            String line;
            int lineNo = 0;
            while ((line = reader.readLine()) != null) {
                lineNo++;
                line = line.strip();
                if (line.isEmpty() || line.startsWith("#")) {
                    continue;
                }
                int colon = line.indexOf(':');
                if (colon < 0) {
                    throw new IllegalStateException(RESOURCE + " line " + lineNo + ": expected 'n: path', got " + line);
                }
                int n = Integer.parseInt(line.substring(0, colon).strip());
                String[] parts = line.substring(colon + 1).strip().split("\\s+");
                int[] path = new int[parts.length];
                for (int i = 0; i < parts.length; i++) {
                    path[i] = Integer.parseInt(parts[i]);
                }
                if (n < 2 || n % 2 != 0) {
                    throw new IllegalStateException(RESOURCE + " line " + lineNo + ": n=" + n + " is not even");
                }
                int[][] colour = RainbowPathExtension.colours(WaleckiDecomposition.cycles(n - 1), n - 1);
                String problem = RainbowPathExtension.rainbowProblem(colour, path);
                if (problem != null) {
                    throw new IllegalStateException(RESOURCE + " line " + lineNo + ": stored path for n=" + n
                            + " is not a rainbow path: " + problem);
                }
                table.put(n, path);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + RESOURCE, e);
        }
        return Collections.unmodifiableMap(table);
    }
}
