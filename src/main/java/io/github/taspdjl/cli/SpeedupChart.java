package io.github.taspdjl.cli;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;

/**
 * A line chart of speedup against sequence length (log scale), written as PNG (Java2D, headless) or SVG
 * (plain text) by the file's extension. Both go through one small drawing interface so they look alike;
 * no charting library is needed. Strategies often predict the same time (TASP and direct on a complete
 * graph), so every series has its own dash pattern, marker and width, wider ones drawn first, and a series
 * that coincides with an earlier one says so in the legend: no line hides another.
 */
public final class SpeedupChart {

    private static final int W = 920;
    private static final int H = 480;
    private static final int LEFT = 70;
    private static final int RIGHT = 290;
    private static final int TOP = 50;
    private static final int BOTTOM = 60;
    private static final Color[] COLORS = {new Color(0x1f77b4), new Color(0xd62728), new Color(0x2ca02c),
        new Color(0x9467bd), new Color(0xff7f0e), new Color(0x8c564b)};
    /** Dash pattern per series (null: solid). */
    private static final float[][] DASHES = {null, {9, 5}, {2, 4}, {12, 4, 2, 4}, {5, 3}, {1, 3}};
    /** Line width per series: the first widest, so later ones show on top of it. */
    private static final float[] WIDTHS = {5f, 3f, 2f, 1.6f, 1.4f, 1.2f};
    /** Two curves closer than this everywhere are reported as the same in the legend. */
    static final double SAME_CURVE = 0.01;

    private SpeedupChart() {}

    /** Drawing primitives both formats implement. */
    private interface Canvas {
        void line(double x1, double y1, double x2, double y2, Color c, float width, float[] dash);

        void text(double x, double y, String s, int size, String anchor, Color c);
    }

    /**
     * Writes the chart.
     *
     * @param file target; ".svg" gives SVG, ".png" PNG
     * @param title chart title
     * @param baseline what the speedups are over ("ring", or "zigzag" for causal masks): the y axis label
     * @param seqLens x values, ascending
     * @param curves series name -> speedup per sequence length
     * @throws IllegalArgumentException for another extension or no data
     */
    public static void write(Path file, String title, String baseline, long[] seqLens, Map<String, double[]> curves) {
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (seqLens.length < 2 || curves.isEmpty()) {
            throw new IllegalArgumentException("a chart needs at least two sequence lengths and one series");
        }
        try {
            if (name.endsWith(".svg")) {
                StringBuilder sb = new StringBuilder();
                sb.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\""
                        + " viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">%n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>%n",
                        W, H, W, H));
                draw(new SvgCanvas(sb), title, baseline, seqLens, curves);
                sb.append("</svg>\n");
                Files.writeString(file, sb.toString(), StandardCharsets.UTF_8);
            } else if (name.endsWith(".png")) {
                BufferedImage img = new BufferedImage(W, H, BufferedImage.TYPE_INT_RGB);
                Graphics2D g = img.createGraphics();
                g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
                g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
                g.setColor(Color.WHITE);
                g.fillRect(0, 0, W, H);
                draw(new PngCanvas(g), title, baseline, seqLens, curves);
                g.dispose();
                ImageIO.write(img, "png", file.toFile());
            } else {
                throw new IllegalArgumentException("chart file " + file + " must end in .png or .svg");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write chart " + file, e);
        }
    }

    private static void draw(Canvas c, String title, String baseline, long[] xs, Map<String, double[]> curves) {
        double xMin = Math.log(xs[0]);
        double xMax = Math.log(xs[xs.length - 1]);
        double yMax = 1.0;
        for (double[] ys : curves.values()) {
            for (double y : ys) {
                yMax = Math.max(yMax, y);
            }
        }
        double step = niceStep(yMax / 6);
        yMax = Math.ceil(yMax / step) * step;
        double plotW = W - LEFT - RIGHT;
        double plotH = H - TOP - BOTTOM;
        double yTop = yMax;
        java.util.function.DoubleUnaryOperator px = x -> LEFT + (Math.log(x) - xMin) / (xMax - xMin) * plotW;
        java.util.function.DoubleUnaryOperator py = y -> TOP + plotH - y / yTop * plotH;
        c.text(W / 2.0 - RIGHT / 2.0, 28, title, 15, "middle", Color.BLACK);
        for (double y = 0; y <= yMax + 1e-9; y += step) {
            c.line(LEFT, py.applyAsDouble(y), LEFT + plotW, py.applyAsDouble(y), new Color(0xdddddd), 1, null);
            c.text(LEFT - 8, py.applyAsDouble(y) + 4, String.format(Locale.ROOT, step < 1 ? "%.1f" : "%.0f", y), 11, "end",
                    Color.DARK_GRAY);
        }
        for (long x : xs) {
            c.line(px.applyAsDouble(x), TOP, px.applyAsDouble(x), TOP + plotH, new Color(0xeeeeee), 1, null);
            c.text(px.applyAsDouble(x), TOP + plotH + 18, tokens(x), 11, "middle", Color.DARK_GRAY);
        }
        c.line(LEFT, TOP, LEFT, TOP + plotH, Color.BLACK, 1, null);
        c.line(LEFT, TOP + plotH, LEFT + plotW, TOP + plotH, Color.BLACK, 1, null);
        c.line(LEFT, py.applyAsDouble(1), LEFT + plotW, py.applyAsDouble(1), Color.GRAY, 1, new float[] {6, 4});
        c.text(LEFT + plotW / 2, H - 18, "sequence length (tokens, log scale)", 12, "middle", Color.BLACK);
        c.text(18, TOP - 14, "speedup over " + baseline, 12, "start", Color.BLACK);
        List<String> labels = legend(curves);
        int i = 0;
        for (double[] ys : curves.values()) {
            Color col = COLORS[i % COLORS.length];
            float width = WIDTHS[Math.min(i, WIDTHS.length - 1)];
            float[] dash = DASHES[i % DASHES.length];
            for (int k = 1; k < xs.length; k++) {
                c.line(px.applyAsDouble(xs[k - 1]), py.applyAsDouble(ys[k - 1]), px.applyAsDouble(xs[k]),
                        py.applyAsDouble(ys[k]), col, width, dash);
            }
            for (int k = 0; k < xs.length; k++) {
                marker(c, i, px.applyAsDouble(xs[k]), py.applyAsDouble(ys[k]), col);
            }
            double ly = TOP + 10 + 22 * i;
            c.line(W - RIGHT + 14, ly, W - RIGHT + 44, ly, col, width, dash);
            marker(c, i, W - RIGHT + 29, ly, col);
            c.text(W - RIGHT + 52, ly + 4, labels.get(i), 12, "start", Color.BLACK);
            i++;
        }
    }

    /** Legend labels: a series equal (within {@link #SAME_CURVE}) to an earlier one names it. */
    static List<String> legend(Map<String, double[]> curves) {
        List<String> names = new ArrayList<>(curves.keySet());
        List<double[]> values = new ArrayList<>(curves.values());
        List<String> out = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            String label = names.get(i);
            for (int j = 0; j < i; j++) {
                if (same(values.get(i), values.get(j))) {
                    label += " (same as " + names.get(j) + ")";
                    break;
                }
            }
            out.add(label);
        }
        return out;
    }

    private static boolean same(double[] a, double[] b) {
        for (int k = 0; k < a.length; k++) {
            if (Math.abs(a[k] - b[k]) > SAME_CURVE * Math.max(1, Math.abs(b[k]))) {
                return false;
            }
        }
        return true;
    }

    /** A small marker of shape i (circle-ish diamond, square, triangle, cross, plus, bar) at (x, y). */
    private static void marker(Canvas c, int i, double x, double y, Color col) {
        double r = 4;
        switch (i % 6) {
            case 0 -> {
                c.line(x - r, y, x, y - r, col, 1.5f, null);
                c.line(x, y - r, x + r, y, col, 1.5f, null);
                c.line(x + r, y, x, y + r, col, 1.5f, null);
                c.line(x, y + r, x - r, y, col, 1.5f, null);
            }
            case 1 -> {
                c.line(x - r, y - r, x + r, y - r, col, 1.5f, null);
                c.line(x + r, y - r, x + r, y + r, col, 1.5f, null);
                c.line(x + r, y + r, x - r, y + r, col, 1.5f, null);
                c.line(x - r, y + r, x - r, y - r, col, 1.5f, null);
            }
            case 2 -> {
                c.line(x - r, y + r, x, y - r, col, 1.5f, null);
                c.line(x, y - r, x + r, y + r, col, 1.5f, null);
                c.line(x + r, y + r, x - r, y + r, col, 1.5f, null);
            }
            case 3 -> {
                c.line(x - r, y - r, x + r, y + r, col, 1.5f, null);
                c.line(x - r, y + r, x + r, y - r, col, 1.5f, null);
            }
            case 4 -> {
                c.line(x - r, y, x + r, y, col, 1.5f, null);
                c.line(x, y - r, x, y + r, col, 1.5f, null);
            }
            default -> c.line(x - r, y - r, x - r, y + r, col, 1.5f, null);
        }
    }

    private static double niceStep(double raw) {
        double p = Math.pow(10, Math.floor(Math.log10(raw)));
        for (double m : new double[] {1, 2, 2.5, 5, 10}) {
            if (m * p >= raw) {
                return m * p;
            }
        }
        return 10 * p;
    }

    static String tokens(long x) {
        if (x >= 1 << 20 && x % (1 << 20) == 0) {
            return (x >> 20) + "M";
        }
        return x >= 1024 && x % 1024 == 0 ? (x >> 10) + "k" : Long.toString(x);
    }

    private static final class PngCanvas implements Canvas {
        private final Graphics2D g;

        PngCanvas(Graphics2D g) {
            this.g = g;
        }

        @Override
        public void line(double x1, double y1, double x2, double y2, Color c, float width, float[] dash) {
            g.setColor(c);
            g.setStroke(dash != null ? new BasicStroke(width, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10, dash, 0)
                    : new BasicStroke(width, BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND));
            g.draw(new java.awt.geom.Line2D.Double(x1, y1, x2, y2));
        }

        @Override
        public void text(double x, double y, String s, int size, String anchor, Color c) {
            g.setColor(c);
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, size));
            int w = g.getFontMetrics().stringWidth(s);
            double dx = "middle".equals(anchor) ? -w / 2.0 : "end".equals(anchor) ? -w : 0;
            g.drawString(s, (float) (x + dx), (float) y);
        }
    }

    private static final class SvgCanvas implements Canvas {
        private final StringBuilder sb;

        SvgCanvas(StringBuilder sb) {
            this.sb = sb;
        }

        @Override
        public void line(double x1, double y1, double x2, double y2, Color c, float width, float[] dash) {
            sb.append(String.format(Locale.ROOT,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\"%s stroke-linecap=\"%s\"/>%n",
                    x1, y1, x2, y2, hex(c), width, dash == null ? "" : " stroke-dasharray=\"" + dashArray(dash) + "\"",
                    dash == null ? "round" : "butt"));
        }

        @Override
        public void text(double x, double y, String s, int size, String anchor, Color c) {
            sb.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"%s\" fill=\"%s\">%s</text>%n",
                    x, y, size, anchor, hex(c), escape(s)));
        }

        private static String dashArray(float[] dash) {
            StringBuilder b = new StringBuilder();
            for (float f : dash) {
                b.append(b.length() == 0 ? "" : " ").append(String.format(Locale.ROOT, "%.0f", f));
            }
            return b.toString();
        }

        private static String hex(Color c) {
            return String.format("#%02x%02x%02x", c.getRed(), c.getGreen(), c.getBlue());
        }

        private static String escape(String s) {
            return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
        }
    }

    /** Sequence lengths 2^lo .. 2^hi. */
    public static long[] powersOfTwo(int lo, int hi) {
        List<Long> out = new ArrayList<>();
        for (int e = lo; e <= hi; e++) {
            out.add(1L << e);
        }
        return out.stream().mapToLong(Long::longValue).toArray();
    }
}
