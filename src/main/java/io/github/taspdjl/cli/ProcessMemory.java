package io.github.taspdjl.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * This process's resident memory as Linux reports it in {@code /proc/self/status}: libtorch's tensors
 * live outside the Java heap, so the resident set is where they show. Every reading is -1 where
 * {@code /proc} is not there.
 */
final class ProcessMemory {

    private ProcessMemory() {}

    /** The peak resident set since the start or the last {@link #resetPeak} (VmHWM). */
    static long peakBytes() {
        return statusField("VmHWM:");
    }

    /** The resident set now (VmRSS). */
    static long residentBytes() {
        return statusField("VmRSS:");
    }

    /**
     * Sets the peak back to the current resident set (writing 5 to {@code /proc/self/clear_refs}), so
     * that the peak of one phase can be read; false where the kernel does not allow it.
     */
    static boolean resetPeak() {
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
            return true;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    private static long statusField(String name) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(name)) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }
}
