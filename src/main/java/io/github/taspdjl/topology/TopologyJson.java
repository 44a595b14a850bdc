package io.github.taspdjl.topology;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import java.io.IOException;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Writes a {@link Topology} as JSON and reads it back (schema in docs/TOPOLOGY.md). What {@link
 * #write} produces, {@link #read} accepts. Hand-written files may leave out {@code gbps} (estimated
 * from the {@link BandwidthTable} by device names), {@code count} (1), {@code fabric} (classified),
 * {@code deviceCount}, {@code nodeCount}, {@code nics} and the optional device fields.
 */
public final class TopologyJson {

    /** Schema version written to and accepted from {@code "schema"}. */
    public static final int SCHEMA = 1;

    private static final Gson GSON = new GsonBuilder().setPrettyPrinting().serializeNulls().create();
    private static final Pattern GSON_LINE = Pattern.compile("line (\\d+) column");

    private TopologyJson() {}

    /** The topology as pretty-printed JSON. */
    public static String write(Topology t) {
        JsonObject o = new JsonObject();
        o.addProperty("schema", SCHEMA);
        o.addProperty("source", t.source());
        o.addProperty("fabric", t.fabric().name());
        o.addProperty("deviceCount", t.deviceCount());
        o.addProperty("nodeCount", t.nodeCount());
        JsonArray devices = new JsonArray();
        for (Device d : t.devices()) {
            JsonObject j = new JsonObject();
            j.addProperty("index", d.index());
            j.addProperty("name", d.name());
            j.addProperty("pciBusId", d.pciBusId());
            j.addProperty("numaNode", d.numaNode());
            j.addProperty("memoryBytes", d.memoryBytes());
            j.addProperty("node", d.node());
            j.addProperty("egressGbps", t.egressGbps(d.index()));
            devices.add(j);
        }
        o.add("devices", devices);
        JsonArray links = new JsonArray();
        for (Link l : t.links()) {
            JsonObject j = new JsonObject();
            j.addProperty("from", l.from());
            j.addProperty("to", l.to());
            j.addProperty("kind", l.kind().name());
            j.addProperty("count", l.count());
            j.addProperty("gbps", l.gbps());
            j.add("pcieLevel", l.pcieLevel() == null ? JsonNull.INSTANCE : new JsonPrimitive(l.pcieLevel().name()));
            links.add(j);
        }
        o.add("links", links);
        JsonArray nics = new JsonArray();
        for (Nic n : t.nics()) {
            JsonObject j = new JsonObject();
            j.addProperty("name", n.name());
            j.addProperty("node", n.node());
            j.addProperty("nearestDevice", n.nearestDevice());
            j.addProperty("gbps", n.gbps());
            nics.add(j);
        }
        o.add("nics", nics);
        return GSON.toJson(o) + "\n";
    }

    /** Reads a topology file; its source becomes {@code json:PATH}. */
    public static Topology read(Path file, BandwidthTable table) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read topology file " + file + ": " + e.getMessage(), e);
        }
        return read(text, "json:" + file, table);
    }

    /**
     * Reads topology JSON.
     *
     * @param text the JSON
     * @param source the source to record
     * @param table estimates for links without {@code gbps}
     * @throws TopologyParseException for bad JSON (naming the line) or a bad field (naming its path)
     */
    public static Topology read(String text, String source, BandwidthTable table) {
        String what = "topology JSON " + source;
        JsonElement root;
        try {
            JsonReader reader = new JsonReader(new StringReader(text));
            reader.setStrictness(Strictness.STRICT);
            root = JsonParser.parseReader(reader);
            if (reader.peek() != com.google.gson.stream.JsonToken.END_DOCUMENT) {
                throw new JsonParseException("text after the JSON document at line " + lineOf(reader) + " column");
            }
        } catch (JsonParseException | IOException | IllegalStateException e) {
            String msg = e.getMessage() == null ? e.toString() : e.getMessage();
            Matcher m = GSON_LINE.matcher(msg);
            int line = m.find() ? Integer.parseInt(m.group(1)) : 0;
            String[] lines = text.split("\r?\n", -1);
            throw new TopologyParseException(what, line, line > 0 && line <= lines.length ? lines[line - 1] : null,
                    "not valid JSON: " + firstLine(msg));
        }
        if (!root.isJsonObject()) {
            throw new TopologyParseException(what, 0, null, "the top level must be an object");
        }
        JsonObject o = root.getAsJsonObject();
        if (o.has("schema") && intField(what, o, "schema", "schema") != SCHEMA) {
            throw new TopologyParseException(what, 0, null, "schema " + o.get("schema") + " is not " + SCHEMA);
        }
        JsonArray jd = array(what, o, "devices", true);
        List<Device> devices = new ArrayList<>();
        for (int i = 0; i < jd.size(); i++) {
            String path = "devices[" + i + "]";
            JsonObject d = object(what, jd.get(i), path);
            int index = d.has("index") ? intField(what, d, "index", path) : i;
            if (index != i) {
                throw new TopologyParseException(what, 0, null, path + ".index is " + index + ", expected " + i);
            }
            devices.add(new Device(i, stringField(what, d, "name", path, "GPU" + i), stringField(what, d, "pciBusId", path, null),
                    d.has("numaNode") ? intField(what, d, "numaNode", path) : -1,
                    d.has("memoryBytes") ? longField(what, d, "memoryBytes", path) : 0,
                    d.has("node") ? intField(what, d, "node", path) : 0));
        }
        if (o.has("deviceCount") && intField(what, o, "deviceCount", "deviceCount") != devices.size()) {
            throw new TopologyParseException(what, 0, null, "deviceCount " + o.get("deviceCount") + " but "
                    + devices.size() + " devices listed");
        }
        int n = devices.size();
        List<Link> links = new ArrayList<>();
        JsonArray jl = array(what, o, "links", false);
        for (int i = 0; jl != null && i < jl.size(); i++) {
            String path = "links[" + i + "]";
            JsonObject l = object(what, jl.get(i), path);
            int from = intField(what, l, "from", path);
            int to = intField(what, l, "to", path);
            if (from < 0 || from >= n || to < 0 || to >= n || from == to) {
                throw new TopologyParseException(what, 0, null, path + " joins " + from + " and " + to
                        + ", not two different devices of 0.." + (n - 1));
            }
            LinkKind kind = enumField(what, l, "kind", path, LinkKind.class, true);
            int count = l.has("count") ? intField(what, l, "count", path) : 1;
            if (count < 1) {
                throw new TopologyParseException(what, 0, null, path + ".count must be at least 1, got " + count);
            }
            PcieLevel level = enumField(what, l, "pcieLevel", path, PcieLevel.class, false);
            if ((kind == LinkKind.PCIE) != (level != null)) {
                throw new TopologyParseException(what, 0, null, path + ": pcieLevel is required for PCIE links and only for them");
            }
            double gbps = l.has("gbps") && !l.get("gbps").isJsonNull()
                    ? doubleField(what, l, "gbps", path)
                    : table.gbps(kind, count, TopologyAssembler.generation(devices.get(from)),
                            TopologyAssembler.generation(devices.get(to)));
            if (!(gbps > 0)) {
                throw new TopologyParseException(what, 0, null, path + ".gbps must be positive, got " + gbps);
            }
            links.add(new Link(from, to, kind, count, gbps, level));
        }
        List<Nic> nics = new ArrayList<>();
        JsonArray jn = array(what, o, "nics", false);
        for (int i = 0; jn != null && i < jn.size(); i++) {
            String path = "nics[" + i + "]";
            JsonObject j = object(what, jn.get(i), path);
            String name = stringField(what, j, "name", path, null);
            if (name == null) {
                throw new TopologyParseException(what, 0, null, path + ".name is missing");
            }
            Integer nearest = j.has("nearestDevice") && !j.get("nearestDevice").isJsonNull()
                    ? intField(what, j, "nearestDevice", path) : null;
            if (nearest != null && (nearest < 0 || nearest >= n)) {
                throw new TopologyParseException(what, 0, null, path + ".nearestDevice " + nearest + " is not a device");
            }
            nics.add(new Nic(name, j.has("node") ? intField(what, j, "node", path) : 0, nearest,
                    j.has("gbps") ? doubleField(what, j, "gbps", path) : 0));
        }
        FabricClass fabric = enumField(what, o, "fabric", "fabric", FabricClass.class, false);
        try {
            return fabric == null ? Topology.of(devices, links, nics, source) : new Topology(devices, links, nics, fabric, source);
        } catch (IllegalArgumentException e) {
            throw new TopologyParseException(what, 0, null, e.getMessage());
        }
    }

    private static int lineOf(JsonReader reader) {
        Matcher m = GSON_LINE.matcher(reader.toString());
        return m.find() ? Integer.parseInt(m.group(1)) : 0;
    }

    private static JsonArray array(String what, JsonObject o, String key, boolean required) {
        JsonElement e = o.get(key);
        if (e == null || e.isJsonNull()) {
            if (required) {
                throw new TopologyParseException(what, 0, null, "'" + key + "' is missing");
            }
            return null;
        }
        if (!e.isJsonArray()) {
            throw new TopologyParseException(what, 0, null, "'" + key + "' must be an array, got " + e);
        }
        return e.getAsJsonArray();
    }

    private static JsonObject object(String what, JsonElement e, String path) {
        if (!e.isJsonObject()) {
            throw new TopologyParseException(what, 0, null, path + " must be an object, got " + e);
        }
        return e.getAsJsonObject();
    }

    private static JsonPrimitive number(String what, JsonObject o, String key, String path) {
        JsonElement e = o.get(key);
        if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
            throw new TopologyParseException(what, 0, null, path + "." + key + " must be a number, got " + e);
        }
        return e.getAsJsonPrimitive();
    }

    private static int intField(String what, JsonObject o, String key, String path) {
        JsonPrimitive p = number(what, o, key, path);
        double v = p.getAsDouble();
        if (v != Math.rint(v) || Math.abs(v) > Integer.MAX_VALUE) {
            throw new TopologyParseException(what, 0, null, path + "." + key + " must be an integer, got " + p);
        }
        return (int) v;
    }

    private static long longField(String what, JsonObject o, String key, String path) {
        JsonPrimitive p = number(what, o, key, path);
        try {
            return p.getAsBigDecimal().longValueExact();
        } catch (ArithmeticException e) {
            throw new TopologyParseException(what, 0, null, path + "." + key + " must be an integer, got " + p);
        }
    }

    private static double doubleField(String what, JsonObject o, String key, String path) {
        return number(what, o, key, path).getAsDouble();
    }

    private static String stringField(String what, JsonObject o, String key, String path, String dflt) {
        JsonElement e = o.get(key);
        if (e == null || e.isJsonNull()) {
            return dflt;
        }
        if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
            throw new TopologyParseException(what, 0, null, path + "." + key + " must be a string, got " + e);
        }
        return e.getAsString();
    }

    private static <E extends Enum<E>> E enumField(String what, JsonObject o, String key, String path, Class<E> type,
            boolean required) {
        String s = stringField(what, o, key, path, null);
        if (s == null) {
            if (required) {
                throw new TopologyParseException(what, 0, null, path + "." + key + " is missing");
            }
            return null;
        }
        try {
            return Enum.valueOf(type, s.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new TopologyParseException(what, 0, null, path + "." + key + " '" + s + "' is not one of "
                    + java.util.Arrays.toString(type.getEnumConstants()));
        }
    }

    /** Gson appends a troubleshooting link on a second line; the CLI prints one line per error. */
    private static String firstLine(String msg) {
        int nl = msg.indexOf('\n');
        return (nl < 0 ? msg : msg.substring(0, nl)).strip();
    }
}
