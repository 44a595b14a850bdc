package io.github.taspdjl.plan.decompose;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Turns a decomposition of K*_(n-1) (n even) plus a rainbow Hamiltonian path into a decomposition of
 * K*_n.
 *
 * <p>Colour every arc of K*_(n-1) by the index of the cycle that holds it. A rainbow path
 * p_0..p_(n-2) visits every vertex once and its n-2 arcs carry the n-2 colours once each. The new
 * vertex v = n-1 goes into cycle j on that cycle's path arc (x->y becomes x->v->y), and the path
 * closed through v (p_(n-2)->v->p_0) is cycle n-1. Every old arc stays on exactly one cycle (the path
 * arcs moved from their cycle to the new one), v's in-arcs come from the path tails p_0..p_(n-3) and
 * from p_(n-2), its out-arcs go to p_1..p_(n-2) and to p_0: each once.
 */
final class RainbowPathExtension {

    private RainbowPathExtension() {}

    /** colour[x][y] = index of the cycle holding arc x->y; -1 on the diagonal. */
    static int[][] colours(List<HamiltonianCycle> cycles, int n) {
        int[][] colour = new int[n][n];
        for (int[] row : colour) {
            Arrays.fill(row, -1);
        }
        for (int j = 0; j < cycles.size(); j++) {
            HamiltonianCycle c = cycles.get(j);
            for (int i = 0; i < n; i++) {
                colour[c.at(i)][c.at(i + 1)] = j;
            }
        }
        return colour;
    }

    /**
     * Whether {@code path} is a rainbow Hamiltonian path for {@code colour} (n = colour.length vertices,
     * n-1 colours): returns null when it is, else what is wrong.
     */
    static String rainbowProblem(int[][] colour, int[] path) {
        int n = colour.length;
        if (path.length != n) {
            return "path has " + path.length + " vertices, expected " + n;
        }
        boolean[] seenV = new boolean[n];
        boolean[] seenC = new boolean[Math.max(n - 1, 0)];
        for (int i = 0; i < n; i++) {
            int x = path[i];
            if (x < 0 || x >= n || seenV[x]) {
                return "vertex " + x + " at position " + i + " is out of range or repeated";
            }
            seenV[x] = true;
            if (i > 0) {
                int c = colour[path[i - 1]][x];
                if (c < 0 || c >= n - 1 || seenC[c]) {
                    return "arc " + path[i - 1] + "->" + x + " has colour " + c + ", missing or repeated";
                }
                seenC[c] = true;
            }
        }
        return null;
    }

    /** The decomposition of K*_n from {@code cycles} of K*_(n-1) and a rainbow path over them. */
    static List<HamiltonianCycle> extend(List<HamiltonianCycle> cycles, int[] path) {
        int old = path.length;
        int[][] colour = colours(cycles, old);
        String problem = rainbowProblem(colour, path);
        if (problem != null) {
            throw new IllegalArgumentException("not a rainbow path for K*_" + old + ": " + problem);
        }
        int v = old;
        // tailOf[j]: the tail of the path arc with colour j.
        int[] tailOf = new int[cycles.size()];
        for (int i = 0; i + 1 < old; i++) {
            tailOf[colour[path[i]][path[i + 1]]] = path[i];
        }
        List<HamiltonianCycle> out = new ArrayList<>(old);
        for (int j = 0; j < cycles.size(); j++) {
            HamiltonianCycle c = cycles.get(j);
            int[] order = new int[old + 1];
            int start = c.position(tailOf[j]);
            // Rotate so the cycle starts at the tail, then put v right after it.
            order[0] = c.at(start);
            order[1] = v;
            for (int i = 1; i < old; i++) {
                order[i + 1] = c.at(start + i);
            }
            out.add(new HamiltonianCycle(order));
        }
        int[] last = Arrays.copyOf(path, old + 1);
        last[old] = v;
        out.add(new HamiltonianCycle(last));
        return out;
    }
}
