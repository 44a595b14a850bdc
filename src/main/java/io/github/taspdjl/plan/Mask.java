package io.github.taspdjl.plan;

/**
 * The mask of one attention task. Block pairs that the causal mask hides entirely are not tasks at all.
 */
public enum Mask {
    /** No mask: every query of the block sees every key of the block (or piece). */
    FULL(0),
    /** A diagonal block: query block and key block are the same block, causal inside. */
    CAUSAL(1);

    private final int code;

    Mask(int code) {
        this.code = code;
    }

    /** Code in the flat form. */
    public int code() {
        return code;
    }

    /** The mask of a flat-form code. */
    public static Mask fromCode(int code) {
        for (Mask m : values()) {
            if (m.code == code) {
                return m;
            }
        }
        throw new IllegalArgumentException("unknown mask code " + code);
    }
}
