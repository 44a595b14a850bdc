package io.github.taspdjl.runtime;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.testng.annotations.AfterClass;
import org.testng.annotations.BeforeClass;

/**
 * What tests that run ranks as threads of this JVM share: a PyTorch manager, a seeded engine and a thread
 * pool for the ranks, made before the class's tests and closed after them.
 */
abstract class RankThreadsTest {

    protected NDManager manager;
    protected ExecutorService pool;

    /** The engine's random seed for this class's inputs. */
    protected abstract int seed();

    @BeforeClass
    public void setUpRankThreads() {
        manager = NDManager.newBaseManager("PyTorch");
        Engine.getEngine("PyTorch").setRandomSeed(seed());
        pool = Executors.newCachedThreadPool();
    }

    @AfterClass
    public void tearDownRankThreads() throws InterruptedException {
        pool.shutdownNow();
        pool.awaitTermination(10, TimeUnit.SECONDS);
        manager.close();
    }
}
