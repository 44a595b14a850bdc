import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Runs the main method of every example that README.md shows as a snippet, in README order. */
public final class RunReadmeSnippets {

    public static void main(String[] args) throws Exception {
        Path readme = Path.of(args[0]);
        Matcher m = Pattern.compile("<!-- snippet: examples/(\\w+)\\.java -->").matcher(Files.readString(readme));
        List<String> names = new ArrayList<>();
        while (m.find()) {
            names.add(m.group(1));
        }
        if (names.isEmpty()) {
            throw new IllegalStateException("no snippet markers in " + readme);
        }
        for (String name : names) {
            System.out.println("== " + name);
            long t0 = System.nanoTime();
            Class.forName(name).getMethod("main", String[].class).invoke(null, (Object) new String[0]);
            System.out.printf("== %s ran in %.1f s%n", name, (System.nanoTime() - t0) / 1e9);
        }
        System.out.println("ran " + names.size() + " README snippets: " + names);
        System.exit(0); // rank threads of closed groups are daemons, but do not wait on anything left
    }
}
