package io.github.taspdjl.topology;

/**
 * Saved tool output or a topology file that could not be read. The message names the line number
 * (1-based) and the text of the line, so the user can find it.
 */
public class TopologyParseException extends IllegalArgumentException {

    private final int line;

    /**
     * @param what what the input was ("nvidia-smi topo -m", a file name)
     * @param line 1-based line number, or 0 when the problem is not on one line
     * @param text the line's text (control characters are shown escaped)
     * @param reason what is wrong
     */
    public TopologyParseException(String what, int line, String text, String reason) {
        super(what + (line > 0 ? ": line " + line + " '" + printable(text) + "': " : ": ") + reason);
        this.line = line;
    }

    /** The 1-based line number of the problem, 0 when it concerns the input as a whole. */
    public int line() {
        return line;
    }

    private static String printable(String s) {
        if (s == null) {
            return "";
        }
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c == '\t') {
                b.append("\\t");
            } else if (c < 0x20 || c == 0x7f) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }
}
