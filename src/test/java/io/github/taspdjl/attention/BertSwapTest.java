package io.github.taspdjl.attention;

import static io.github.taspdjl.NDAsserts.assertClose;
import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.transformer.BertBlock;
import ai.djl.training.ParameterStore;
import java.nio.file.Files;
import java.nio.file.Path;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.Test;

/**
 * {@link AttentionSwap} on DJL's own BertBlock: every attention block swapped, the same outputs, and
 * a swapped model saves in DJL's format and loads back into DJL's plain BertBlock and into a swapped
 * one with the same outputs.
 */
public class BertSwapTest {

    private static final int B = 2;
    private static final int S = 48;
    private NDManager manager;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(21);
    }

    @AfterClass
    public void tearDown() {
        manager.close();
    }

    private static BertBlock bert() {
        return BertBlock.builder().setTokenDictionarySize(100).optTypeDictionarySize(2).optEmbeddingSize(32)
                .optTransformerBlockCount(3).optAttentionHeadCount(4).optHiddenSize(64).optMaxSequenceLength(S)
                .optHiddenDropoutProbability(0f).build();
    }

    private static NDList run(Block bert, NDList in, NDManager m) {
        return bert.forward(new ParameterStore(m, false), in, false);
    }

    private static void assertSameOutputs(NDList actual, NDList expected, String what) {
        assertEquals(actual.size(), 2, what);
        assertClose(actual.get(0), expected.get(0), 1e-4, what + ": token embeddings");
        assertClose(actual.get(1), expected.get(1), 1e-4, what + ": pooled output");
    }

    @Test
    public void swapsAllThreeSavesAndLoadsBackIntoDjlsPlainBert() throws Exception {
        Path dir = Files.createTempDirectory("tasp-bert");
        try (NDManager m = manager.newSubManager()) {
            NDArray tokens = m.randomInteger(0, 100, new Shape(B, S), DataType.INT32);
            NDArray types = m.randomInteger(0, 2, new Shape(B, S), DataType.INT32);
            NDArray valid = m.ones(new Shape(B, S), DataType.INT32);
            NDList in = new NDList(tokens, types, valid);
            NDList expected;
            try (Model model = Model.newInstance("bert", "PyTorch")) {
                BertBlock bert = bert();
                model.setBlock(bert);
                bert.initialize(m, DataType.FLOAT32, new Shape(B, S), new Shape(B, S), new Shape(B, S));
                expected = run(bert, in, m);

                AttentionSwap.Report report = AttentionSwap.swap(bert, false, null);
                assertEquals(report.swapped().size(), 3, report.toString());
                assertTrue(report.notSwapped().isEmpty(), report.toString());
                assertSameOutputs(run(bert, in, m), expected, "swapped");
                String shown = bert.toString();
                assertEquals(shown.split("selfAttention_TaspAttentionBlock", -1).length - 1, 3, shown);
                for (int i = 0; i < 3; i++) {
                    assertTrue(bert.getChildren().get("0" + (5 + i) + "transformer_" + i)
                            instanceof TaspTransformerEncoderBlock, bert.getChildren().keys().toString());
                }
                model.save(dir, "bert");
            }
            try (Model plain = Model.newInstance("bert", "PyTorch")) {
                BertBlock bert = bert();
                plain.setBlock(bert);
                plain.load(dir, "bert");
                assertTrue(!bert.toString().contains("TaspAttentionBlock"), "DJL's own blocks");
                assertSameOutputs(run(bert, in, plain.getNDManager()), expected, "loaded into DJL's plain BertBlock");
            }
            try (Model swapped = Model.newInstance("bert", "PyTorch")) {
                BertBlock bert = bert();
                assertEquals(AttentionSwap.swap(bert, false, null).swapped().size(), 3);
                swapped.setBlock(bert);
                swapped.load(dir, "bert");
                assertSameOutputs(run(bert, in, swapped.getNDManager()), expected, "loaded into a swapped BertBlock");
            }
        }
    }
}
