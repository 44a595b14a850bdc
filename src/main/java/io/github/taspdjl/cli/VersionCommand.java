package io.github.taspdjl.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.IVersionProvider;

/** {@code tasp version}: versions of the library, DJL, libtorch and the native flavor loaded. */
@Command(name = "version", description = "Print versions of tasp-djl, DJL, libtorch and the native flavor.")
public final class VersionCommand implements Callable<Integer> {

    @Override
    public Integer call() {
        System.out.println("tasp-djl " + libraryVersion());
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
