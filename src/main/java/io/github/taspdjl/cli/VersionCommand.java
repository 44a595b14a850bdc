package io.github.taspdjl.cli;

import ai.djl.engine.Engine;
import io.github.taspdjl.jni.NativeOps;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.IVersionProvider;

/** {@code tasp version}: versions of the library, DJL, libtorch and the native flavor loaded. */
@Command(name = "version", mixinStandardHelpOptions = true, versionProvider = VersionCommand.Provider.class,
         description = "Print versions of tasp-djl, DJL, libtorch and the native flavor loaded.")
public final class VersionCommand implements Callable<Integer> {

    @Override
    public Integer call() {
        System.out.println("tasp-djl        " + libraryVersion());
        System.out.println("DJL             " + Engine.getDjlVersion());
        try {
            var lib = NativeOps.loaded();
            System.out.println("libtorch        " + lib.libtorchVersion() + " (" + lib.libtorchDir() + ")");
            System.out.println("native flavor   " + lib.flavor() + " (libtasp " + lib.nativeVersion() + ", "
                    + lib.path() + ")");
        } catch (RuntimeException e) {
            System.out.println("native library  not loaded: " + e.getMessage());
            return 1;
        }
        return 0;
    }

    static String libraryVersion() {
        String v = VersionCommand.class.getPackage().getImplementationVersion();
        return v == null ? "dev" : v;
    }

    /** Version text for {@code tasp --version}. */
    public static final class Provider implements IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"tasp-djl " + libraryVersion()};
        }
    }
}
