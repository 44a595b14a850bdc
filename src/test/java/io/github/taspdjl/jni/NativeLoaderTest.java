package io.github.taspdjl.jni;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import ai.djl.engine.Engine;
import java.nio.file.Files;
import java.nio.file.Path;
import org.testng.annotations.Test;

/** The loader picks the flavor from DJL's libtorch and explains what is missing. */
public class NativeLoaderTest {

    @Test
    public void loadsTheCpuFlavorForDjlsCpuLibtorch() {
        NativeLoader.LoadedLibrary lib = NativeLoader.load();
        assertEquals(lib.flavor(), "cpu");
        assertEquals(lib.libtorchVersion(), "2.7.1");
        assertTrue(Files.isRegularFile(lib.path()), lib.path().toString());
        assertTrue(lib.path().toString().endsWith("linux-x86_64/cpu/libtasp.so"), lib.path().toString());
    }

    @Test
    public void flavorSettingIsChecked() throws Exception {
        Path cpuOnly = Files.createTempDirectory("libtorch-cpu");
        Engine engine = Engine.getEngine("PyTorch");
        String old = System.getProperty("tasp.native.flavor");
        try {
            System.setProperty("tasp.native.flavor", "cuda");
            IllegalStateException e = expectThrows(IllegalStateException.class,
                    () -> NativeLoader.chooseFlavor(cpuOnly, engine));
            assertTrue(e.getMessage().contains("has no CUDA"), e.getMessage());
            System.setProperty("tasp.native.flavor", "tpu");
            IllegalArgumentException bad = expectThrows(IllegalArgumentException.class,
                    () -> NativeLoader.chooseFlavor(cpuOnly, engine));
            assertTrue(bad.getMessage().contains("'tpu'"), bad.getMessage());
            System.setProperty("tasp.native.flavor", "auto");
            assertEquals(NativeLoader.chooseFlavor(cpuOnly, engine), "cpu");
            Files.createFile(cpuOnly.resolve("libtorch_cuda.so"));
            assertEquals(NativeLoader.chooseFlavor(cpuOnly, engine), "cuda");
        } finally {
            if (old == null) {
                System.clearProperty("tasp.native.flavor");
            } else {
                System.setProperty("tasp.native.flavor", old);
            }
        }
    }

    @Test
    public void theJarCarriesTheNativeLibraries() {
        ClassLoader cl = NativeLoader.class.getClassLoader();
        assertTrue(cl.getResource("native/lib/linux-x86_64/cpu/libtasp.so") != null, "cpu flavor packed");
        boolean nvcc = System.getenv("PATH") != null
                && java.util.Arrays.stream(System.getenv("PATH").split(":"))
                        .anyMatch(d -> Files.isExecutable(Path.of(d, "nvcc")));
        if (nvcc || Files.isExecutable(Path.of("/usr/local/cuda/bin/nvcc"))) {
            assertTrue(cl.getResource("native/lib/linux-x86_64/cuda/libtasp.so") != null,
                    "nvcc is here, so the cuda flavor must be packed");
        }
    }
}
