package io.github.taspdjl.topology;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads the matrix that {@code nvidia-smi topo -m} prints. Pure: text in, {@link Topology} out.
 *
 * <p>Accepted: the raw output (tab-separated, the header wrapped in ANSI underline codes) and copies
 * with the tabs expanded to spaces; GPU rows and columns, NIC rows and columns named {@code NIC#}
 * (with a "NIC Legend" giving their device names) or by their raw HCA names ({@code mlx5_0}, older
 * drivers); trailing CPU affinity, NUMA affinity and GPU NUMA ID columns, any of them empty or
 * {@code N/A}; the legend in its current or older wording ({@code SOC} is read as {@code SYS}).
 * Cells: {@code X} (self), {@code NV#}, {@code PIX}, {@code PXB}, {@code PHB}, {@code NODE},
 * {@code SYS}.
 *
 * <p>Anything else in the matrix, a missing or repeated row, or a matrix that is not symmetric is a
 * {@link TopologyParseException} naming the line.
 *
 * <p>NIC rails: a NIC's nearest GPU is the one at the best PCIe level; ties at PIX or PXB (GPU and
 * NIC under one switch) go to the GPU with fewer NICs, other ties leave the rail unknown.
 */
public final class NvidiaSmiTopoParser {

    private static final String WHAT = "nvidia-smi topo -m";
    private static final Pattern ANSI = Pattern.compile("\u001B\\[[0-9;]*[A-Za-z]");
    private static final Pattern GPU = Pattern.compile("GPU(\\d+)");
    private static final Pattern NV = Pattern.compile("NV(\\d+)");
    private static final Pattern NIC_LEGEND = Pattern.compile("\\s*(NIC\\d+)\\s*:\\s*(\\S+)\\s*");
    private static final Pattern INT = Pattern.compile("\\d+");

    private NvidiaSmiTopoParser() {}

    /** Parses with no GPU names known and the default bandwidth table. */
    public static Topology parse(String text) {
        return parse(text, List.of(), BandwidthTable.defaults());
    }

    /**
     * Parses the matrix.
     *
     * @param text the output of {@code nvidia-smi topo -m}
     * @param gpus names, bus ids and memory by GPU index (from {@code nvidia-smi --query-gpu}),
     *     possibly empty; GPUs not listed are named "GPU#" and count as unknown generation
     * @param table bandwidth figures
     * @throws TopologyParseException naming the line that could not be read
     */
    public static Topology parse(String text, List<GpuInfo> gpus, BandwidthTable table) {
        String[] lines = text.split("\r?\n", -1);
        List<String> columns = null;
        int headerLine = 0;
        // Rows by column name: tokens of the matrix part, the trailing tokens, line number.
        Map<String, String[]> cells = new LinkedHashMap<>();
        Map<String, List<String>> trailing = new HashMap<>();
        Map<String, Integer> rowLine = new HashMap<>();
        Map<String, String> nicLegend = new HashMap<>();
        boolean legend = false;
        for (int ln = 1; ln <= lines.length; ln++) {
            String raw = lines[ln - 1];
            String line = ANSI.matcher(raw).replaceAll("");
            String trimmed = line.strip();
            if (trimmed.isEmpty()) {
                continue;
            }
            if (trimmed.equals("Legend:") || trimmed.equals("NIC Legend:")) {
                legend = true;
                continue;
            }
            if (legend) {
                // Legend text is free-form; only the NIC names matter.
                Matcher m = NIC_LEGEND.matcher(line);
                if (m.matches()) {
                    nicLegend.put(m.group(1), m.group(2));
                }
                continue;
            }
            String[] tokens = trimmed.split("\\s+");
            if (columns == null) {
                columns = headerColumns(tokens);
                if (columns == null) {
                    throw new TopologyParseException(WHAT, ln, raw, "expected the header row (GPU0 GPU1 ...)");
                }
                headerLine = ln;
                continue;
            }
            String name = tokens[0];
            if (!columns.contains(name)) {
                throw new TopologyParseException(WHAT, ln, raw, "row '" + name + "' is not one of the columns " + columns);
            }
            if (cells.containsKey(name)) {
                throw new TopologyParseException(WHAT, ln, raw, "second row for " + name);
            }
            if (tokens.length - 1 < columns.size()) {
                throw new TopologyParseException(WHAT, ln, raw,
                        "has " + (tokens.length - 1) + " cells for " + columns.size() + " columns");
            }
            String[] row = new String[columns.size()];
            System.arraycopy(tokens, 1, row, 0, row.length);
            for (int c = 0; c < row.length; c++) {
                if (!validCell(row[c])) {
                    throw new TopologyParseException(WHAT, ln, raw, "unknown cell '" + row[c] + "' in column " + columns.get(c));
                }
                if (row[c].equals("X") != columns.get(c).equals(name)) {
                    throw new TopologyParseException(WHAT, ln, raw, "'X' must be exactly on the diagonal, column "
                            + columns.get(c) + " has '" + row[c] + "'");
                }
            }
            cells.put(name, row);
            List<String> rest = new ArrayList<>();
            for (int k = 1 + columns.size(); k < tokens.length; k++) {
                rest.add(tokens[k]);
            }
            trailing.put(name, rest);
            rowLine.put(name, ln);
        }
        if (columns == null) {
            throw new TopologyParseException(WHAT, 0, null, "no header row (GPU0 GPU1 ...) found");
        }
        List<Integer> gpuCols = new ArrayList<>();
        List<Integer> nicCols = new ArrayList<>();
        for (int c = 0; c < columns.size(); c++) {
            Matcher m = GPU.matcher(columns.get(c));
            if (m.matches()) {
                if (Integer.parseInt(m.group(1)) != gpuCols.size()) {
                    throw new TopologyParseException(WHAT, headerLine, lines[headerLine - 1],
                            "GPU columns are not GPU0, GPU1, ... in order: " + columns.get(c));
                }
                gpuCols.add(c);
            } else {
                nicCols.add(c);
            }
        }
        if (gpuCols.isEmpty()) {
            throw new TopologyParseException(WHAT, headerLine, lines[headerLine - 1], "no GPU columns");
        }
        for (int c : gpuCols) {
            if (!cells.containsKey(columns.get(c))) {
                throw new TopologyParseException(WHAT, 0, null, "no row for " + columns.get(c));
            }
        }
        int n = gpuCols.size();
        Map<Integer, GpuInfo> info = new HashMap<>();
        for (GpuInfo g : gpus) {
            info.put(g.index(), g);
        }
        List<Device> devices = new ArrayList<>();
        Connection[][] matrix = new Connection[n][n];
        for (int i = 0; i < n; i++) {
            String rowName = columns.get(gpuCols.get(i));
            String[] row = cells.get(rowName);
            GpuInfo g = info.get(i);
            devices.add(new Device(i, g != null && g.name() != null ? g.name() : "GPU" + i,
                    g == null ? null : g.pciBusId(), numa(trailing.get(rowName)), g == null ? 0 : g.memoryBytes(), 0));
            for (int j = 0; j < n; j++) {
                if (i != j) {
                    matrix[i][j] = connection(row[gpuCols.get(j)]);
                }
            }
        }
        for (int i = 0; i < n; i++) {
            for (int j = i + 1; j < n; j++) {
                if (!matrix[i][j].equals(matrix[j][i])) {
                    String rowName = columns.get(gpuCols.get(j));
                    int ln = rowLine.get(rowName);
                    throw new TopologyParseException(WHAT, ln, lines[ln - 1], "GPU" + j + "->GPU" + i + " is '"
                            + cells.get(rowName)[gpuCols.get(i)] + "' but GPU" + i + "->GPU" + j + " is '"
                            + cells.get(columns.get(gpuCols.get(i)))[gpuCols.get(j)] + "'");
                }
            }
        }
        int[][] distance = new int[nicCols.size()][n];
        for (int k = 0; k < nicCols.size(); k++) {
            for (int i = 0; i < n; i++) {
                String cell = cells.get(columns.get(gpuCols.get(i)))[nicCols.get(k)];
                if (cell.startsWith("NV")) {
                    // An NVLink-attached NIC (rare; Grace systems): nearest of all.
                    distance[k][i] = -1;
                } else {
                    distance[k][i] = level(cell).ordinal();
                }
            }
        }
        Integer[] rails = RailAssigner.assign(distance, PcieLevel.PXB.ordinal());
        List<Nic> nics = new ArrayList<>();
        for (int k = 0; k < nicCols.size(); k++) {
            String col = columns.get(nicCols.get(k));
            nics.add(new Nic(nicLegend.getOrDefault(col, col), 0, rails[k], 0));
        }
        return TopologyAssembler.assemble(devices, matrix, nics, table, "nvidia-smi");
    }

    /** The device columns of a header row, or null when the tokens are not a header. */
    private static List<String> headerColumns(String[] tokens) {
        List<String> cols = new ArrayList<>();
        for (int k = 0; k < tokens.length; k++) {
            String t = tokens[k];
            if (t.equals("CPU") || t.equals("NUMA") || (t.equals("GPU") && k + 1 < tokens.length && tokens[k + 1].equals("NUMA"))) {
                break;
            }
            cols.add(t);
        }
        if (cols.isEmpty() || !cols.get(0).equals("GPU0")) {
            return null;
        }
        return cols;
    }

    private static boolean validCell(String cell) {
        if (cell.equals("X")) {
            return true;
        }
        Matcher m = NV.matcher(cell);
        if (m.matches()) {
            int k = Integer.parseInt(m.group(1));
            return k >= 1;
        }
        try {
            level(cell);
            return true;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    private static PcieLevel level(String cell) {
        if (cell.equals("SOC")) {
            return PcieLevel.SYS; // older drivers' name for the same thing
        }
        return PcieLevel.valueOf(cell);
    }

    private static Connection connection(String cell) {
        Matcher m = NV.matcher(cell);
        if (m.matches()) {
            return Connection.nvlink(Integer.parseInt(m.group(1)));
        }
        return Connection.pcie(level(cell));
    }

    /**
     * NUMA node from the tokens after the matrix: [CPU affinity] [NUMA affinity] [GPU NUMA ID], any
     * of them possibly missing (an empty CPU affinity leaves no token). A CPU list has '-' or ',';
     * a lone number followed by another number or N/A is a one-CPU affinity.
     */
    private static int numa(List<String> rest) {
        if (rest == null || rest.isEmpty()) {
            return -1;
        }
        int k = 0;
        String first = rest.get(0);
        boolean cpuList = first.contains("-") || first.contains(",");
        if (cpuList || (rest.size() >= 2 && INT.matcher(first).matches()
                && (INT.matcher(rest.get(1)).matches() || rest.get(1).equals("N/A")))) {
            k = 1;
        }
        if (k < rest.size() && INT.matcher(rest.get(k)).matches()) {
            return Integer.parseInt(rest.get(k));
        }
        return -1;
    }

    /**
     * Reads {@code nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total
     * --format=csv,noheader,nounits} (memory in MiB).
     *
     * @throws TopologyParseException naming a line that does not have those four fields
     */
    public static List<GpuInfo> parseQueryGpu(String text) {
        List<GpuInfo> out = new ArrayList<>();
        String[] lines = text.split("\r?\n");
        for (int ln = 1; ln <= lines.length; ln++) {
            String line = lines[ln - 1];
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split(",");
            if (f.length != 4) {
                throw new TopologyParseException("nvidia-smi --query-gpu", ln, line,
                        "expected 4 fields: index, name, pci.bus_id, memory.total");
            }
            try {
                String mem = f[3].strip();
                long mib = mem.equals("[N/A]") || mem.equals("N/A") ? 0 : Long.parseLong(mem);
                out.add(new GpuInfo(Integer.parseInt(f[0].strip()), f[1].strip(), f[2].strip(), mib << 20));
            } catch (NumberFormatException e) {
                throw new TopologyParseException("nvidia-smi --query-gpu", ln, line, "index or memory is not a number");
            }
        }
        return out;
    }
}
