package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertFalse;
import static org.testng.Assert.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.testng.annotations.Test;
import picocli.CommandLine;

/** Every command answers --help; bad demo and train options are one line naming the option, exit code 2. */
public class CliOptionsTest {

    private record Run(int exit, String out, String err) {}

    private static Run run(String... args) {
        CommandLine cli = TaspCli.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out, true));
        cli.setErr(new PrintWriter(err, true));
        int exit = cli.execute(args);
        return new Run(exit, out.toString(), err.toString());
    }

    @Test
    public void everyCommandAnswersHelp() {
        var subcommands = TaspCli.commandLine().getSubcommands().keySet();
        assertTrue(subcommands.size() >= 7, subcommands.toString());
        for (String name : subcommands) {
            if (name.equals("help")) {
                continue;
            }
            for (String flag : new String[] {"--help", "-h"}) {
                Run r = run(name, flag);
                assertEquals(r.exit(), 0, name + " " + flag + ": " + r.err());
                assertTrue(r.out().contains("Usage: tasp " + name), name + " " + flag + ":\n" + r.out() + r.err());
            }
        }
    }

    @Test
    public void everyCommandAnswersVersion() {
        String expected = new VersionCommand.Provider().getVersion()[0];
        for (String name : TaspCli.commandLine().getSubcommands().keySet()) {
            if (name.equals("help")) {
                continue;
            }
            for (String flag : new String[] {"--version", "-V"}) {
                Run r = run(name, flag);
                assertEquals(r.exit(), 0, name + " " + flag + ": " + r.err());
                assertEquals(r.out().strip(), expected, name + " " + flag);
            }
        }
    }

    @Test
    public void badDemoOptionsNameTheOption() {
        assertEachFailsNamingItsOption("demo", new String[][] {
            {"--layers", "0"}, {"--layers", "-1"}, {"--embedding", "0"}, {"--embedding", "30"}, {"--heads", "0"},
            {"--seq", "0"}, {"--ranks", "0"}, {"--strategy", "nonsense"},
        });
    }

    @Test
    public void badTrainOptionsNameTheOption() throws Exception {
        java.nio.file.Path file = java.nio.file.Files.createTempFile("tasp-train", ".txt");
        assertEachFailsNamingItsOption("train", new String[][] {
            {"--steps", "0"}, {"--ranks", "0"}, {"--seq", "8"}, {"--layers", "0"}, {"--batch", "0"}, {"--heads", "0"},
            {"--embedding", "30"}, {"--vocab", "10"}, {"--lr", "0"}, {"--lr", "NaN"}, {"--optimizer", "lbfgs"},
            {"--strategy", "nonsense"}, {"--save", file.toString()},
        });
    }

    /** Each option alone: exit code 2 and one line on stderr that names it, no stack trace. */
    private static void assertEachFailsNamingItsOption(String command, String[][] cases) {
        for (String[] c : cases) {
            Run r = run(command, c[0], c[1]);
            assertEquals(r.exit(), 2, String.join(" ", c) + ": " + r.err());
            String option = c[0].equals("--strategy") ? "strategy" : c[0];
            assertTrue(r.err().contains(option), String.join(" ", c) + ": " + r.err());
            assertEquals(r.err().strip().lines().count(), 1L, r.err());
            assertFalse(r.err().contains("Exception"), r.err());
        }
    }
}
