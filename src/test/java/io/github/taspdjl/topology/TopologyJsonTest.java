package io.github.taspdjl.topology;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.testng.annotations.Test;

public class TopologyJsonTest {

    @Test
    public void everyPresetSurvivesARoundTrip() {
        for (String name : TopologyPresets.names()) {
            Topology t = TopologyPresets.get(name);
            String json = TopologyJson.write(t);
            Topology back = TopologyJson.read(json, t.source(), BandwidthTable.defaults());
            assertEquals(back.devices(), t.devices(), name);
            assertEquals(back.links(), t.links(), name);
            assertEquals(back.nics(), t.nics(), name);
            assertEquals(back.fabric(), t.fabric(), name);
            assertEquals(TopologyJson.write(back), json, name);
        }
    }

    @Test
    public void writtenJsonHasTheDocumentedFields() {
        JsonObject o = JsonParser.parseString(TopologyJson.write(TopologyPresets.get("dgx1-v100"))).getAsJsonObject();
        assertEquals(o.get("deviceCount").getAsInt(), 8);
        assertEquals(o.get("fabric").getAsString(), "NVLINK_PARTIAL");
        JsonObject pcie = null;
        for (var e : o.getAsJsonArray("links")) {
            JsonObject l = e.getAsJsonObject();
            for (String f : new String[] {"from", "to", "kind", "count", "gbps", "pcieLevel"}) {
                assertTrue(l.has(f), f);
            }
            if (l.get("kind").getAsString().equals("PCIE")) {
                pcie = l;
            }
        }
        assertEquals(pcie.get("pcieLevel").getAsString(), "SYS");
        JsonObject nic = JsonParser.parseString(TopologyJson.write(TopologyPresets.get("h100-nvswitch-8")))
                .getAsJsonObject().getAsJsonArray("nics").get(3).getAsJsonObject();
        assertEquals(nic.get("name").getAsString(), "mlx5_3");
        assertEquals(nic.get("nearestDevice").getAsInt(), 3);
    }

    @Test
    public void handWrittenFileGetsEstimatesAndAClass() {
        String json = "{\"devices\": [{\"name\": \"NVIDIA H100 80GB HBM3\"}, {\"name\": \"NVIDIA H100 80GB HBM3\"}],\n"
                + " \"links\": [{\"from\": 0, \"to\": 1, \"kind\": \"nvlink\", \"count\": 4},\n"
                + "            {\"from\": 1, \"to\": 0, \"kind\": \"NVLINK\", \"count\": 4}]}";
        Topology t = TopologyJson.read(json, "json:test", BandwidthTable.defaults());
        assertEquals(t.fabric(), FabricClass.NVLINK_FULL_MESH);
        assertEquals(t.link(0, 1).orElseThrow().gbps(), 100.0);
        assertEquals(t.source(), "json:test");
    }

    @Test
    public void badJsonNamesTheLine() {
        String json = "{\n  \"devices\": [\n    {\"name\": \"a\"},\n    {\"name\" \"b\"}\n  ]\n}\n";
        TopologyParseException e = expectThrows(TopologyParseException.class,
                () -> TopologyJson.read(json, "json:x", BandwidthTable.defaults()));
        assertEquals(e.line(), 4);
        assertTrue(e.getMessage().contains("{\"name\" \"b\"}"), e.getMessage());
    }

    @Test
    public void badFieldsNameTheirPath() {
        String badKind = "{\"devices\": [{}, {}], \"links\": [{\"from\": 0, \"to\": 1, \"kind\": \"NVLNK\"}]}";
        TopologyParseException e = expectThrows(TopologyParseException.class,
                () -> TopologyJson.read(badKind, "json:x", BandwidthTable.defaults()));
        assertTrue(e.getMessage().contains("links[0].kind") && e.getMessage().contains("NVLNK"), e.getMessage());
        String noLevel = "{\"devices\": [{}, {}], \"links\": [{\"from\": 0, \"to\": 1, \"kind\": \"PCIE\"}]}";
        e = expectThrows(TopologyParseException.class, () -> TopologyJson.read(noLevel, "json:x", BandwidthTable.defaults()));
        assertTrue(e.getMessage().contains("pcieLevel"), e.getMessage());
        String outOfRange = "{\"devices\": [{}, {}], \"links\": [{\"from\": 0, \"to\": 2, \"kind\": \"NET\"}]}";
        e = expectThrows(TopologyParseException.class, () -> TopologyJson.read(outOfRange, "json:x", BandwidthTable.defaults()));
        assertTrue(e.getMessage().contains("links[0]"), e.getMessage());
        String count = "{\"deviceCount\": 3, \"devices\": [{}, {}]}";
        e = expectThrows(TopologyParseException.class, () -> TopologyJson.read(count, "json:x", BandwidthTable.defaults()));
        assertTrue(e.getMessage().contains("deviceCount"), e.getMessage());
    }
}
