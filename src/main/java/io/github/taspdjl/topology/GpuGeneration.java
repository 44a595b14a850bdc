package io.github.taspdjl.topology;

import java.util.Locale;

/**
 * GPU families whose interconnect figures differ. {@link BandwidthTable} keys its numbers by
 * generation; {@link #fromName(String)} recognises a product name as NVML, nvidia-smi, rocm-smi or
 * amd-smi print it.
 */
public enum GpuGeneration {
    /** Tesla P100 (SXM2): NVLink 1. */
    P100,
    /** Tesla V100 (SXM2/SXM3): NVLink 2. */
    V100,
    /** A100 (SXM4): NVLink 3. */
    A100,
    /** H100 (SXM5, NVL): NVLink 4. */
    H100,
    /** H200: NVLink 4, like H100. */
    H200,
    /** B200 / GB200: NVLink 5. */
    B200,
    /** AMD Instinct MI300X, MI300A and MI325X: xGMI (Infinity Fabric) links. */
    MI300X,
    /** Anything else, including "no name known": conservative defaults. */
    UNKNOWN;

    /**
     * The generation of a product name, for example "NVIDIA H100 80GB HBM3" -> {@link #H100} or
     * "AMD Instinct MI300X" -> {@link #MI300X}; {@link #UNKNOWN} when nothing matches or name is
     * null.
     */
    public static GpuGeneration fromName(String name) {
        if (name == null) {
            return UNKNOWN;
        }
        String n = name.toUpperCase(Locale.ROOT);
        // Order matters: "GH200" and "H200" both contain "H200", "GB200" contains "B200".
        if (n.contains("B200") || n.contains("B300")) {
            return B200;
        }
        if (n.contains("H200")) {
            return H200;
        }
        if (n.contains("H100") || n.contains("H800")) {
            return H100;
        }
        if (n.contains("A100") || n.contains("A800")) {
            return A100;
        }
        if (n.contains("V100")) {
            return V100;
        }
        if (n.contains("P100")) {
            return P100;
        }
        if (n.contains("MI300") || n.contains("MI325")) {
            return MI300X;
        }
        return UNKNOWN;
    }
}
