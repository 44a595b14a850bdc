package io.github.taspdjl.bench;

import io.github.taspdjl.plan.decompose.Decompositions;
import io.github.taspdjl.plan.decompose.HamiltonianCycle;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * How long it takes to decompose 128 GPUs (uncached), for docs/DECOMPOSITION.md. Run after
 * {@code mvn -B -o -Dtasp.native.skip=true test-compile}:
 *
 * <pre>
 * mvn -B -o -q dependency:build-classpath -Dmdep.outputFile=cp.txt
 * java -cp target/test-classes:target/classes:$(cat cp.txt) io.github.taspdjl.bench.DecompositionBenchmark
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(1)
public class DecompositionBenchmark {

    private static final Duration BOUND = Duration.ofSeconds(30);

    /** K*_128: the closed-form rainbow path (128 = 0 mod 4) on Walecki's K*_127, plus verification. */
    @Benchmark
    public List<HamiltonianCycle> completeGraph128() {
        List<HamiltonianCycle> cycles = Decompositions.computeCompleteGraph(128, BOUND).orElseThrow();
        Decompositions.verify(cycles, Decompositions.completeAdjacency(128));
        return cycles;
    }

    /** K*_126 (2 mod 4): rainbow path from the stored table (or the search if the table lacks it). */
    @Benchmark
    public List<HamiltonianCycle> completeGraph126() {
        return Decompositions.computeCompleteGraph(126, BOUND).orElseThrow();
    }

    /** 16 nodes of 8 GPUs = 128 GPUs, rail-aligned rings, plus verification. */
    @Benchmark
    public List<HamiltonianCycle> hierarchical8x16() {
        List<HamiltonianCycle> rings = Decompositions.hierarchical(8, 16).orElseThrow();
        Decompositions.verify(rings, Decompositions.hierarchicalAdjacency(8, 16));
        return rings;
    }

    public static void main(String[] args) throws RunnerException {
        new Runner(new OptionsBuilder().include(DecompositionBenchmark.class.getSimpleName()).build()).run();
    }
}
