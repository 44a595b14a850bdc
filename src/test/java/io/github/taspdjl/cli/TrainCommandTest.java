package io.github.taspdjl.cli;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.ParameterList;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.nn.transformer.IdEmbedding;
import ai.djl.nn.transformer.ScaledDotProductAttentionBlock;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.ParameterStore;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.loss.SoftmaxCrossEntropyLoss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.util.PairList;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.testng.annotations.Test;

/**
 * {@code tasp train} at small sizes: the N-rank run matches the one-device run the command computes
 * (the parameter difference it prints), and both match an independent reference: the same network
 * built from DJL's own blocks (DJL's ScaledDotProductAttentionBlock with a causal mask, which builds
 * the score matrix) trained one step by a plain DJL Trainer from the same start on the same batch.
 * The saved parameters load back with {@code Model.load} and give that reference's outputs.
 */
public class TrainCommandTest {

    private static final Pattern DIFF = Pattern.compile("max parameter difference = ([0-9.eE+-]+)");
    private static final Pattern STEP = Pattern.compile(
            "step (\\d+)/\\d+: loss \\d+ ranks ([0-9.]+), one device ([0-9.]+)");

    @Test
    public void trainsOnRanksLikeOnOneDevice() {
        CliRun run = CliRun.of("train", "--ranks", "4", "--seq", "131", "--layers", "2", "--steps", "3", "--embedding",
                "32", "--heads", "4");
        String out = run.out();
        assertEquals(run.exit(), 0, out);
        for (String part : new String[] {"[1/4] task", "[3/4] 3 step(s) of EasyTrain.trainBatch", "tasp-causal",
            "tokens/s", "executor buffers per rank", "[4/4] results"}) {
            assertTrue(out.contains(part), "missing '" + part + "' in\n" + out);
        }
        List<double[]> losses = losses(out);
        assertEquals(losses.size(), 3, out);
        for (double[] l : losses) {
            assertTrue(Double.isFinite(l[0]) && l[0] > 0, out);
            assertTrue(Math.abs(l[0] - l[1]) <= 1e-5 * l[1] + 1e-6, "losses differ: " + out);
        }
        assertTrue(difference(out) <= 1e-4, out);
    }

    @Test
    public void matchesDjlsOwnAttentionAndSavesForModelLoad() throws Exception {
        int vocab = 40;
        int e = 32;
        int heads = 4;
        int layers = 2;
        int seq = 96;
        int seed = 7;
        float lr = 0.1f;
        Path dir = Files.createTempDirectory("tasp-train");
        CliRun run = CliRun.of("train", "--ranks", "3", "--seq", Integer.toString(seq), "--layers",
                Integer.toString(layers), "--steps", "1", "--embedding", Integer.toString(e), "--heads",
                Integer.toString(heads), "--vocab", Integer.toString(vocab), "--seed", Integer.toString(seed), "--lr",
                Float.toString(lr), "--save", dir.toString());
        assertEquals(run.exit(), 0, run.out());
        double[] commandLoss = losses(run.out()).get(0);

        try (NDManager m = NDManager.newBaseManager("PyTorch");
                Model start = Model.newInstance("start", "PyTorch");
                Model reference = Model.newInstance("reference", "PyTorch");
                Model loaded = Model.newInstance(TrainCommand.MODEL_NAME, "PyTorch")) {
            // the command's start: its seed, then DJL's initializers of the same config
            start.setBlock(TrainCommand.model(vocab, e, heads, layers, null));
            reference.setBlock(djlModel(vocab, e, heads, layers));
            Shape input = new Shape(1, seq);
            try (Trainer s = start.newTrainer(config(lr)); Trainer ref = reference.newTrainer(config(lr))) {
                Engine.getEngine("PyTorch").setRandomSeed(seed);
                s.initialize(input);
                ref.initialize(input);
                copyParameters(start, reference);

                RecallTask.Sample sample = new RecallTask(vocab).sample(m, seed, 0, 1, seq);
                NDArray before = ref.evaluate(new NDList(sample.tokens())).singletonOrThrow();
                double refLoss = ref.getLoss().evaluate(new NDList(sample.labels()), new NDList(before)).getFloat();
                assertTrue(Math.abs(refLoss - commandLoss[0]) <= 1e-5 * refLoss, "ranks' loss " + commandLoss[0]
                        + " vs DJL's " + refLoss);
                assertTrue(Math.abs(refLoss - commandLoss[1]) <= 1e-5 * refLoss, "one device's loss " + commandLoss[1]
                        + " vs DJL's " + refLoss);
                try (Batch b = new Batch(m.newSubManager(), new NDList(sample.tokens().duplicate()),
                        new NDList(sample.labels().duplicate()), 1, null, null, 0, 1)) {
                    EasyTrain.trainBatch(ref, b);
                    ref.step();
                }

                loaded.setBlock(TrainCommand.model(vocab, e, heads, layers, null));
                loaded.load(dir, TrainCommand.MODEL_NAME);
                assertEquals(loaded.getProperty("vocab"), Integer.toString(vocab));
                double paramDiff = TrainCommand.maxParameterDifference(loaded, reference).value();
                assertTrue(paramDiff <= 1e-5, "saved parameters vs DJL's step: " + paramDiff);
                // the first step is lr * gradient (SGD, no momentum yet): compare the steps themselves
                double stepError = stepError(start.getBlock().getParameters(), loaded.getBlock().getParameters(),
                        reference.getBlock().getParameters());
                assertTrue(stepError <= 1e-4, "first step (lr * gradient) vs DJL's, relative to its largest: " + stepError);

                NDArray ours = loaded.getBlock().forward(new ParameterStore(m, false), new NDList(sample.tokens()), false)
                        .singletonOrThrow();
                NDArray theirs = ref.evaluate(new NDList(sample.tokens())).singletonOrThrow();
                double outDiff = ours.sub(theirs).abs().max().getFloat();
                assertTrue(outDiff <= 1e-4, "outputs of the loaded model vs DJL's: " + outDiff);
            }
        }
    }

    private static DefaultTrainingConfig config(float lr) {
        return new DefaultTrainingConfig(new SoftmaxCrossEntropyLoss())
                .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(lr)).optMomentum(0.9f).build());
    }

    /** The command's network from DJL's own blocks, attention by DJL's ScaledDotProductAttentionBlock. */
    private static SequentialBlock djlModel(int vocab, int e, int heads, int layers) {
        SequentialBlock net = new SequentialBlock();
        net.add(new IdEmbedding.Builder().setDictionarySize(vocab).setEmbeddingSize(e).build());
        for (int i = 0; i < layers; i++) {
            net.add(new DjlLayer(e, heads));
        }
        net.add(LayerNorm.builder().axis(2).build());
        net.add(Linear.builder().setUnits(vocab).build());
        return net;
    }

    /** Pre-norm layer, children in TaspTransformerLayer's order so that parameters line up. */
    private static final class DjlLayer extends AbstractBlock {
        private final LayerNorm attentionNorm;
        private final ScaledDotProductAttentionBlock attention;
        private final LayerNorm mlpNorm;
        private final Linear mlpIn;
        private final Linear mlpOut;

        DjlLayer(int e, int heads) {
            attentionNorm = addChildBlock("attentionNorm", LayerNorm.builder().axis(2).build());
            attention = addChildBlock("attention", ScaledDotProductAttentionBlock.builder().setEmbeddingSize(e)
                    .setHeadCount(heads).optAttentionProbsDropoutProb(0f).build());
            mlpNorm = addChildBlock("mlpNorm", LayerNorm.builder().axis(2).build());
            mlpIn = addChildBlock("mlpIn", Linear.builder().setUnits(4L * e).build());
            mlpOut = addChildBlock("mlpOut", Linear.builder().setUnits(e).build());
        }

        @Override
        public Shape[] getOutputShapes(Shape[] inputShapes) {
            return new Shape[] {inputShapes[0]};
        }

        @Override
        protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
            Shape x = inputShapes[0];
            attentionNorm.initialize(manager, dataType, x);
            attention.initialize(manager, dataType, x, new Shape(x.get(0), x.get(1), x.get(1)));
            mlpNorm.initialize(manager, dataType, x);
            mlpIn.initialize(manager, dataType, x);
            mlpOut.initialize(manager, dataType, mlpIn.getOutputShapes(new Shape[] {x})[0]);
        }

        @Override
        protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training,
                PairList<String, Object> params) {
            NDArray x = inputs.singletonOrThrow();
            long b = x.getShape().get(0);
            long s = x.getShape().get(1);
            NDManager mm = x.getManager();
            NDArray rows = mm.arange(0, (int) s, 1, DataType.INT64).reshape(s, 1);
            NDArray cols = mm.arange(0, (int) s, 1, DataType.INT64).reshape(1, s);
            NDArray causal = cols.lte(rows).toType(DataType.FLOAT32, false).broadcast(b, s, s);
            NDArray n = attentionNorm.forward(ps, new NDList(x), training, params).head();
            x = x.add(attention.forward(ps, new NDList(n, causal), training, params).head());
            NDArray h = mlpIn.forward(ps, mlpNorm.forward(ps, new NDList(x), training, params), training, params).head();
            return new NDList(x.add(mlpOut.forward(ps, new NDList(Activation.gelu(h)), training, params).head()));
        }
    }

    private static void copyParameters(Model from, Model to) {
        ParameterList a = from.getBlock().getParameters();
        ParameterList b = to.getBlock().getParameters();
        assertEquals(a.size(), b.size(), a.keys() + " vs " + b.keys());
        for (int i = 0; i < a.size(); i++) {
            NDArray x = a.get(i).getValue().getArray();
            assertEquals(b.get(i).getValue().getArray().getShape(), x.getShape(), a.get(i).getKey());
            b.get(i).getValue().getArray().set(x.toFloatArray());
        }
    }

    /** max |(ours - start) - (ref - start)| / max |ref - start| over every parameter element. */
    private static double stepError(ParameterList start, ParameterList ours, ParameterList ref) {
        double error = 0;
        double largest = 0;
        for (int i = 0; i < start.size(); i++) {
            NDArray s0 = start.get(i).getValue().getArray().toType(DataType.FLOAT64, true);
            NDArray a = ours.get(i).getValue().getArray().toType(DataType.FLOAT64, true).sub(s0);
            NDArray b = ref.get(i).getValue().getArray().toType(DataType.FLOAT64, true).sub(s0);
            error = Math.max(error, a.sub(b).abs().max().getDouble());
            largest = Math.max(largest, b.abs().max().getDouble());
        }
        assertTrue(largest > 0, "the reference step changed nothing");
        return error / largest;
    }

    /** (N-rank loss, one-device loss) of each step line, in order. */
    private static List<double[]> losses(String out) {
        List<double[]> l = new ArrayList<>();
        Matcher m = STEP.matcher(out);
        while (m.find()) {
            l.add(new double[] {Double.parseDouble(m.group(2)), Double.parseDouble(m.group(3))});
        }
        return l;
    }

    private static double difference(String out) {
        Matcher m = DIFF.matcher(out);
        assertTrue(m.find(), out);
        return Double.parseDouble(m.group(1));
    }
}
