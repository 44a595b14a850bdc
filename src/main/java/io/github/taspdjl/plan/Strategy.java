package io.github.taspdjl.plan;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/** How the key/value blocks travel between ranks. Each has a CLI name and a stable code in the flat form. */
public enum Strategy {
    /** Ring Attention: one ring over ranks 0..n-1, contiguous layout. */
    RING("ring", 0),
    /** Ring Attention on the zigzag layout (rank r holds blocks r and 2n-1-r): causal work balanced. */
    ZIGZAG_RING("zigzag", 1),
    /** TASP with the full mask: n-1 (or as many as exist) arc-disjoint Hamiltonian cycles, one KV chunk each. */
    TASP("tasp", 2),
    /** TASP on the zigzag layout: causal work balanced. */
    TASP_CAUSAL("tasp-causal", 3),
    /** TASP over u nodes of m GPUs: m rings made of intra-node Hamiltonian paths chained over the NIC rails. */
    TASP_HIERARCHICAL("tasp-hier", 4),
    /** The direct all-to-all schedule: every rank sends one chunk to every peer in every step (any n). */
    DIRECT("direct", 5),
    /**
     * DeepSpeed-Ulysses: an all-to-all over attention heads. Each rank sends every peer that peer's heads of
     * its tokens (q, k, v), runs attention over the whole sequence for its heads, and an all-to-all of the
     * output brings its tokens of every head back. Needs query heads divisible by the ranks (see {@link
     * HeadParallel}).
     */
    ULYSSES("ulysses", 6),
    /**
     * USP-style hybrid: Ulysses of degree u inside groups of u consecutive ranks, times a ring or TASP plan
     * over the n/u ranks that share a head subset (see {@link HeadParallel}).
     */
    HYBRID("hybrid", 7),
    /** Let the cost model pick the fastest of the others for a topology and problem size. */
    AUTO("auto", -1);

    private final String cliName;
    private final int code;

    Strategy(String cliName, int code) {
        this.cliName = cliName;
        this.code = code;
    }

    /** Name on the command line and in JSON. */
    public String cliName() {
        return cliName;
    }

    /**
     * Whether plans of this strategy move heads (an all-to-all, {@link Plan#headParallel()}) instead of only
     * key/value token chunks.
     */
    public boolean headParallel() {
        return this == ULYSSES || this == HYBRID;
    }

    /** Code in the flat form ({@link PlanCodec}); -1 for {@link #AUTO}, which never appears in a plan. */
    public int code() {
        return code;
    }

    /**
     * The strategy of a CLI name ({@code ring|zigzag|tasp|tasp-causal|tasp-hier|direct|ulysses|hybrid|auto}) or an enum
     * name, case-insensitive.
     *
     * @throws IllegalArgumentException naming the known strategies when there is none of that name
     */
    public static Strategy fromName(String name) {
        if (name != null) {
            String n = name.trim().toLowerCase(Locale.ROOT);
            for (Strategy s : values()) {
                if (s.cliName.equals(n) || s.name().toLowerCase(Locale.ROOT).equals(n)) {
                    return s;
                }
            }
        }
        throw new IllegalArgumentException("unknown strategy '" + name + "'; known: "
                + Arrays.stream(values()).map(Strategy::cliName).collect(Collectors.joining("|")));
    }

    /** The strategy of a flat-form code. */
    public static Strategy fromCode(int code) {
        for (Strategy s : values()) {
            if (s.code == code && s != AUTO) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown strategy code " + code);
    }
}
