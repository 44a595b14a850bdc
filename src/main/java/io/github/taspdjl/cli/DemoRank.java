package io.github.taspdjl.cli;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.training.ParameterStore;
import ai.djl.util.Pair;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.runtime.LaunchEnvironment;
import io.github.taspdjl.runtime.ProcessGroup;
import io.github.taspdjl.runtime.RankContext;
import io.github.taspdjl.runtime.Sharding;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code tasp demo} as one rank of a group of processes (started by torchrun, srun, mpirun or
 * {@code tasp launch}): every rank builds the same model and input (same seed), joins the group
 * (the rendezvous checks that all ranks built the same ones), runs the whole sequence on its own
 * device as the reference, then the model on its shard with attention across the group, and prints
 * {@code max error} of its shard against the reference.
 */
final class DemoRank implements Callable<Integer> {

    private final DemoCommand options;
    private final LaunchEnvironment env;

    DemoRank(DemoCommand options, LaunchEnvironment env) {
        this.options = options;
        this.env = env;
    }

    @Override
    public Integer call() throws Exception {
        boolean causal = !options.fullMask;
        int rank = env.rank();
        Engine engine = Engine.getEngine("PyTorch");
        engine.setRandomSeed(2026);
        Device device = gpuOf(engine);
        say("rank %d of %d (local %d of %d), started by %s, rendezvous at %s:%d, %s", rank, env.worldSize(),
                env.localRank(), env.localWorldSize(), env.launcher(), env.masterAddr(), env.masterPort(), device);
        try (NDManager manager = NDManager.newBaseManager(device, "PyTorch")) {
            SequentialBlock model = options.model(manager, causal);
            NDArray x = manager.randomNormal(new Shape(1, options.seq, options.embedding));
            String problem = String.format(Locale.ROOT, "seq %d, %d layers, E %d, %d heads, %s, input %s, weights %s",
                    options.seq, options.layers, options.embedding, options.heads, causal ? "causal" : "full",
                    digest(x), weightsDigest(model));
            try (ProcessGroup group = ProcessGroup.builder().environment(env).strategy(Strategy.fromName(options.strategy))
                    .gpu(device.isGpu()).cudaDevice(Math.max(0, device.getDeviceId())).problem(problem).join()) {
                Plan plan = group.plan(causal);
                if (options.seq < plan.layout().minimumLength()) {
                    throw new IllegalArgumentException("--seq " + options.seq + " is shorter than the "
                            + plan.layout().minimumLength() + " tokens a " + plan.strategy().cliName() + " plan over "
                            + env.worldSize() + " ranks needs");
                }
                say("joined: %d ranks over %s, %s plan (%s); every rank agreed on %s", group.worldSize(),
                        group.transport(), plan.strategy().cliName(), DemoCommand.stepsText(plan), problem);
                ParameterStore ps = new ParameterStore(manager, false);
                long t0 = System.nanoTime();
                NDArray single = model.forward(ps, new NDList(x), false).singletonOrThrow();
                single.toFloatArray();
                say("reference: the whole sequence on this device in %.1f s", (System.nanoTime() - t0) / 1e9);
                NDArray shard = Sharding.shard(x, plan.layout(), rank, Sharding.TOKENS_AXIS);
                say("running the model on this rank's %d tokens, attention across the group", shard.getShape().get(1));
                long t1 = System.nanoTime();
                NDArray out = RankContext.run(group, rank, options.seq, causal,
                        () -> model.forward(ps, new NDList(shard), false).singletonOrThrow());
                out.toFloatArray();
                double seconds = (System.nanoTime() - t1) / 1e9;
                NDArray expected = Sharding.shard(single, plan.layout(), rank, Sharding.TOKENS_AXIS);
                double maxError = out.sub(expected).abs().max().getFloat();
                say("sequence-parallel run in %.1f s", seconds);
                say("max error = %.3e (rank %d of %d, its %d tokens against the single-device run)", maxError, rank,
                        env.worldSize(), shard.getShape().get(1));
                return maxError <= 1e-4 ? 0 : 1;
            }
        }
    }

    /** A rank's GPU is its local rank; without GPUs, the CPU. */
    private Device gpuOf(Engine engine) {
        Device d = engine.defaultDevice();
        return d.isGpu() ? Device.gpu(env.localRank() % Math.max(1, engine.getGpuCount())) : d;
    }

    /** One line, written at once: the ranks of one job often share a terminal. */
    private void say(String format, Object... args) {
        System.out.print("[rank " + env.rank() + "] " + String.format(Locale.ROOT, format, args)
                + System.lineSeparator());
        System.out.flush();
    }

    private static String digest(NDArray a) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        md.update(a.toByteArray());
        return HexFormat.of().formatHex(md.digest(), 0, 8);
    }

    private static String weightsDigest(SequentialBlock model) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        for (Pair<String, Parameter> p : model.getParameters()) {
            md.update(p.getKey().getBytes(java.nio.charset.StandardCharsets.UTF_8));
            md.update(ByteBuffer.wrap(p.getValue().getArray().toByteArray()));
        }
        return HexFormat.of().formatHex(md.digest(), 0, 8);
    }
}
