package io.github.taspdjl.plan;

import java.util.Locale;
import java.util.Objects;

/**
 * The head-parallel part of a {@link Strategy#ULYSSES} or {@link Strategy#HYBRID} plan. Ranks form groups of
 * {@code degree} consecutive ranks ({@code g*u .. g*u+u-1}). Rank {@code g*u+j} starts with its shard (the
 * plan's {@link SequenceLayout#grouped grouped} layout) of every head; an all-to-all inside its group gives
 * it the group's tokens of query heads {@code [j*H/u, (j+1)*H/u)} and of the key/value heads those use; it
 * then runs {@link #inner()}, a token-chunk plan over the {@code n/u} ranks that hold the same heads (ranks
 * {@code j, u+j, 2u+j, ...}; inner rank {@code g}), and an all-to-all of the output (and LSE) brings its own
 * tokens of every head back. Pure Ulysses is degree n with a one-rank inner plan (attention over the whole
 * sequence).
 *
 * <p>Constraint: query heads divisible by the degree. Key/value heads need not be: each member receives
 * exactly the key/value heads its query heads use ({@link #kvHeads}), so with fewer key/value heads than
 * members a key/value head is replicated on the members that share it and on no other (the least
 * replication: every member needs at least one).
 *
 * @param degree the Ulysses degree u: ranks per all-to-all group
 * @param inner the plan over the n/u ranks of one head subset (one rank for pure Ulysses)
 */
public record HeadParallel(int degree, Plan inner) {

    public HeadParallel {
        Objects.requireNonNull(inner, "inner");
        if (degree < 1) {
            throw new IllegalArgumentException("Ulysses degree must be at least 1, got " + degree);
        }
        if (inner.headParallel() != null) {
            throw new IllegalArgumentException("the inner plan of a head-parallel plan moves token chunks only");
        }
    }

    /** Ranks in total: degree times the inner plan's ranks. */
    public int worldSize() {
        return degree * inner.worldSize();
    }

    /** Whether query heads {@code heads} (with {@code kvHeads} key/value heads) divide among the groups' members. */
    public boolean applies(int heads, int kvHeads) {
        return heads % degree == 0 && kvHeads >= 1 && heads % kvHeads == 0;
    }

    /** The constraint, in words (for errors and {@code tasp plan}). */
    public String constraint() {
        return constraint(degree);
    }

    static String constraint(int degree) {
        return "query heads must be divisible by the Ulysses degree " + degree + "; key/value heads may be fewer than "
                + degree + " (each rank receives the key/value heads its query heads use, replicated only where ranks"
                + " share one)";
    }

    /**
     * Throws when the heads do not divide among the members.
     *
     * @throws IllegalArgumentException naming the heads, the degree and what to change
     */
    public void requireHeads(int heads, int kvHeads) {
        if (kvHeads < 1 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("query heads " + heads + " must be a multiple of key/value heads " + kvHeads);
        }
        if (heads % degree != 0) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "%s over %d ranks: %d query heads do not divide"
                    + " among the %d ranks of a Ulysses group (%s); use a strategy that moves token chunks (ring, tasp),"
                    + " or a hybrid whose Ulysses degree divides %d", label(), worldSize(), heads, degree, constraint(),
                    heads));
        }
    }

    /** Query heads each member attends for: heads / degree. */
    public int queryHeadsPerMember(int heads) {
        return heads / degree;
    }

    /**
     * The key/value heads {@code [lo, hi)} member {@code member} of a group needs: those its query heads
     * {@code [member*H/u, (member+1)*H/u)} use (query head h uses key/value head h / (H / Hkv)).
     */
    public int[] kvHeads(int member, int heads, int kvHeads) {
        requireHeads(heads, kvHeads);
        if (member < 0 || member >= degree) {
            throw new IllegalArgumentException("member " + member + " outside a group of " + degree);
        }
        int perMember = heads / degree;
        int group = heads / kvHeads;
        return new int[] {member * perMember / group, ((member + 1) * perMember - 1) / group + 1};
    }

    /**
     * Whether member {@code member}'s query heads use its key/value heads as plain grouped-query attention
     * (local query head i uses local key/value head i / (queries per key/value head)); otherwise the member
     * expands its key/value heads to one per query head before attention.
     */
    public boolean uniform(int member, int heads, int kvHeads) {
        int[] kv = kvHeads(member, heads, kvHeads);
        int local = heads / degree;
        int count = kv[1] - kv[0];
        if (local % count != 0) {
            return false;
        }
        int group = heads / kvHeads;
        for (int i = 0; i < local; i++) {
            if ((member * local + i) / group - kv[0] != i / (local / count)) {
                return false;
            }
        }
        return true;
    }

    /** Key/value heads all members of a group receive together, over the key/value heads (1 = no replication). */
    public double kvReplication(int heads, int kvHeads) {
        long total = 0;
        for (int j = 0; j < degree; j++) {
            int[] kv = kvHeads(j, heads, kvHeads);
            total += kv[1] - kv[0];
        }
        return (double) total / kvHeads;
    }

    /** Group of a rank. */
    public int groupOf(int rank) {
        return rank / degree;
    }

    /** Position of a rank in its group (the head subset it computes). */
    public int memberOf(int rank) {
        return rank % degree;
    }

    /** Global rank of member {@code member} of group {@code group}. */
    public int rank(int group, int member) {
        return group * degree + member;
    }

    /** Short name: "ulysses", or "hybrid u x inner" (e.g. "hybrid 4x tasp"). */
    public String label() {
        return inner.worldSize() == 1 ? Strategy.ULYSSES.cliName()
                : Strategy.HYBRID.cliName() + " " + degree + "x" + inner.strategy().cliName();
    }
}
