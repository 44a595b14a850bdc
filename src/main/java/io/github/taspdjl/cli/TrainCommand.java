package io.github.taspdjl.cli;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.ParameterList;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.nn.transformer.IdEmbedding;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.SoftmaxCrossEntropyLoss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import io.github.taspdjl.attention.TaspTransformerLayer;
import io.github.taspdjl.jni.NativeGroup;
import io.github.taspdjl.plan.Plan;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.training.TaspTrainer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code tasp train}, the fine-tuning main job: the demo's model family (TaspTransformerLayer blocks,
 * causal) with a token embedding and a classifier head learns a long-context recall task ({@link
 * RecallTask}) with DJL's own training loop ({@code EasyTrain.trainBatch}, a DJL optimizer, softmax
 * cross-entropy over every token of the sequence). It trains twice from the same initial parameters
 * on the same batches, step by step side by side: with attention over N virtual ranks ({@link
 * TaspTrainer}, whose backward is the exact distributed backward) and on one device (a plain DJL
 * Trainer; attention recorded by libtorch's autograd). Prints both losses, tokens per second and
 * memory of every step, then {@code max parameter difference = X} over every parameter after the last
 * step; exit code 1 when X is above 1e-4. {@code --save DIR} writes the N-rank parameters with {@code
 * Model.save}, for {@code Model.load} into the same block ({@link #model}).
 */
@Command(name = "train", mixinStandardHelpOptions = true, versionProvider = VersionCommand.Provider.class,
         description = "Train a small long-context transformer on a recall task with DJL's EasyTrain, with attention"
                 + " over N virtual ranks and on one device from the same start, and compare them step by step.")
public final class TrainCommand implements Callable<Integer> {

    /** The name under which {@code --save} writes the parameters ({@code NAME-0000.params}). */
    public static final String MODEL_NAME = "tasp-train";
    /** Largest parameter difference the command accepts between the two runs (exit code 1 above it). */
    static final double TOLERANCE = 1e-4;

    @Option(names = "--ranks", defaultValue = "8", description = "virtual ranks of the sequence-parallel run "
            + "(default ${DEFAULT-VALUE})")
    int ranks;

    @Option(names = "--seq", defaultValue = "8192", description = "sequence length (default ${DEFAULT-VALUE})")
    int seq;

    @Option(names = "--layers", defaultValue = "2", description = "transformer layers (default ${DEFAULT-VALUE})")
    int layers;

    @Option(names = "--steps", defaultValue = "3", description = "training steps (default ${DEFAULT-VALUE})")
    int steps;

    @Option(names = "--batch", defaultValue = "1", description = "sequences per batch (default ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--embedding", defaultValue = "64", description = "embedding size (default ${DEFAULT-VALUE})")
    int embedding;

    @Option(names = "--heads", defaultValue = "4", description = "attention heads (default ${DEFAULT-VALUE})")
    int heads;

    @Option(names = "--vocab", defaultValue = "64", description = "tokens of the recall task: a label, needles of "
            + "4 slots, 4 query tokens, noise (default ${DEFAULT-VALUE})")
    int vocab;

    @Option(names = "--strategy", defaultValue = "tasp", description = "plan strategy (default ${DEFAULT-VALUE})")
    String strategy;

    @Option(names = "--optimizer", defaultValue = "sgd", description = "sgd (with momentum 0.9) or adam (default "
            + "${DEFAULT-VALUE})")
    String optimizer;

    @Option(names = "--lr", description = "learning rate (default 0.1 for sgd, 0.003 for adam)")
    Float learningRate;

    @Option(names = "--seed", defaultValue = "2026", description = "seed of the initial parameters and the data "
            + "(default ${DEFAULT-VALUE})")
    int seed;

    @Option(names = "--save", description = "write the trained (N-rank) parameters to this folder (Model.save, name "
            + MODEL_NAME + ")")
    Path save;

    @Override
    public Integer call() throws IOException {
        checkOptions();
        RecallTask task = new RecallTask(vocab);
        long tokens = (long) batch * seq;
        long start = System.nanoTime();
        Engine engine = Engine.getEngine("PyTorch");
        try (NDManager manager = NDManager.newBaseManager("PyTorch");
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(ranks)
                        .strategy(Strategy.fromName(strategy)).timeout(600_000).build();
                Model distributed = Model.newInstance(MODEL_NAME, "PyTorch");
                Model single = Model.newInstance(MODEL_NAME + "-one-device", "PyTorch")) {
            Plan plan = group.plan(true);
            if (seq < plan.layout().minimumLength()) {
                throw new IllegalArgumentException("--seq " + seq + " is shorter than the " + plan.layout().minimumLength()
                        + " tokens a " + plan.strategy().cliName() + " plan over " + ranks + " ranks needs");
            }
            describeTask(task, tokens);
            distributed.setBlock(model(vocab, embedding, heads, layers, group));
            single.setBlock(model(vocab, embedding, heads, layers, null));
            LossOfStep distributedLoss = new LossOfStep();
            LossOfStep singleLoss = new LossOfStep();
            try (Trainer ours = TaspTrainer.of(distributed, config(distributedLoss));
                    Trainer reference = single.newTrainer(config(singleLoss))) {
                engine.setRandomSeed(seed);
                ours.initialize(new Shape(batch, seq));
                reference.initialize(new Shape(batch, seq));
                copyParameters(distributed, single); // the same start, whatever the initializers drew
                step(2, String.format(Locale.ROOT, "model: token embedding, %d causal TaspTransformerLayer(s) (E=%d, "
                        + "%d heads), LayerNorm, classifier; %,d parameters; %s, lr %s", layers, embedding, heads,
                        parameterCount(distributed), optimizerName(), learningRate));
                step(3, String.format(Locale.ROOT, "%d step(s) of EasyTrain.trainBatch: attention over %d virtual ranks "
                        + "(%s, TaspTrainer) and on one device (plain Trainer), same start, same batches", steps, ranks,
                        plan.strategy().cliName()));
                Side ranked = new Side(ranks + " ranks");
                Side alone = new Side("one device");
                Difference diff = new Difference(0, "");
                for (int s = 0; s < steps; s++) {
                    try (NDManager stepManager = manager.newSubManager()) {
                        RecallTask.Sample sample = task.sample(stepManager, seed, s, batch, seq);
                        ranked.run(ours, stepManager, sample, s, tokens, distributedLoss);
                        ranked.executorBytes = Math.max(ranked.executorBytes, executorBytesPerRank(group));
                        alone.run(reference, stepManager, sample, s, tokens, singleLoss);
                    }
                    diff = maxParameterDifference(distributed, single);
                    System.out.printf(Locale.ROOT, "  step %d/%d: loss %s %.6f, %s %.6f | time %s %.1f s (%,.0f tokens/s), "
                            + "%s %.1f s (%,.0f tokens/s) | parameter difference %.2e%n", s + 1, steps, ranked.name,
                            ranked.losses[s], alone.name, alone.losses[s], ranked.name, ranked.seconds[s],
                            tokens / ranked.seconds[s], alone.name, alone.seconds[s], tokens / alone.seconds[s],
                            diff.value());
                    System.out.flush();
                }
                step(4, "results");
                System.out.printf(Locale.ROOT, "throughput (median over the steps): %s %,.0f tokens/s, %s %,.0f tokens/s%n",
                        ranked.name, tokens / median(ranked.seconds), alone.name, tokens / median(alone.seconds));
                System.out.printf(Locale.ROOT, "memory: %d ranks: %s of executor buffers per rank; the process grew by at "
                        + "most %s during a step (the rest of the model runs on the whole sequence in this process);%n"
                        + "        one device: the process grew by at most %s during a step%n", ranks,
                        DemoCommand.human(ranked.executorBytes), DemoCommand.human(Math.max(0, ranked.peakGrowth)),
                        DemoCommand.human(Math.max(0, alone.peakGrowth)));
                if (save != null) {
                    save(distributed);
                }
                System.out.printf(Locale.ROOT, "total time %.1f s%n", (System.nanoTime() - start) / 1e9);
                System.out.printf(Locale.ROOT, "the largest difference is in parameter %s%n", diff.parameter());
                if (optimizerName().equals("adam") && diff.parameter().endsWith("keyProjection_bias")) {
                    System.out.println("note: the key projection's bias has an exact gradient of zero (it shifts all scores "
                            + "of a query alike); Adam divides the float noise both runs compute there by its own size, "
                            + "so either sign becomes a step of up to the learning rate. SGD shows the backward's "
                            + "difference.");
                }
                System.out.printf(Locale.ROOT, "max parameter difference = %.3e%n", diff.value());
                return diff.value() <= TOLERANCE ? 0 : 1;
            }
        }
    }

    private void describeTask(RecallTask task, long tokens) {
        step(1, "task: associative recall from far back");
        System.out.printf(Locale.ROOT, "  %d sequence(s) of %d tokens per step: %d needles (one per slot, %d values each) "
                + "in the first quarter, noise (%d kinds) elsewhere in the first half;%n  every token of the second half "
                + "asks for a slot and must answer its needle (%d to %d tokens back);%n  loss: softmax cross-entropy over "
                + "all %d tokens; below %.3f only by recall over the sequence%n", batch, seq, RecallTask.SLOTS,
                task.values(), task.noiseTokens(), seq / 2 - seq / 4 + 1, seq - 1, tokens, task.noRecallLoss());
    }

    private static long parameterCount(Model model) {
        long count = 0;
        for (Parameter p : model.getBlock().getParameters().values()) {
            count += p.getArray().size();
        }
        return count;
    }

    /** Model.save with the sizes as properties, so that a reader can rebuild the block ({@link #model}). */
    private void save(Model trained) throws IOException {
        Files.createDirectories(save);
        trained.setProperty("vocab", Integer.toString(vocab));
        trained.setProperty("embedding", Integer.toString(embedding));
        trained.setProperty("heads", Integer.toString(heads));
        trained.setProperty("layers", Integer.toString(layers));
        trained.save(save, MODEL_NAME);
        System.out.println("saved the " + ranks + "-rank parameters to " + save + " (Model.load(dir, \"" + MODEL_NAME
                + "\") into TrainCommand.model(vocab, embedding, heads, layers, null))");
    }

    /**
     * The trained model, uninitialized: token embedding (vocab, E), {@code layers} causal
     * TaspTransformerLayers (attention through {@code group} when given), a LayerNorm and a linear
     * classifier over the vocabulary. Input token ids (B, S), output logits (B, S, vocab).
     */
    public static SequentialBlock model(int vocab, int embedding, int heads, int layers, SequenceParallelGroup group) {
        SequentialBlock model = new SequentialBlock();
        model.add(new IdEmbedding.Builder().setDictionarySize(vocab).setEmbeddingSize(embedding).build());
        for (int i = 0; i < layers; i++) {
            model.add(TaspTransformerLayer.builder().setEmbeddingSize(embedding).setHeadCount(heads).optCausal(true)
                    .optGroup(group).build());
        }
        model.add(LayerNorm.builder().axis(2).build());
        model.add(Linear.builder().setUnits(vocab).build());
        return model;
    }

    private DefaultTrainingConfig config(TrainingListener listener) {
        Optimizer opt = optimizerName().equals("adam")
                ? Optimizer.adam().optLearningRateTracker(Tracker.fixed(learningRate)).build()
                : Optimizer.sgd().setLearningRateTracker(Tracker.fixed(learningRate)).optMomentum(0.9f).build();
        // softmax cross-entropy with sparse labels: the mean over every token of the batch's sequences
        return new DefaultTrainingConfig(new SoftmaxCrossEntropyLoss()).optOptimizer(opt).addTrainingListeners(listener);
    }

    private String optimizerName() {
        return optimizer.trim().toLowerCase(Locale.ROOT);
    }

    /** The loss of the batch a training step just differentiated (from EasyTrain's predictions). */
    private static final class LossOfStep extends TrainingListenerAdapter {
        double loss = Double.NaN;

        @Override
        public void onTrainingBatch(Trainer trainer, BatchData batchData) {
            for (Map.Entry<ai.djl.Device, NDList> e : batchData.getPredictions().entrySet()) {
                loss = trainer.getLoss().evaluate(batchData.getLabels().get(e.getKey()), e.getValue()).getFloat();
            }
        }
    }

    /** One of the two runs: its trainer's step times, losses and memory. */
    private final class Side {
        final String name;
        final double[] losses = new double[steps];
        final double[] seconds = new double[steps];
        long peakGrowth;
        long executorBytes;

        Side(String name) {
            this.name = name;
        }

        void run(Trainer trainer, NDManager manager, RecallTask.Sample sample, int s, long tokens, LossOfStep loss) {
            boolean peakReset = ProcessMemory.resetPeak();
            long before = ProcessMemory.residentBytes();
            long t0 = System.nanoTime();
            NDManager batchManager = manager.newSubManager();
            // copies: a Batch takes its arrays with it when closed, and the other run needs the same batch
            NDList data = new NDList(sample.tokens().duplicate());
            NDList labels = new NDList(sample.labels().duplicate());
            data.attach(batchManager);
            labels.attach(batchManager);
            try (Batch b = new Batch(batchManager, data, labels, batch, null, null, s, steps)) {
                EasyTrain.trainBatch(trainer, b);
                trainer.step();
            }
            seconds[s] = (System.nanoTime() - t0) / 1e9;
            losses[s] = loss.loss;
            if (peakReset && before > 0) {
                peakGrowth = Math.max(peakGrowth, ProcessMemory.peakBytes() - before);
            }
        }
    }

    private static double median(double[] values) {
        double[] v = values.clone();
        Arrays.sort(v);
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }

    /** The most executor buffer memory any rank held in the group's last attention call (a backward). */
    private static long executorBytesPerRank(SequenceParallelGroup group) {
        return group.lastStats().stream().filter(s -> s != null).mapToLong(NativeGroup.RankStats::bufferBytes).max()
                .orElse(0);
    }

    private static void copyParameters(Model from, Model to) {
        ParameterList a = from.getBlock().getParameters();
        ParameterList b = to.getBlock().getParameters();
        for (int i = 0; i < a.size(); i++) {
            b.get(i).getValue().getArray().set(a.get(i).getValue().getArray().toFloatArray());
        }
    }

    /** The largest |a - b| over every element of every parameter (fp64), and which parameter has it. */
    record Difference(double value, String parameter) {}

    static Difference maxParameterDifference(Model a, Model b) {
        ParameterList pa = a.getBlock().getParameters();
        ParameterList pb = b.getBlock().getParameters();
        Difference worst = new Difference(0, pa.isEmpty() ? "" : pa.keys().get(0));
        for (int i = 0; i < pa.size(); i++) {
            try (NDArray x = pa.get(i).getValue().getArray().toType(DataType.FLOAT64, true);
                    NDArray y = pb.get(i).getValue().getArray().toType(DataType.FLOAT64, true);
                    NDArray d = x.sub(y).abs().max()) {
                double v = d.getDouble();
                if (!(v <= worst.value())) { // NaN counts as the worst
                    worst = new Difference(v, pa.get(i).getKey());
                }
            }
        }
        return worst;
    }

    /** Every option checked before any work, each error naming its option. */
    private void checkOptions() {
        if (ranks < 1) {
            throw new IllegalArgumentException("--ranks must be at least 1, got " + ranks);
        }
        if (seq < RecallTask.MIN_SEQ) {
            throw new IllegalArgumentException("--seq must be at least " + RecallTask.MIN_SEQ + " (the recall task's "
                    + "layout), got " + seq);
        }
        if (layers < 1) {
            throw new IllegalArgumentException("--layers must be at least 1, got " + layers);
        }
        if (steps < 1) {
            throw new IllegalArgumentException("--steps must be at least 1, got " + steps);
        }
        if (batch < 1) {
            throw new IllegalArgumentException("--batch must be at least 1, got " + batch);
        }
        if (heads < 1) {
            throw new IllegalArgumentException("--heads must be at least 1, got " + heads);
        }
        if (embedding < 1 || embedding % heads != 0) {
            throw new IllegalArgumentException("--embedding must be a positive multiple of --heads (" + heads
                    + "), got " + embedding);
        }
        new RecallTask(vocab);
        if (learningRate == null) {
            learningRate = optimizerName().equals("adam") ? 0.003f : 0.1f;
        }
        if (!(learningRate > 0) || Float.isInfinite(learningRate)) {
            throw new IllegalArgumentException("--lr must be a positive number, got " + learningRate);
        }
        if (!optimizerName().equals("sgd") && !optimizerName().equals("adam")) {
            throw new IllegalArgumentException("--optimizer must be sgd or adam, got " + optimizer);
        }
        if (save != null && Files.exists(save) && !Files.isDirectory(save)) {
            throw new IllegalArgumentException("--save " + save + " exists and is not a folder");
        }
        Strategy.fromName(strategy);
    }

    private static void step(int i, String what) {
        System.out.printf(Locale.ROOT, "[%d/4] %s%n", i, what);
        System.out.flush();
    }
}
