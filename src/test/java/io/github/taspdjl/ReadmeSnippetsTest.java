package io.github.taspdjl;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.testng.annotations.Test;

/**
 * README snippets are compiled code: every ```java block of README.md is the exact text of a file
 * under examples/ (which the build compiles, and src/it/consumer runs), named by the line
 * {@code <!-- snippet: examples/Name.java -->} right above it. Fails when they drift.
 */
public class ReadmeSnippetsTest {

    private static final Pattern MARKER = Pattern.compile("<!-- snippet: (examples/[A-Za-z0-9_]+\\.java) -->");

    private static Path root() {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null && !Files.exists(dir.resolve("README.md"))) {
            dir = dir.getParent();
        }
        if (dir == null) {
            throw new IllegalStateException("README.md not found above " + Path.of("").toAbsolutePath());
        }
        return dir;
    }

    /** Every java block with the marker line above it (null when there is none), in README order. */
    static List<String[]> snippets(List<String> lines) {
        List<String[]> out = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            if (!lines.get(i).strip().equals("```java")) {
                continue;
            }
            StringBuilder body = new StringBuilder();
            int j = i + 1;
            while (j < lines.size() && !lines.get(j).strip().equals("```")) {
                body.append(lines.get(j)).append('\n');
                j++;
            }
            if (j == lines.size()) {
                fail("README.md line " + (i + 1) + ": a java block that never closes");
            }
            Matcher m = i > 0 ? MARKER.matcher(lines.get(i - 1).strip()) : null;
            out.add(new String[] {m != null && m.matches() ? m.group(1) : null, body.toString(), String.valueOf(i + 1)});
            i = j;
        }
        return out;
    }

    @Test
    public void everyJavaBlockIsTheExactTextOfItsExample() throws IOException {
        Path root = root();
        List<String> lines = Files.readAllLines(root.resolve("README.md"));
        List<String[]> snippets = snippets(lines);
        assertTrue(!snippets.isEmpty(), "README.md has no java snippets");
        List<String> problems = new ArrayList<>();
        for (String[] s : snippets) {
            if (s[0] == null) {
                problems.add("README.md line " + s[2] + ": a java block without a '<!-- snippet: examples/Name.java -->' "
                        + "line right above it");
                continue;
            }
            Path file = root.resolve(s[0]);
            if (!Files.exists(file)) {
                problems.add("README.md line " + s[2] + ": " + s[0] + " does not exist");
                continue;
            }
            String text = Files.readString(file).replace("\r\n", "\n");
            if (!text.endsWith("\n")) {
                text += "\n";
            }
            if (!text.equals(s[1])) {
                problems.add("README.md line " + s[2] + " differs from " + s[0] + " at its line "
                        + firstDifference(text, s[1]) + " (copy the file into the README unchanged)");
            }
        }
        long markers = lines.stream().filter(l -> MARKER.matcher(l.strip()).matches()).count();
        if (markers != snippets.stream().filter(s -> s[0] != null).count()) {
            problems.add("README.md has " + markers + " snippet markers but only "
                    + snippets.stream().filter(s -> s[0] != null).count() + " of them stand right above a java block");
        }
        assertEquals(problems, List.of(), String.join("\n", problems));
    }

    @Test
    public void everyExampleSaysHowToRunItAndPrints() throws IOException {
        Path examples = root().resolve("examples");
        try (Stream<Path> files = Files.list(examples)) {
            for (Path f : (Iterable<Path>) files.filter(p -> p.toString().endsWith(".java"))::iterator) {
                String text = Files.readString(f);
                String self = "examples/" + f.getFileName();
                assertTrue(text.lines().anyMatch(l -> l.contains("java ") && l.contains(self)),
                        f + " must say in one line how to run it (a 'java ... " + self + "' line)");
                assertTrue(text.contains("System.out.print"), f + " must print what it proves");
            }
        }
    }

    @Test
    public void driftIsDetected() {
        List<String> readme = List.of("text", "<!-- snippet: examples/A.java -->", "```java", "class A {}", "```",
                "```java", "class B {}", "```");
        List<String[]> s = snippets(readme);
        assertEquals(s.size(), 2);
        assertEquals(s.get(0)[0], "examples/A.java");
        assertEquals(s.get(0)[1], "class A {}\n");
        assertEquals(s.get(1)[0], null, "a block without its marker is found as such");
    }

    private static int firstDifference(String a, String b) {
        String[] x = a.split("\n", -1);
        String[] y = b.split("\n", -1);
        for (int i = 0; i < Math.min(x.length, y.length); i++) {
            if (!x[i].equals(y[i])) {
                return i + 1;
            }
        }
        return Math.min(x.length, y.length) + 1;
    }
}
