package io.github.taspdjl.topology;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads AMD's topology tools: {@code rocm-smi --showtopo} and {@code amd-smi topology}. Pure: text
 * in, {@link Topology} out.
 *
 * <p>Both print GPU x GPU tables; the "link type" table decides the kind of each pair ({@code XGMI}
 * or {@code PCIE}). For PCIe pairs the "hops" table gives the level as AMD documents it (1: below
 * one switch, PXB; 2: through one CPU socket, NODE; 3 or more: across sockets, SYS); without hops,
 * GPUs on the same NUMA node are NODE and others SYS. xGMI pairs count one link each: neither tool
 * prints a link count. Other tables (weight, access, NUMA bandwidth, ...) are checked for shape
 * only or skipped.
 *
 * <p>A table row that does not fit its header, an unknown link type, or a missing link type table
 * is a {@link TopologyParseException} naming the line.
 */
public final class AmdSmiTopoParser {

    private static final Pattern ROCM_SECTION = Pattern.compile("=+\\s*(.*?)\\s*=+");
    private static final Pattern AMD_SECTION = Pattern.compile("([A-Z][A-Z0-9 -]*) TABLE:");
    private static final Pattern ROCM_NUMA = Pattern.compile("GPU\\[(\\d+)\\]\\s*:\\s*\\(Topology\\) Numa Node:\\s*(-?\\d+)\\s*");
    private static final Pattern ROCM_NUMA_OTHER = Pattern.compile("GPU\\[(\\d+)\\]\\s*:.*");

    private AmdSmiTopoParser() {}

    /** A GPU x GPU table: column ids, rows by id, and the line of each row. */
    private static final class Table {
        final List<String> columns;
        final Map<String, String[]> rows = new LinkedHashMap<>();
        final Map<String, Integer> lines = new HashMap<>();
        final Map<String, String> text = new HashMap<>();

        Table(List<String> columns) {
            this.columns = columns;
        }

        String cell(int i, int j) {
            return rows.get(columns.get(i))[j];
        }
    }

    /** Parses {@code rocm-smi --showtopo} with no GPU names and the default table. */
    public static Topology parseRocmSmi(String text) {
        return parseRocmSmi(text, List.of(), BandwidthTable.defaults());
    }

    /**
     * Parses {@code rocm-smi --showtopo}.
     *
     * @param gpus names and memory by index (e.g. from {@code rocm-smi --showproductname}), may be empty
     * @throws TopologyParseException naming the line that could not be read
     */
    public static Topology parseRocmSmi(String text, List<GpuInfo> gpus, BandwidthTable table) {
        String what = "rocm-smi --showtopo";
        String[] lines = text.split("\r?\n", -1);
        Map<String, Table> tables = new HashMap<>();
        Map<Integer, Integer> numa = new HashMap<>();
        String section = null;
        Table current = null;
        for (int ln = 1; ln <= lines.length; ln++) {
            String raw = lines[ln - 1];
            String line = raw.strip();
            if (line.isEmpty()) {
                continue;
            }
            Matcher sm = ROCM_SECTION.matcher(line);
            if (sm.matches()) {
                section = sm.group(1).toLowerCase(java.util.Locale.ROOT);
                current = null;
                continue;
            }
            if (section == null) {
                throw new TopologyParseException(what, ln, raw, "expected a '=== ... ===' section title");
            }
            if (section.equals("numa nodes")) {
                Matcher m = ROCM_NUMA.matcher(line);
                if (m.matches()) {
                    numa.put(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)));
                } else if (!ROCM_NUMA_OTHER.matcher(line).matches()) {
                    throw new TopologyParseException(what, ln, raw, "expected 'GPU[i] : (Topology) Numa Node: n'");
                }
                continue;
            }
            String key = section.startsWith("weight") ? "weight" : section.startsWith("hops") ? "hops"
                    : section.startsWith("link type") ? "type" : null;
            if (key == null) {
                continue; // a section this parser does not use (product info, warnings, end of log)
            }
            current = tableLine(what, tables, key, current, raw, ln, "GPU\\d+");
        }
        Table type = tables.get("type");
        if (type == null) {
            throw new TopologyParseException(what, 0, null, "no 'Link Type between two GPUs' table");
        }
        return build(what, type, tables.get("hops"), numa, gpus, table, "rocm-smi", false);
    }

    /** Parses {@code amd-smi topology} with no GPU names and the default table. */
    public static Topology parseAmdSmi(String text) {
        return parseAmdSmi(text, List.of(), BandwidthTable.defaults());
    }

    /**
     * Parses {@code amd-smi topology}: tables headed "ACCESS TABLE:", "WEIGHT TABLE:", "HOPS TABLE:",
     * "LINK TYPE TABLE:", ... with GPUs named by PCI bus id (or GPU#).
     *
     * @throws TopologyParseException naming the line that could not be read
     */
    public static Topology parseAmdSmi(String text, List<GpuInfo> gpus, BandwidthTable table) {
        String what = "amd-smi topology";
        String[] lines = text.split("\r?\n", -1);
        Map<String, Table> tables = new HashMap<>();
        String section = null;
        Table current = null;
        for (int ln = 1; ln <= lines.length; ln++) {
            String raw = lines[ln - 1];
            String line = raw.strip();
            if (line.isEmpty()) {
                continue;
            }
            Matcher sm = AMD_SECTION.matcher(line);
            if (sm.matches()) {
                section = sm.group(1).strip();
                current = null;
                continue;
            }
            if (section == null) {
                throw new TopologyParseException(what, ln, raw, "expected a table title such as 'LINK TYPE TABLE:'");
            }
            String key = switch (section) {
                case "LINK TYPE" -> "type";
                case "HOPS" -> "hops";
                case "WEIGHT" -> "weight";
                case "ACCESS" -> "access";
                default -> null;
            };
            if (key == null) {
                continue;
            }
            current = tableLine(what, tables, key, current, raw, ln, "[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]|GPU\\d+");
        }
        Table type = tables.get("type");
        if (type == null) {
            throw new TopologyParseException(what, 0, null, "no 'LINK TYPE TABLE:'");
        }
        return build(what, type, tables.get("hops"), Map.of(), gpus, table, "amd-smi", true);
    }

    /** Adds one line to the table of this section: its header, or a row. */
    private static Table tableLine(String what, Map<String, Table> tables, String key, Table current, String raw, int ln,
            String idPattern) {
        String[] tokens = raw.strip().split("\\s+");
        if (current == null) {
            for (String t : tokens) {
                if (!t.matches(idPattern)) {
                    throw new TopologyParseException(what, ln, raw, "expected a header of GPU ids, got '" + t + "'");
                }
            }
            if (tables.containsKey(key)) {
                throw new TopologyParseException(what, ln, raw, "second " + key + " table");
            }
            Table t = new Table(List.of(tokens));
            tables.put(key, t);
            return t;
        }
        String id = tokens[0];
        if (!current.columns.contains(id)) {
            throw new TopologyParseException(what, ln, raw, "row '" + id + "' is not one of the columns " + current.columns);
        }
        if (tokens.length - 1 != current.columns.size()) {
            throw new TopologyParseException(what, ln, raw, "has " + (tokens.length - 1) + " cells for "
                    + current.columns.size() + " columns");
        }
        if (current.rows.containsKey(id)) {
            throw new TopologyParseException(what, ln, raw, "second row for " + id);
        }
        String[] cells = new String[tokens.length - 1];
        System.arraycopy(tokens, 1, cells, 0, cells.length);
        current.rows.put(id, cells);
        current.lines.put(id, ln);
        current.text.put(id, raw);
        return current;
    }

    private static Topology build(String what, Table type, Table hops, Map<Integer, Integer> numa, List<GpuInfo> gpus,
            BandwidthTable bw, String source, boolean idsAreBusIds) {
        int n = type.columns.size();
        for (String c : type.columns) {
            if (!type.rows.containsKey(c)) {
                throw new TopologyParseException(what, 0, null, "link type table has no row for " + c);
            }
        }
        if (hops != null && !hops.columns.equals(type.columns)) {
            throw new TopologyParseException(what, 0, null, "hops table columns " + hops.columns
                    + " differ from link type columns " + type.columns);
        }
        Map<Integer, GpuInfo> info = new HashMap<>();
        for (GpuInfo g : gpus) {
            info.put(g.index(), g);
        }
        List<Device> devices = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            GpuInfo g = info.get(i);
            String bus = idsAreBusIds && !type.columns.get(i).startsWith("GPU") ? type.columns.get(i)
                    : g == null ? null : g.pciBusId();
            devices.add(new Device(i, g != null && g.name() != null ? g.name() : "GPU" + i, bus,
                    numa.getOrDefault(i, -1), g == null ? 0 : g.memoryBytes(), 0));
        }
        Connection[][] cells = new Connection[n][n];
        for (int i = 0; i < n; i++) {
            String rowId = type.columns.get(i);
            int ln = type.lines.get(rowId);
            for (int j = 0; j < n; j++) {
                String c = type.cell(i, j).toUpperCase(java.util.Locale.ROOT);
                if (i == j) {
                    if (!c.equals("0") && !c.equals("SELF") && !c.equals("X") && !c.equals("N/A")) {
                        throw new TopologyParseException(what, ln, type.text.get(rowId), "diagonal cell of " + rowId + " is '" + c + "'");
                    }
                    continue;
                }
                cells[i][j] = switch (c) {
                    case "XGMI" -> Connection.xgmi(1);
                    case "PCIE" -> Connection.pcie(pcieLevel(what, hops, numa, i, j));
                    default -> throw new TopologyParseException(what, ln, type.text.get(rowId),
                            "unknown link type '" + type.cell(i, j) + "' from " + rowId + " to " + type.columns.get(j));
                };
            }
        }
        for (int i = 0; i < n; i++) {
            for (int j = i + 1; j < n; j++) {
                if (!cells[i][j].equals(cells[j][i])) {
                    int ln = type.lines.get(type.columns.get(j));
                    throw new TopologyParseException(what, ln, type.text.get(type.columns.get(j)), type.columns.get(j) + "->" + type.columns.get(i)
                            + " is " + cells[j][i] + " but the reverse is " + cells[i][j]);
                }
            }
        }
        return TopologyAssembler.assemble(devices, cells, List.of(), bw, source);
    }

    private static PcieLevel pcieLevel(String what, Table hops, Map<Integer, Integer> numa, int i, int j) {
        if (hops != null) {
            String h = hops.cell(i, j);
            int k;
            try {
                k = Integer.parseInt(h);
            } catch (NumberFormatException e) {
                throw new TopologyParseException(what, hops.lines.get(hops.columns.get(i)), hops.text.get(hops.columns.get(i)),
                        "hops cell '" + h + "' is not a number");
            }
            return k <= 1 ? PcieLevel.PXB : k == 2 ? PcieLevel.NODE : PcieLevel.SYS;
        }
        Integer a = numa.get(i);
        Integer b = numa.get(j);
        return a != null && a.equals(b) ? PcieLevel.NODE : PcieLevel.SYS;
    }
}
