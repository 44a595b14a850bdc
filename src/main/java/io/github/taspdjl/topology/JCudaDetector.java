package io.github.taspdjl.topology;

import java.util.ArrayList;
import java.util.List;

/**
 * CUDA driver peer queries through JCuda: names, memory, PCI ids and whether each pair has peer
 * access. The driver does not say which link a pair uses, so this source is a last resort: pairs
 * with peer access become PCIe PHB, pairs without PCIe SYS. The JCuda calls are thin; {@link
 * #interpret} is pure.
 */
final class JCudaDetector {

    private JCudaDetector() {}

    /**
     * @throws IllegalStateException with the reason when JCuda, its native library or the driver is
     *     missing
     */
    static Topology detect(BandwidthTable table) {
        try {
            return query(table);
        } catch (LinkageError e) {
            throw new IllegalStateException("JCuda native library or CUDA driver not loadable: " + e.getMessage());
        }
    }

    private static Topology query(BandwidthTable table) {
        jcuda.driver.JCudaDriver.setExceptionsEnabled(false);
        check(jcuda.driver.JCudaDriver.cuInit(0), "cuInit");
        int[] count = new int[1];
        check(jcuda.driver.JCudaDriver.cuDeviceGetCount(count), "cuDeviceGetCount");
        int n = count[0];
        if (n == 0) {
            throw new IllegalStateException("CUDA reports no device");
        }
        jcuda.driver.CUdevice[] dev = new jcuda.driver.CUdevice[n];
        List<GpuInfo> gpus = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            dev[i] = new jcuda.driver.CUdevice();
            check(jcuda.driver.JCudaDriver.cuDeviceGet(dev[i], i), "cuDeviceGet");
            byte[] name = new byte[256];
            jcuda.driver.JCudaDriver.cuDeviceGetName(name, name.length, dev[i]);
            long[] mem = new long[1];
            jcuda.driver.JCudaDriver.cuDeviceTotalMem(mem, dev[i]);
            String[] bus = new String[1];
            jcuda.driver.JCudaDriver.cuDeviceGetPCIBusId(bus, 32, dev[i]);
            int len = 0;
            while (len < name.length && name[len] != 0) {
                len++;
            }
            gpus.add(new GpuInfo(i, new String(name, 0, len, java.nio.charset.StandardCharsets.UTF_8), bus[0], mem[0]));
        }
        boolean[][] access = new boolean[n][n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                if (i != j) {
                    int[] v = new int[1];
                    int rc = jcuda.driver.JCudaDriver.cuDeviceGetP2PAttribute(v,
                            jcuda.driver.CUdevice_P2PAttribute.CU_DEVICE_P2P_ATTRIBUTE_ACCESS_SUPPORTED, dev[i], dev[j]);
                    access[i][j] = rc == 0 && v[0] != 0;
                }
            }
        }
        return interpret(gpus, access, table);
    }

    /**
     * The topology from device facts and peer access: PCIe PHB where both directions have peer
     * access, SYS elsewhere (staged through host memory).
     */
    static Topology interpret(List<GpuInfo> gpus, boolean[][] access, BandwidthTable table) {
        int n = gpus.size();
        List<Device> devices = new ArrayList<>();
        Connection[][] cells = new Connection[n][n];
        for (int i = 0; i < n; i++) {
            GpuInfo g = gpus.get(i);
            devices.add(new Device(i, g.name(), g.pciBusId(), -1, g.memoryBytes(), 0));
            for (int j = 0; j < n; j++) {
                if (i != j) {
                    cells[i][j] = Connection.pcie(access[i][j] && access[j][i] ? PcieLevel.PHB : PcieLevel.SYS);
                }
            }
        }
        return TopologyAssembler.assemble(devices, cells, List.of(), table, "jcuda");
    }

    private static void check(int rc, String call) {
        if (rc != 0) {
            throw new IllegalStateException(call + " returned " + jcuda.driver.CUresult.stringFor(rc));
        }
    }
}
