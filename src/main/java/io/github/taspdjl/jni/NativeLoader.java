package io.github.taspdjl.jni;

import ai.djl.engine.Engine;
import ai.djl.pytorch.jni.LibUtils;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Loads {@code libtasp.so} into the process after DJL's PyTorch engine has loaded libtorch, the way
 * DJL loads its own JNI library: the library for this platform and flavor is packed in the jar
 * under {@code native/lib/<platform>/<flavor>/libtasp.so}, extracted once to a cache folder, and
 * loaded with {@link System#load}.
 *
 * <p>Settings (system property, else environment variable):
 *
 * <ul>
 *   <li>{@code tasp.native.library} / {@code TASP_NATIVE_LIBRARY}: path of a libtasp.so built
 *       elsewhere; skips extraction.
 *   <li>{@code tasp.native.flavor} / {@code TASP_NATIVE_FLAVOR}: {@code auto} (default: {@code
 *       cuda} when DJL's libtorch has CUDA, else {@code cpu}), {@code cpu} or {@code cuda}.
 *   <li>{@code tasp.cache.dir} / {@code TASP_CACHE_DIR}: where the library is extracted (default
 *       {@code ~/.tasp/cache}).
 * </ul>
 */
public final class NativeLoader {

    private static final Logger logger = LoggerFactory.getLogger(NativeLoader.class);
    private static final String LIBRARY_FILE = "libtasp.so";

    private static volatile LoadedLibrary loaded;

    private NativeLoader() {}

    /** What was loaded, for {@code tasp version} and logs. */
    public record LoadedLibrary(
            String flavor, String nativeVersion, Path path, String libtorchVersion, Path libtorchDir) {}

    /** Loads and initializes the native library once; later calls return the same result. */
    public static LoadedLibrary load() {
        LoadedLibrary l = loaded;
        if (l != null) {
            return l;
        }
        synchronized (NativeLoader.class) {
            if (loaded == null) {
                loaded = doLoad();
            }
            return loaded;
        }
    }

    private static LoadedLibrary doLoad() {
        Engine engine;
        try {
            engine = Engine.getEngine("PyTorch");
        } catch (RuntimeException e) {
            throw new IllegalStateException(
                    "tasp needs DJL's PyTorch engine, which did not load: " + e.getMessage()
                            + ". Put ai.djl.pytorch:pytorch-engine on the classpath, with pytorch-jni and "
                            + "pytorch-native-cpu (or let DJL download libtorch when online).",
                    e);
        }
        String libtorchVersion = LibUtils.getVersion();
        Path libtorchDir = Paths.get(LibUtils.getLibtorchPath()).toAbsolutePath();
        warnIfFlavorIgnored(libtorchDir);
        String flavor = chooseFlavor(libtorchDir, engine);
        Path library = locateLibrary(flavor);
        try {
            System.load(library.toString());
        } catch (UnsatisfiedLinkError e) {
            throw new IllegalStateException("could not load the tasp native library " + library + ": " + e.getMessage(), e);
        }
        try {
            TaspLibrary.init(libtorchDir.toString());
        } catch (TaspNativeException e) {
            throw new TaspNativeException(
                    e.code(), e.getMessage() + " (libtorch " + libtorchVersion + " in " + libtorchDir + ")");
        }
        LoadedLibrary result = new LoadedLibrary(flavor, TaspLibrary.version(), library, libtorchVersion, libtorchDir);
        logger.info("Loaded tasp native library {} ({} flavor) for libtorch {}", library, flavor, libtorchVersion);
        return result;
    }

    /**
     * DJL takes the CPU libtorch from the classpath when pytorch-native-cpu is there, whatever
     * PYTORCH_FLAVOR says; say so, with the fix, rather than run silently on the CPU.
     */
    private static void warnIfFlavorIgnored(Path libtorchDir) {
        String asked = System.getProperty("PYTORCH_FLAVOR", System.getenv("PYTORCH_FLAVOR"));
        if (asked != null && asked.strip().toLowerCase(Locale.ROOT).startsWith("cu")
                && !Files.exists(libtorchDir.resolve("libtorch_cuda.so"))) {
            logger.warn("PYTORCH_FLAVOR={} was not applied: DJL loaded the CPU libtorch in {}, most likely from "
                    + "ai.djl.pytorch:pytorch-native-cpu on the classpath. Exclude that artifact from the tasp-djl "
                    + "dependency (README, \"Add it to your project\") and DJL downloads the {} libtorch.",
                    asked, libtorchDir, asked);
        }
    }

    static String chooseFlavor(Path libtorchDir, Engine engine) {
        String requested = setting("tasp.native.flavor", "TASP_NATIVE_FLAVOR", "auto").toLowerCase(Locale.ROOT);
        boolean cudaTorch = Files.exists(libtorchDir.resolve("libtorch_cuda.so"));
        switch (requested) {
            case "auto":
                return cudaTorch ? "cuda" : "cpu";
            case "cpu":
                return "cpu";
            case "cuda":
                if (!cudaTorch) {
                    throw new IllegalStateException(
                            "tasp.native.flavor=cuda, but DJL's libtorch in " + libtorchDir + " has no CUDA ("
                                    + engine.getEngineName() + " " + engine.getVersion()
                                    + "); set PYTORCH_FLAVOR to a CUDA flavor for DJL");
                }
                return "cuda";
            default:
                throw new IllegalArgumentException(
                        "tasp.native.flavor must be auto, cpu or cuda, got '" + requested + "'");
        }
    }

    private static Path locateLibrary(String flavor) {
        String explicit = setting("tasp.native.library", "TASP_NATIVE_LIBRARY", null);
        if (explicit != null) {
            Path p = Paths.get(explicit).toAbsolutePath();
            if (!Files.isRegularFile(p)) {
                throw new IllegalStateException("tasp.native.library points to " + p + ", which is not a file");
            }
            return p;
        }
        String platform = platform();
        String resource = "native/lib/" + platform + "/" + flavor + "/" + LIBRARY_FILE;
        try (InputStream in = NativeLoader.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException(
                        "this tasp-djl jar has no " + flavor + " native library for " + platform + " (resource "
                                + resource + " is missing"
                                + ("cuda".equals(flavor) ? "; the build found no nvcc" : "")
                                + "). Set tasp.native.library to a libtasp.so built with native/build.sh.");
            }
            byte[] bytes = in.readAllBytes();
            String digest = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes)).substring(0, 16);
            Path dir = cacheDir().resolve(digest).resolve(platform).resolve(flavor);
            Path target = dir.resolve(LIBRARY_FILE);
            if (!Files.isRegularFile(target) || Files.size(target) != bytes.length) {
                Files.createDirectories(dir);
                Path tmp = Files.createTempFile(dir, "libtasp", ".tmp");
                Files.write(tmp, bytes);
                // Atomic: a concurrent JVM sees the old file or the whole new one, never a part.
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            }
            return target;
        } catch (IOException e) {
            throw new IllegalStateException("could not extract " + resource + " to " + cacheDir() + ": " + e, e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (!os.startsWith("linux")) {
            throw new IllegalStateException("tasp's native library is built for Linux only, not " + os);
        }
        switch (arch) {
            case "amd64":
            case "x86_64":
                return "linux-x86_64";
            case "aarch64":
            case "arm64":
                return "linux-aarch64";
            default:
                throw new IllegalStateException("tasp's native library is not built for " + arch);
        }
    }

    private static Path cacheDir() {
        String dir = setting("tasp.cache.dir", "TASP_CACHE_DIR", null);
        return dir != null
                ? Paths.get(dir)
                : Paths.get(System.getProperty("user.home"), ".tasp", "cache");
    }

    static String setting(String property, String env, String fallback) {
        String v = System.getProperty(property);
        if (v == null || v.isBlank()) {
            v = System.getenv(env);
        }
        return v == null || v.isBlank() ? fallback : v.trim();
    }
}
