package io.github.taspdjl.serving;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.expectThrows;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import io.github.taspdjl.models.LlamaConfig;
import io.github.taspdjl.models.LlamaModel;
import io.github.taspdjl.plan.Strategy;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;
import org.testng.annotations.Test;

/**
 * Sharded scoring at lengths around the plan's minimum (odd ones too) gives the one-device answer,
 * prompts below the minimum run on one device and say so, and bad requests are refused before any run.
 */
public class SequenceScorerTest {

    private static final LlamaConfig CONFIG = new LlamaConfig(64, 16, 32, 2, 2, 1, 10_000, 1e-5, true);

    private NDManager manager;
    private SequenceScorer sharded;
    private SequenceScorer oneDevice;

    @BeforeClass
    public void setUp() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(21);
        LlamaModel llama = LlamaModel.builder().setConfig(CONFIG).build();
        llama.initialize(manager);
        llama.freezeParameters(true);
        ServedLlama model = new ServedLlama(llama, 512);
        sharded = new SequenceScorer(model, manager, new SequenceScorer.Settings(4, Strategy.TASP, 30_000, 1));
        oneDevice = new SequenceScorer(model, manager, new SequenceScorer.Settings(1, Strategy.TASP, 30_000, 1));
    }

    @AfterClass(alwaysRun = true)
    public void tearDown() {
        sharded.close();
        oneDevice.close();
        manager.close();
    }

    @Test
    public void shardedAnswersEqualOneDeviceAtEveryLength() throws Exception {
        // TASP causal on 4 ranks: 8 blocks of 3 chunks, so 24 tokens is the shortest sharded prompt
        for (int length : new int[] {1, 5, 23, 24, 25, 31, 100, 257, 512}) {
            int[] tokens = ServingAnswers.randomTokens(length, CONFIG.vocabSize(), length);
            SequenceScorer.Scores got = sharded.score(tokens, 6);
            SequenceScorer.Scores want = oneDevice.score(tokens, 6);
            assertEquals(got.ranks(), length >= 24 ? 4 : 1, "ranks used for " + length + " tokens");
            assertEquals(want.ranks(), 1);
            assertEquals(got.tokens(), length);
            for (int i = 0; i < 6; i++) {
                assertEquals(got.next().get(i).token(), want.next().get(i).token(), length + " tokens, next " + i);
                assertEquals(got.next().get(i).logprob(), want.next().get(i).logprob(), 1e-5);
            }
            assertEquals(got.sequenceLogprob(), want.sequenceLogprob(), 1e-5 * length, length + " tokens");
        }
    }

    @Test
    public void badRequestsAreRefusedWithTheirReason() {
        assertEquals(expectThrows(InvalidRequestException.class, () -> sharded.score(new int[0], 1)).getMessage(),
                "'tokens' is empty: give at least one token id");
        assertEquals(expectThrows(InvalidRequestException.class, () -> sharded.score(new int[] {0, 64}, 1))
                .getMessage(), "token id 64 at index 1 is outside the vocabulary [0, 64)");
        assertEquals(expectThrows(InvalidRequestException.class, () -> sharded.score(new int[513], 1)).getMessage(),
                "513 tokens is longer than this model's maximum of 512");
        assertEquals(expectThrows(InvalidRequestException.class, () -> sharded.score(new int[] {1}, 65)).getMessage(),
                "'top_k' must be between 1 and the vocabulary size 64, got 65");
    }
}
