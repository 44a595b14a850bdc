package io.github.taspdjl.plan;

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
 * no charting library is needed.
 */
public final class SpeedupChart {

    private static final int W = 820;
    private static final int H = 480;
    private static final int LEFT = 70;
    private static final int RIGHT = 200;
    private static final int TOP = 50;
    private static final int BOTTOM = 60;
    private static final Color[] COLORS = {new Color(0x1f77b4), new Color(0xd62728), new Color(0x2ca02c),
        new Color(0x9467bd), new Color(0xff7f0e), new Color(0x8c564b)};

    private SpeedupChart() {}

    /** Drawing primitives both formats implement. */
    private interface Canvas {
        void line(double x1, double y1, double x2, double y2, Color c, float width, boolean dashed);

        void text(double x, double y, String s, int size, String anchor, Color c);
    }

    /**
     * Writes the chart.
     *
     * @param file target; ".svg" gives SVG, ".png" PNG
     * @param title chart title
     * @param seqLens x values, ascending
     * @param curves series name -> speedup per sequence length
     * @throws IllegalArgumentException for another extension or no data
     */
    public static void write(Path file, String title, long[] seqLens, Map<String, double[]> curves) {
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
                draw(new SvgCanvas(sb), title, seqLens, curves);
                sb.append("</svg>\n");
                Files.writeString(file, sb.toString(), StandardCharsets.UTF_8);
            } else if (name.endsWith(".png")) {
                BufferedImage img = new BufferedImage(W, H, BufferedImage.TYPE_INT_RGB);
                Graphics2D g = img.createGraphics();
                g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
                g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
                g.setColor(Color.WHITE);
                g.fillRect(0, 0, W, H);
                draw(new PngCanvas(g), title, seqLens, curves);
                g.dispose();
                ImageIO.write(img, "png", file.toFile());
            } else {
                throw new IllegalArgumentException("chart file " + file + " must end in .png or .svg");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write chart " + file, e);
        }
    }

    private static void draw(Canvas c, String title, long[] xs, Map<String, double[]> curves) {
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
            c.line(LEFT, py.applyAsDouble(y), LEFT + plotW, py.applyAsDouble(y), new Color(0xdddddd), 1, false);
            c.text(LEFT - 8, py.applyAsDouble(y) + 4, String.format(Locale.ROOT, step < 1 ? "%.1f" : "%.0f", y), 11, "end",
                    Color.DARK_GRAY);
        }
        for (long x : xs) {
            c.line(px.applyAsDouble(x), TOP, px.applyAsDouble(x), TOP + plotH, new Color(0xeeeeee), 1, false);
            c.text(px.applyAsDouble(x), TOP + plotH + 18, tokens(x), 11, "middle", Color.DARK_GRAY);
        }
        c.line(LEFT, TOP, LEFT, TOP + plotH, Color.BLACK, 1, false);
        c.line(LEFT, TOP + plotH, LEFT + plotW, TOP + plotH, Color.BLACK, 1, false);
        c.line(LEFT, py.applyAsDouble(1), LEFT + plotW, py.applyAsDouble(1), Color.GRAY, 1, true);
        c.text(LEFT + plotW / 2, H - 18, "sequence length (tokens, log scale)", 12, "middle", Color.BLACK);
        c.text(18, TOP - 14, "speedup over ring", 12, "start", Color.BLACK);
        int i = 0;
        for (Map.Entry<String, double[]> e : curves.entrySet()) {
            Color col = COLORS[i % COLORS.length];
            double[] ys = e.getValue();
            for (int k = 1; k < xs.length; k++) {
                c.line(px.applyAsDouble(xs[k - 1]), py.applyAsDouble(ys[k - 1]), px.applyAsDouble(xs[k]),
                        py.applyAsDouble(ys[k]), col, 2.5f, false);
            }
            double ly = TOP + 10 + 22 * i;
            c.line(W - RIGHT + 20, ly, W - RIGHT + 45, ly, col, 2.5f, false);
            c.text(W - RIGHT + 52, ly + 4, e.getKey(), 12, "start", Color.BLACK);
            i++;
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
        public void line(double x1, double y1, double x2, double y2, Color c, float width, boolean dashed) {
            g.setColor(c);
            g.setStroke(dashed ? new BasicStroke(width, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10, new float[] {6, 4}, 0)
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
        public void line(double x1, double y1, double x2, double y2, Color c, float width, boolean dashed) {
            sb.append(String.format(Locale.ROOT,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\"%s stroke-linecap=\"round\"/>%n",
                    x1, y1, x2, y2, hex(c), width, dashed ? " stroke-dasharray=\"6 4\"" : ""));
        }

        @Override
        public void text(double x, double y, String s, int size, String anchor, Color c) {
            sb.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"%s\" fill=\"%s\">%s</text>%n",
                    x, y, size, anchor, hex(c), escape(s)));
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
