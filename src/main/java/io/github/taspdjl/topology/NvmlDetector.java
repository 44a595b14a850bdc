package io.github.taspdjl.topology;

import com.sun.jna.Library;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.IntByReference;
import com.sun.jna.ptr.PointerByReference;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Reads the GPU topology from NVML ({@code libnvidia-ml.so.1}) through JNA, and the NICs from sysfs
 * ({@code /sys/class/infiniband}). The native calls are kept thin: they only fill {@link NvmlFacts},
 * whose pure methods do the interpreting.
 */
final class NvmlDetector {

    private static final int SUCCESS = 0;
    /** NVML_NVLINK_MAX_LINKS in current NVML headers. */
    private static final int MAX_LINKS = 18;
    /** sizeof(nvmlPciInfo_t): char busIdLegacy[16], five unsigned ints, char busId[32]. */
    private static final int PCI_INFO_SIZE = 16 + 5 * 4 + 32;
    private static final int PCI_BUS_ID_OFFSET = 16 + 5 * 4;

    /** The NVML functions used; signatures from nvml.h. */
    interface Nvml extends Library {
        int nvmlInit_v2();

        int nvmlShutdown();

        int nvmlDeviceGetCount_v2(IntByReference count);

        int nvmlDeviceGetHandleByIndex_v2(int index, PointerByReference device);

        int nvmlDeviceGetName(Pointer device, byte[] name, int length);

        int nvmlDeviceGetPciInfo_v3(Pointer device, Pointer pciInfo);

        int nvmlDeviceGetMemoryInfo(Pointer device, Pointer memory);

        int nvmlDeviceGetNvLinkState(Pointer device, int link, IntByReference isActive);

        int nvmlDeviceGetNvLinkRemotePciInfo_v2(Pointer device, int link, Pointer pciInfo);

        int nvmlDeviceGetTopologyCommonAncestor(Pointer a, Pointer b, IntByReference level);
    }

    private NvmlDetector() {}

    /**
     * Reads the facts.
     *
     * @throws IllegalStateException with the reason when NVML is missing or fails
     */
    static NvmlFacts readFacts() {
        Nvml nvml;
        try {
            nvml = Native.load("nvidia-ml", Nvml.class);
        } catch (UnsatisfiedLinkError e) {
            throw new IllegalStateException("libnvidia-ml.so.1 not found");
        }
        check(nvml.nvmlInit_v2(), "nvmlInit_v2");
        try {
            IntByReference count = new IntByReference();
            check(nvml.nvmlDeviceGetCount_v2(count), "nvmlDeviceGetCount_v2");
            int n = count.getValue();
            if (n == 0) {
                throw new IllegalStateException("NVML reports no GPU");
            }
            Pointer[] handles = new Pointer[n];
            List<NvmlFacts.Gpu> gpus = new ArrayList<>();
            Memory pci = new Memory(PCI_INFO_SIZE);
            Memory mem = new Memory(24);
            for (int i = 0; i < n; i++) {
                PointerByReference h = new PointerByReference();
                check(nvml.nvmlDeviceGetHandleByIndex_v2(i, h), "nvmlDeviceGetHandleByIndex_v2");
                handles[i] = h.getValue();
                byte[] name = new byte[96];
                check(nvml.nvmlDeviceGetName(handles[i], name, name.length), "nvmlDeviceGetName");
                check(nvml.nvmlDeviceGetPciInfo_v3(handles[i], pci), "nvmlDeviceGetPciInfo_v3");
                String busId = pci.getString(PCI_BUS_ID_OFFSET);
                long total = nvml.nvmlDeviceGetMemoryInfo(handles[i], mem) == SUCCESS ? mem.getLong(0) : 0;
                List<String> remotes = new ArrayList<>();
                for (int link = 0; link < MAX_LINKS; link++) {
                    IntByReference active = new IntByReference();
                    if (nvml.nvmlDeviceGetNvLinkState(handles[i], link, active) != SUCCESS) {
                        continue; // link absent or NVLink unsupported
                    }
                    if (active.getValue() != 0 && nvml.nvmlDeviceGetNvLinkRemotePciInfo_v2(handles[i], link, pci) == SUCCESS) {
                        remotes.add(pci.getString(PCI_BUS_ID_OFFSET));
                    }
                }
                gpus.add(new NvmlFacts.Gpu(cString(name), busId, total, numaNode(busId), remotes));
            }
            int[][] level = new int[n][n];
            for (int i = 0; i < n; i++) {
                for (int j = i + 1; j < n; j++) {
                    IntByReference l = new IntByReference();
                    level[i][j] = nvml.nvmlDeviceGetTopologyCommonAncestor(handles[i], handles[j], l) == SUCCESS
                            ? l.getValue() : 50;
                    level[j][i] = level[i][j];
                }
            }
            return new NvmlFacts(gpus, level);
        } finally {
            nvml.nvmlShutdown();
        }
    }

    /** Detects the topology: NVML facts, NICs from sysfs. */
    static Topology detect(BandwidthTable table) {
        NvmlFacts facts = readFacts();
        List<String> gpuPaths = new ArrayList<>();
        for (NvmlFacts.Gpu g : facts.gpus()) {
            gpuPaths.add(sysfsPath(g.busId()));
        }
        return facts.toTopology(NvmlFacts.nicRails(sysfsNics(), gpuPaths), table);
    }

    private static void check(int rc, String call) {
        if (rc != SUCCESS) {
            throw new IllegalStateException(call + " returned NVML error " + rc);
        }
    }

    private static String cString(byte[] b) {
        int len = 0;
        while (len < b.length && b[len] != 0) {
            len++;
        }
        return new String(b, 0, len, StandardCharsets.UTF_8);
    }

    /** sysfs wants a 4-digit lower-case domain: 0000:18:00.0. */
    private static String sysfsBusId(String busId) {
        String n = NvmlFacts.normalize(busId);
        int colon = n.indexOf(':');
        return String.format("%04x", Long.parseLong(n.substring(0, colon), 16)) + n.substring(colon);
    }

    private static String sysfsPath(String busId) {
        try {
            return Path.of("/sys/bus/pci/devices", sysfsBusId(busId)).toRealPath().toString();
        } catch (IOException | RuntimeException e) {
            return "/unknown/" + busId;
        }
    }

    private static int numaNode(String busId) {
        try {
            return Integer.parseInt(Files.readString(Path.of("/sys/bus/pci/devices", sysfsBusId(busId), "numa_node")).strip());
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    private static Map<String, String> sysfsNics() {
        Map<String, String> sorted = new TreeMap<>();
        Path dir = Path.of("/sys/class/infiniband");
        if (!Files.isDirectory(dir)) {
            return sorted;
        }
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            for (Path p : s) {
                try {
                    sorted.put(p.getFileName().toString(), p.resolve("device").toRealPath().toString());
                } catch (IOException e) {
                    // a NIC without a PCI device (soft RoCE): no rail
                }
            }
        } catch (IOException e) {
            return sorted;
        }
        return new LinkedHashMap<>(sorted);
    }
}
