package io.github.taspdjl.models;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import io.github.taspdjl.attention.ReferenceAttention;
import io.github.taspdjl.plan.SequenceLayout;
import io.github.taspdjl.runtime.PackedSequence;
import io.github.taspdjl.runtime.SequenceParallelGroup;
import io.github.taspdjl.runtime.Sharding;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.Test;

/**
 * The Llama-style model against a forward written here with DJL's own ops (Hugging Face's
 * rotate-half rotary formula, attention with the scores materialized), on 8 virtual ranks against
 * one device at 16K tokens, over packed documents, and through DJL's and Hugging Face's weight
 * formats.
 */
public class LlamaModelTest {

    /** Tiny, so 16K tokens run fast on 2 cores: 4 query heads over 1 key/value head, head size 8. */
    static final LlamaConfig CONFIG = new LlamaConfig(96, 32, 64, 2, 4, 1, 10000.0, 1e-5, false);
    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(3);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    private static LlamaModel model(LlamaConfig config, NDManager m) {
        LlamaModel model = LlamaModel.builder().setConfig(config).build();
        model.initialize(m);
        // Norm weights start at one; make them differ so a swapped or skipped norm weight shows.
        for (var p : model.getParameters().values()) {
            if (p.getName().equals("weight") && p.getArray().getShape().dimension() == 1) {
                p.getArray().addi(m.randomUniform(-0.5f, 0.5f, p.getArray().getShape()));
            }
        }
        return model;
    }

    private static NDArray ids(NDManager m, long batch, long seq) {
        return m.randomInteger(0, CONFIG.vocabSize(), new Shape(batch, seq), DataType.INT64);
    }

    // ---- the reference: Llama's forward in DJL ops, written from the Hugging Face formulas ----

    private static NDArray w(Block linear) {
        return linear.getParameters().get("weight").getArray();
    }

    private static NDArray rms(NDArray x, NDArray weight, double eps) {
        return x.mul(x.square().mean(new int[] {-1}, true).add((float) eps).pow(-0.5f)).mul(weight);
    }

    /** HF: q * cos + rotate_half(q) * sin, with cos/sin of positions x inv_freq repeated twice. */
    private static NDArray rotary(NDArray x, double theta) {
        NDManager m = x.getManager();
        long s = x.getShape().get(2);
        long d = x.getShape().get(3);
        NDArray invFreq = m.arange(0, (int) d, 2, DataType.FLOAT32).mul((float) (-Math.log(theta) / d)).exp();
        NDArray angles = m.arange(0, (int) s, 1, DataType.FLOAT32).reshape(s, 1).matMul(invFreq.reshape(1, d / 2));
        NDArray emb = NDArrays.concat(new NDList(angles, angles), -1);
        NDArray x1 = x.get(new NDIndex("..., :{}", d / 2));
        NDArray x2 = x.get(new NDIndex("..., {}:", d / 2));
        NDArray rotated = NDArrays.concat(new NDList(x2.neg(), x1), -1);
        return x.mul(emb.cos()).add(rotated.mul(emb.sin()));
    }

    static NDArray referenceLogits(LlamaModel model, NDArray ids) {
        LlamaConfig c = model.getConfig();
        long b = ids.getShape().get(0);
        long s = ids.getShape().get(1);
        int d = c.headDim();
        NDArray x = ids.oneHot(c.vocabSize()).toType(DataType.FLOAT32, false)
                .matMul(model.getTokenEmbedding().getArray());
        for (LlamaDecoderLayer layer : model.getLayers()) {
            NDArray h = rms(x, layer.getInputNorm().getWeight().getArray(), c.rmsNormEps());
            var att = layer.getAttention();
            NDArray q = h.matMul(w(att.getQueryProjection()).transpose()).reshape(b, s, c.heads(), d)
                    .transpose(0, 2, 1, 3);
            NDArray k = h.matMul(w(att.getKeyProjection()).transpose()).reshape(b, s, c.kvHeads(), d)
                    .transpose(0, 2, 1, 3);
            NDArray v = h.matMul(w(att.getValueProjection()).transpose()).reshape(b, s, c.kvHeads(), d)
                    .transpose(0, 2, 1, 3);
            NDArray o = ReferenceAttention.compute(rotary(q, c.ropeTheta()), rotary(k, c.ropeTheta()), v, true, null)
                    .output().transpose(0, 2, 1, 3).reshape(b, s, c.hiddenSize());
            x = x.add(o.matMul(w(att.getResultProjection()).transpose()));
            h = rms(x, layer.getPostAttentionNorm().getWeight().getArray(), c.rmsNormEps());
            NDArray g = h.matMul(w(layer.getMlp().getGateProjection()).transpose());
            NDArray u = h.matMul(w(layer.getMlp().getUpProjection()).transpose());
            NDArray silu = g.div(g.neg().exp().add(1f));
            x = x.add(silu.mul(u).matMul(w(layer.getMlp().getDownProjection()).transpose()));
        }
        x = rms(x, model.getFinalNorm().getWeight().getArray(), c.rmsNormEps());
        return x.matMul(model.getLmHead().getArray().transpose());
    }

    // ---- tests ----

    @Test
    public void matchesTheReferenceForwardTiedAndUntied() {
        for (boolean tied : new boolean[] {false, true}) {
            LlamaConfig c = new LlamaConfig(96, 64, 96, 2, 8, 2, 500000.0, 1e-6, tied);
            try (NDManager m = manager.newSubManager()) {
                LlamaModel model = model(c, m);
                assertEquals(model.getLmHead() == model.getTokenEmbedding(), tied);
                NDArray ids = ids(m, 2, 45);
                NDArray logits = model.forward(ids);
                assertEquals(logits.getShape(), new Shape(2, 45, 96));
                assertClose(logits, referenceLogits(model, ids), 1e-4, "tied=" + tied);
            }
        }
    }

    @Test
    public void eightRanksEqualOneDeviceAt16kTokens() {
        long seq = 16384;
        try (NDManager m = manager.newSubManager();
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(8).timeout(60_000).build()) {
            LlamaModel model = model(CONFIG, m);
            NDArray ids = ids(m, 1, seq);
            NDArray single = model.forward(ids);
            SequenceLayout layout = group.plan(true).layout();
            assertEquals(layout.kind(), SequenceLayout.Kind.ZIGZAG, "ranks hold non-contiguous blocks");
            List<NDArray> shards = Sharding.shardAll(ids, layout, Sharding.TOKENS_AXIS);
            List<NDArray> outs = group.runRanks(seq, true, rank -> model.forward(shards.get(rank)));
            assertClose(Sharding.gather(outs, layout, seq, Sharding.TOKENS_AXIS), single, 1e-4, "8 ranks vs one");
            // The same through the group from this thread (each attention sharded and gathered).
            LlamaModel grouped = LlamaModel.builder().setConfig(CONFIG).optGroup(group).build();
            grouped.initialize(m);
            copyParameters(model, grouped);
            NDArray some = ids.get(":, :3001");
            assertClose(grouped.forward(some), model.forward(some), 1e-4, "optGroup");
        }
    }

    private static void copyParameters(LlamaModel from, LlamaModel to) {
        var a = from.getParameters();
        var b = to.getParameters();
        for (int i = 0; i < a.size(); i++) {
            a.get(i).getValue().getArray().copyTo(b.get(i).getValue().getArray());
        }
    }

    @Test
    public void packedDocumentsEachEqualTheDocumentAloneOnOneDeviceAndEightRanks() throws Exception {
        PackedSequence docs = PackedSequence.ofLengths(61, 7, 133, 29, 97);
        long seq = docs.length();
        try (NDManager m = manager.newSubManager();
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(8).timeout(60_000).build()) {
            LlamaModel model = model(CONFIG, m);
            NDArray ids = ids(m, 1, seq);
            NDArray single = PackedSequence.run(docs, () -> model.forward(ids));
            SequenceLayout layout = group.plan(true).layout();
            List<NDArray> shards = Sharding.shardAll(ids, layout, Sharding.TOKENS_AXIS);
            NDArray ranks = Sharding.gather(group.runRanks(seq, true, docs, rank -> model.forward(shards.get(rank))),
                    layout, seq, Sharding.TOKENS_AXIS);
            for (int d = 0; d < docs.documentCount(); d++) {
                NDIndex range = new NDIndex(":, {}:{}", docs.start(d), docs.end(d));
                NDArray alone = model.forward(ids.get(range));
                assertClose(single.get(range), alone, 1e-4, "one device, document " + d);
                assertClose(ranks.get(range), alone, 1e-4, "8 ranks, document " + d);
            }
            // Without the boundaries the later documents see the earlier ones: the check can fail.
            NDIndex last = new NDIndex(":, {}:{}", docs.start(4), docs.end(4));
            double leak = model.forward(ids).get(last).sub(model.forward(ids.get(last))).abs().max().getFloat();
            assertTrue(leak > 1e-3, "unpacked attention should differ, got " + leak);
        }
    }

    @Test
    public void forwardLeavesOnlyTheLogitsInTheCallersManager() throws Exception {
        try (NDManager m = manager.newSubManager();
                SequenceParallelGroup group = SequenceParallelGroup.builder().worldSize(4).timeout(60_000).build()) {
            LlamaModel model = model(CONFIG, m);
            NDArray ids = ids(m, 1, 301);
            SequenceLayout layout = group.plan(true).layout();
            List<NDArray> shards = Sharding.shardAll(ids, layout, Sharding.TOKENS_AXIS);
            int before = m.getManagedArrays().size();
            for (int i = 0; i < 3; i++) {
                model.forward(ids);
                group.runRanks(301, true, rank -> model.forward(shards.get(rank)));
            }
            assertEquals(m.getManagedArrays().size() - before, 3 * (1 + 4), "3 x (one logits + 4 rank logits)");
        }
    }

    @Test
    public void savesAndLoadsInDjlFormat() throws Exception {
        Path dir = Files.createTempDirectory("tasp-llama");
        try (NDManager m = manager.newSubManager()) {
            NDArray ids = ids(m, 1, 33);
            NDArray expected;
            try (Model saved = Model.newInstance("llama", "PyTorch")) {
                LlamaModel model = model(CONFIG, m);
                saved.setBlock(model);
                expected = model.forward(ids);
                saved.save(dir, "llama");
            }
            try (Model loaded = Model.newInstance("llama", "PyTorch")) {
                LlamaModel fresh = LlamaModel.builder().setConfig(CONFIG).build();
                loaded.setBlock(fresh);
                loaded.load(dir, "llama");
                assertClose(fresh.forward(ids), expected, 0, "loaded from DJL's format");
            }
        }
    }

    /** The tensor names and shapes of a Hugging Face Llama checkpoint, spelled out here. */
    private static NDList huggingFaceTensors(LlamaModel model) {
        NDList out = new NDList();
        out.add(named(model.getTokenEmbedding().getArray(), "model.embed_tokens.weight"));
        for (int i = 0; i < model.getLayers().size(); i++) {
            LlamaDecoderLayer l = model.getLayers().get(i);
            String p = "model.layers." + i + ".";
            out.add(named(l.getInputNorm().getWeight().getArray(), p + "input_layernorm.weight"));
            out.add(named(w(l.getAttention().getQueryProjection()), p + "self_attn.q_proj.weight"));
            out.add(named(w(l.getAttention().getKeyProjection()), p + "self_attn.k_proj.weight"));
            out.add(named(w(l.getAttention().getValueProjection()), p + "self_attn.v_proj.weight"));
            out.add(named(w(l.getAttention().getResultProjection()), p + "self_attn.o_proj.weight"));
            out.add(named(l.getPostAttentionNorm().getWeight().getArray(), p + "post_attention_layernorm.weight"));
            out.add(named(w(l.getMlp().getGateProjection()), p + "mlp.gate_proj.weight"));
            out.add(named(w(l.getMlp().getUpProjection()), p + "mlp.up_proj.weight"));
            out.add(named(w(l.getMlp().getDownProjection()), p + "mlp.down_proj.weight"));
        }
        out.add(named(model.getFinalNorm().getWeight().getArray(), "model.norm.weight"));
        if (!model.getConfig().tieWordEmbeddings()) {
            out.add(named(model.getLmHead().getArray(), "lm_head.weight"));
        }
        return out;
    }

    private static NDArray named(NDArray a, String name) {
        NDArray copy = a.duplicate();
        copy.setName(name);
        return copy;
    }

    private static void write(NDList tensors, Path file) throws Exception {
        try (OutputStream os = Files.newOutputStream(file)) {
            tensors.encode(os, NDList.Encoding.SAFETENSORS);
        }
    }

    @Test
    public void loadsHuggingFaceSafetensorsAndNamesWhatIsWrong() throws Exception {
        Path dir = Files.createTempDirectory("tasp-llama-hf");
        try (NDManager m = manager.newSubManager()) {
            LlamaModel source = model(CONFIG, m);
            NDList tensors = huggingFaceTensors(source);
            assertEquals(tensors.get("model.layers.0.self_attn.k_proj.weight").getShape(),
                    new Shape(CONFIG.kvHeads() * CONFIG.headDim(), CONFIG.hiddenSize()), "HF k_proj is (out, in)");
            // A sharded checkpoint: two files in one folder.
            write(new NDList(tensors.subNDList(0, 7)), dir.resolve("model-00001-of-00002.safetensors"));
            write(tensors.subNDList(7), dir.resolve("model-00002-of-00002.safetensors"));
            LlamaModel target = LlamaModel.builder().setConfig(CONFIG).build();
            LlamaWeights.loadSafetensors(target, dir, m);
            NDArray ids = ids(m, 2, 29);
            assertClose(target.forward(ids), source.forward(ids), 0, "loaded from safetensors");

            Path partial = dir.resolve("partial.safetensors");
            NDList some = new NDList(tensors.subNDList(0, 5));
            write(some, partial);
            IllegalArgumentException missing = expectThrows(IllegalArgumentException.class,
                    () -> LlamaWeights.loadSafetensors(LlamaModel.builder().setConfig(CONFIG).build(), partial, m));
            assertTrue(missing.getMessage().contains("model.norm.weight"), missing.getMessage());

            LlamaConfig tied = new LlamaConfig(96, 32, 64, 2, 4, 1, 10000.0, 1e-5, true);
            Path single = dir.resolve("single.safetensors");
            write(tensors, single);
            IllegalArgumentException extra = expectThrows(IllegalArgumentException.class,
                    () -> LlamaWeights.loadSafetensors(LlamaModel.builder().setConfig(tied).build(), single, m));
            assertTrue(extra.getMessage().contains("lm_head.weight"), extra.getMessage());
        }
    }

    @Test
    public void badConfigsAreRefusedWithTheReason() {
        assertTrue(expectThrows(IllegalArgumentException.class,
                () -> new LlamaConfig(96, 64, 96, 2, 8, 3, 10000.0, 1e-5, false)).getMessage().contains("kvHeads 3"));
        assertTrue(expectThrows(IllegalArgumentException.class,
                () -> new LlamaConfig(96, 60, 96, 2, 8, 2, 10000.0, 1e-5, false)).getMessage().contains("multiple"));
        try (NDManager m = manager.newSubManager()) {
            LlamaModel model = model(CONFIG, m);
            assertTrue(expectThrows(IllegalArgumentException.class, () -> model.forward(m.zeros(new Shape(1, 4))))
                    .getMessage().contains("integers"));
        }
    }
}
