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
            AttentionCommand.class,
            TopologyCommand.class,
            PlanCommand.class,
            SimulateCommand.class,
            BenchCommand.class,
            CommandLine.HelpCommand.class
        })
public final class TaspCli implements Runnable {

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new TaspCli()).execute(args));
    }
}
