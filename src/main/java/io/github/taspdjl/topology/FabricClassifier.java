package io.github.taspdjl.topology;

import java.util.List;

/**
 * Decides the {@link FabricClass} of a set of devices and links. Rules, first match wins:
 *
 * <ol>
 *   <li>no devices, or only virtual CPU ranks (name "cpu"): {@code NONE};
 *   <li>devices on more than one node: {@code MIXED};
 *   <li>one device: {@code SINGLE};
 *   <li>every pair NVSWITCH: {@code NVSWITCH}; every pair NVLINK: {@code NVLINK_FULL_MESH}; every
 *       pair XGMI: {@code XGMI_FULL_MESH};
 *   <li>NVLink and xGMI together, or a switch that does not reach every pair: {@code MIXED};
 *   <li>some pairs NVLINK: {@code NVLINK_PARTIAL}; some pairs XGMI: {@code XGMI_PARTIAL};
 *   <li>every pair PCIE: {@code PCIE};
 *   <li>anything else (pairs without any link, host memory next to GPUs): {@code MIXED}.
 * </ol>
 *
 * A pair's kind is the kind of the link from the lower to the higher index.
 */
public final class FabricClassifier {

    private FabricClassifier() {}

    /** The fabric class of these devices and links (rules in the class comment). */
    public static FabricClass classify(List<Device> devices, List<Link> links) {
        int n = devices.size();
        if (n == 0 || devices.stream().allMatch(d -> "cpu".equals(d.name()))) {
            return FabricClass.NONE;
        }
        if (devices.stream().mapToInt(Device::node).distinct().count() > 1) {
            return FabricClass.MIXED;
        }
        if (n == 1) {
            return FabricClass.SINGLE;
        }
        LinkKind[][] kind = new LinkKind[n][n];
        for (Link l : links) {
            kind[l.from()][l.to()] = l.kind();
        }
        int pairs = n * (n - 1) / 2;
        int nvswitch = 0, nvlink = 0, xgmi = 0, pcie = 0;
        for (int i = 0; i < n; i++) {
            for (int j = i + 1; j < n; j++) {
                LinkKind k = kind[i][j];
                if (k == null) {
                    continue;
                }
                switch (k) {
                    case NVSWITCH -> nvswitch++;
                    case NVLINK -> nvlink++;
                    case XGMI -> xgmi++;
                    case PCIE -> pcie++;
                    default -> { }
                }
            }
        }
        if (nvswitch == pairs) {
            return FabricClass.NVSWITCH;
        }
        if (nvlink == pairs) {
            return FabricClass.NVLINK_FULL_MESH;
        }
        if (xgmi == pairs) {
            return FabricClass.XGMI_FULL_MESH;
        }
        if (nvswitch > 0 || (nvlink > 0 && xgmi > 0)) {
            return FabricClass.MIXED;
        }
        if (nvlink > 0) {
            return FabricClass.NVLINK_PARTIAL;
        }
        if (xgmi > 0) {
            return FabricClass.XGMI_PARTIAL;
        }
        if (pcie == pairs) {
            return FabricClass.PCIE;
        }
        return FabricClass.MIXED;
    }
}
