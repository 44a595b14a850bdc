package io.github.taspdjl.training;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import io.github.taspdjl.RankJvms;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.testng.annotations.AfterMethod;
import org.testng.annotations.Test;

/**
 * Training across processes: 4 JVMs ({@link TcpTrainingRank}) join a ProcessGroup over TCP, once with
 * tasp, once with Ulysses (one of the 4 heads per process) and once with a hybrid (Ulysses degree 2, tasp
 * inside); each trains the model on its own shard with {@link TaspTrainer} (loss weighted by its share
 * of the tokens, parameter gradients summed over the processes), and each compares its parameters
 * after every step with the same model trained on the whole sequence on one device: within 1e-5.
 */
public class MultiProcessTrainingTest {

    private static final Pattern DIFF =
            Pattern.compile("\\[rank (\\d)\\] (tasp|ulysses|hybrid) step (\\d): max parameter difference = ([0-9.eE+-]+) \\(the step moved "
                    + "them by up to ([0-9.eE+-]+)\\)");

    private final RankJvms jvms = new RankJvms();

    @AfterMethod(alwaysRun = true)
    public void killEverything() throws InterruptedException {
        jvms.killAll();
    }

    @Test
    public void taspUlyssesAndHybridStepsAcrossProcessesMatchOneDevice() throws Exception {
        int world = 4;
        List<String> cases = List.of("tasp", "ulysses", "hybrid");
        List<String> args = new ArrayList<>(List.of(String.valueOf(world), ""));
        for (String c : cases) {
            args.add(c);
            try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                args.add(String.valueOf(s.getLocalPort()));
            }
        }
        List<String> outputs = jvms.runAll(TcpTrainingRank.class.getName(), world, r -> {
            List<String> mine = new ArrayList<>(args);
            mine.set(1, String.valueOf(r));
            return mine;
        }, 300);
        for (int r = 0; r < world; r++) {
            String out = outputs.get(r);
            Matcher m = DIFF.matcher(out);
            Map<String, Integer> steps = new HashMap<>();
            while (m.find()) {
                steps.merge(m.group(2), 1, Integer::sum);
                System.out.println(m.group());
                assertEquals(Integer.parseInt(m.group(1)), r, out);
                double diff = Double.parseDouble(m.group(4));
                assertTrue(diff <= 1e-5, "rank " + r + " " + m.group(2) + " step " + m.group(3)
                        + ": max parameter difference " + diff);
                // the step must move the parameters far more than the tolerance, or the check proves nothing
                assertTrue(Double.parseDouble(m.group(5)) > 1e-3, m.group());
            }
            for (String c : cases) {
                assertEquals(steps.getOrDefault(c, 0).intValue(), TcpTrainingRank.STEPS, "rank " + r + " " + c + ": " + out);
            }
        }
    }
}
