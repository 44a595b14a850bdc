package io.github.taspdjl.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of {@code bin/tasp}: one picocli subcommand per tool. */
@Command(
        name = "tasp",
        mixinStandardHelpOptions = true,
        versionProvider = VersionCommand.Provider.class,
        description = "TASP sequence-parallel attention for DJL.",
        subcommands = {
            VersionCommand.class,
            DemoCommand.class,
            TrainCommand.class,
            AttentionCommand.class,
            TopologyCommand.class,
            PlanCommand.class,
            SimulateCommand.class,
            BenchCommand.class,
            ServingModelCommand.class,
            ServeBenchCommand.class,
            LaunchCommand.class,
            CommandLine.HelpCommand.class
        })
public final class TaspCli implements Runnable {

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    /**
     * The CLI with its error handling: bad input (IllegalArgumentException) is one line naming the
     * problem and exit code 2; a failure of the native layer or a peer is one line and exit code 1;
     * anything else keeps its stack trace.
     */
    public static CommandLine commandLine() {
        CommandLine cli = new CommandLine(new TaspCli());
        // Every command answers -V / --version the same way, including commands added later that
        // do not name a provider themselves.
        VersionCommand.Provider version = new VersionCommand.Provider();
        for (CommandLine sub : cli.getSubcommands().values()) {
            if (sub.getCommandSpec().versionProvider() == null) {
                sub.getCommandSpec().versionProvider(version);
            }
        }
        cli.setExecutionExceptionHandler((ex, cmd, parseResult) -> {
            String name = cmd.getCommandName();
            if (ex instanceof IllegalArgumentException) {
                cmd.getErr().println("tasp " + name + ": " + ex.getMessage());
                return 2;
            }
            if (ex instanceof io.github.taspdjl.jni.TaspNativeException || ex instanceof IllegalStateException) {
                cmd.getErr().println("tasp " + name + ": " + ex.getMessage());
                return 1;
            }
            throw ex;
        });
        return cli;
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}
