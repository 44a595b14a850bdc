package io.github.taspdjl.cli;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/** Runs the CLI in-process and captures what it prints to standard output. */
record CliRun(int exit, String out) {

    static CliRun of(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        int exit;
        try {
            exit = TaspCli.commandLine().execute(args);
        } finally {
            System.setOut(old);
        }
        return new CliRun(exit, buf.toString(StandardCharsets.UTF_8));
    }
}
