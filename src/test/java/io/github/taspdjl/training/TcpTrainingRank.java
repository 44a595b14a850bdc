package io.github.taspdjl.training;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import io.github.taspdjl.RankJvms;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.runtime.LaunchEnvironment;
import io.github.taspdjl.runtime.ProcessGroup;
import io.github.taspdjl.runtime.RankContext;
import io.github.taspdjl.runtime.Sharding;
import java.time.Duration;
import java.util.Random;

/**
 * One rank of {@link MultiProcessTrainingTest}, run as its own JVM: for each case joins a {@link ProcessGroup}
 * over TCP, trains {@link TaspTrainerTest}'s two-layer causal model on its shard of the sequence with {@link TaspTrainer} (DJL's
 * EasyTrain, SGD) and, beside it, the same model on the whole sequence on one device (a plain
 * Trainer); after each step it prints the largest difference between the two models' parameters.
 *
 * <p>Arguments: world, rank, then for each case its plan ("tasp", "ulysses", or "hybrid": Ulysses degree 2
 * with tasp inside) and its rendezvous port; the cases run one after the other, each in its own group.
 */
public final class TcpTrainingRank {

    static final int E = TaspTrainerTest.E;
    static final long SEQ = 61; // odd: shards of unequal length
    static final int STEPS = 2;

    private TcpTrainingRank() {}

    public static void main(String[] args) throws Exception {
        int world = Integer.parseInt(args[0]);
        int rank = Integer.parseInt(args[1]);
        for (int i = 2; i + 1 < args.length; i += 2) {
            LaunchEnvironment env = new LaunchEnvironment("torchrun", rank, world, rank, world, "127.0.0.1",
                    Integer.parseInt(args[i + 1]));
            ProcessGroup.Builder b = ProcessGroup.builder().environment(env).gpu(false).timeout(30_000)
                    .rendezvousTimeout(Duration.ofSeconds(120));
            try (ProcessGroup group = plan(b, args[i]).join()) {
                train(group, rank, args[i]);
            }
        }
        System.out.flush();
        System.exit(0);
    }

    /** A case's plan: "tasp", "ulysses", or "hybrid" (Ulysses degree 2 with tasp inside). */
    private static ProcessGroup.Builder plan(ProcessGroup.Builder b, String name) {
        return name.equals("hybrid") ? b.hybrid(2, Strategy.TASP) : b.strategy(Strategy.fromName(name));
    }

    private static void train(ProcessGroup group, int rank, String name) throws Exception {
        try (NDManager m = NDManager.newBaseManager("PyTorch");
                Model distributed = Model.newInstance("distributed", "PyTorch");
                Model single = Model.newInstance("single", "PyTorch")) {
            distributed.setBlock(TaspTrainerTest.model(null));
            single.setBlock(TaspTrainerTest.model(null));
            Shape input = new Shape(2, SEQ, E);
            try (Trainer ours = TaspTrainer.of(distributed, TaspTrainerTest.config());
                    Trainer reference = single.newTrainer(TaspTrainerTest.config())) {
                SequenceLayout layout = group.plan(true).layout();
                long local = Sharding.shard(m.zeros(input), layout, rank, 1).getShape().get(1);
                ours.initialize(new Shape(2, local, E));
                reference.initialize(input);
                setParameters(distributed, 11);
                setParameters(single, 11);
                NDArray x = RankJvms.gaussian(m, 1, input);
                NDArray y = RankJvms.gaussian(m, 2, input);
                NDArray xs = Sharding.shard(x, layout, rank, 1);
                NDArray ys = Sharding.shard(y, layout, rank, 1);
                try (Model before = Model.newInstance("before", "PyTorch")) {
                    before.setBlock(TaspTrainerTest.model(null));
                    before.getBlock().initialize(m, DataType.FLOAT32, input);
                    for (int step = 0; step < STEPS; step++) {
                        TaspTrainerTest.copyParameters(single, before);
                        RankContext.run(group, rank, SEQ, true, () -> {
                            TaspTrainerTest.trainStep(ours, xs, ys);
                            return null;
                        });
                        TaspTrainerTest.trainStep(reference, x, y);
                        // How far the step moved the parameters: what a missing gradient sum would get wrong.
                        double diff = TaspTrainerTest.maxParameterDifference(distributed, single);
                        double moved = TaspTrainerTest.maxParameterDifference(single, before);
                        System.out.printf("[rank %d] %s step %d: max parameter difference = %.3e (the step moved them "
                                + "by up to %.3e)%n", rank, name, step, diff, moved);
                    }
                }
            }
        }
    }

    /** The same values in every process: from a seeded java.util.Random, parameter by parameter. */
    private static void setParameters(Model model, long seed) {
        Random r = new Random(seed);
        for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
            NDArray a = p.getValue().getArray();
            float[] v = new float[(int) a.getShape().size()];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (0.2 * r.nextGaussian());
            }
            a.set(v);
        }
    }
}
