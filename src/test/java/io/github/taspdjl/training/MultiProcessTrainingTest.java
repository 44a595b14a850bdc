package io.github.taspdjl.training;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import io.github.taspdjl.RankJvms;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.testng.annotations.AfterMethod;
import org.testng.annotations.Test;

/**
 * Training across processes: 3 JVMs ({@link TcpTrainingRank}) join a ProcessGroup over TCP, each
 * trains the model on its own shard with {@link TaspTrainer} (loss weighted by its share of the
 * tokens, parameter gradients summed over the processes), and each compares its parameters after
 * every step with the same model trained on the whole sequence on one device: within 1e-5.
 */
public class MultiProcessTrainingTest {

    private static final Pattern DIFF =
            Pattern.compile("\\[rank (\\d)\\] step (\\d): max parameter difference = ([0-9.eE+-]+) \\(the step moved "
                    + "them by up to ([0-9.eE+-]+)\\)");

    private final RankJvms jvms = new RankJvms();

    @AfterMethod(alwaysRun = true)
    public void killEverything() throws InterruptedException {
        jvms.killAll();
    }

    @Test
    public void oneStepAcrossProcessesMatchesOneDevice() throws Exception {
        int world = 3;
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        List<String> outputs = jvms.runAll(TcpTrainingRank.class.getName(), world,
                r -> List.of(String.valueOf(world), String.valueOf(r), String.valueOf(port)), 300);
        for (int r = 0; r < world; r++) {
            String out = outputs.get(r);
            Matcher m = DIFF.matcher(out);
            int steps = 0;
            while (m.find()) {
                steps++;
                System.out.println(m.group());
                double diff = Double.parseDouble(m.group(3));
                assertTrue(diff <= 1e-5, "rank " + r + " step " + m.group(2) + ": max parameter difference " + diff);
                // the step must move the parameters far more than the tolerance, or the check proves nothing
                assertTrue(Double.parseDouble(m.group(4)) > 1e-3, m.group());
            }
            assertEquals(steps, TcpTrainingRank.STEPS, "rank " + r + ": " + out);
        }
    }
}
