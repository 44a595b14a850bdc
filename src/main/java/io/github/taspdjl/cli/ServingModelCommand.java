package io.github.taspdjl.cli;

import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.models.LlamaConfig;
import io.github.taspdjl.serving.ServedModelConfig;
import io.github.taspdjl.serving.ServingFolder;
import io.github.taspdjl.topology.TopologyDetector;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code tasp serving-model DIR}: writes a model folder that DJL Serving loads (see {@link
 * ServingFolder}): one worker whose sequence-parallel group spans the node's GPUs, or virtual CPU
 * ranks when there is none.
 */
@Command(name = "serving-model", mixinStandardHelpOptions = true,
        description = "Write a model folder for DJL Serving: serving.properties, libs/, parameters.")
public final class ServingModelCommand implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "DIR", description = "the folder to write (created if missing)")
    Path dir;

    @Option(names = "--params", paramLabel = "FILE",
            description = "parameters to serve: a Hugging Face .safetensors file or folder, a DJL Model.save file, "
                    + "or ServingFolder.saveParameters output (default: random, from --seed)")
    Path params;

    @Option(names = "--ranks", description = "sequence-parallel ranks (default: the GPUs found, else the virtual CPU "
            + "ranks of tasp.virtualRanks, 8)")
    Integer ranks;

    @Option(names = "--vocab", defaultValue = "256", description = "vocabulary size (default ${DEFAULT-VALUE})")
    int vocab;

    @Option(names = {"--hidden", "--embedding"}, defaultValue = "64",
            description = "hidden (embedding) size (default ${DEFAULT-VALUE})")
    int hidden;

    @Option(names = "--intermediate", defaultValue = "172",
            description = "hidden units of each SwiGLU MLP (default ${DEFAULT-VALUE})")
    int intermediate;

    @Option(names = "--heads", defaultValue = "4", description = "query heads (default ${DEFAULT-VALUE})")
    int heads;

    @Option(names = "--kv-heads", defaultValue = "2", description = "key/value heads (default ${DEFAULT-VALUE})")
    int kvHeads;

    @Option(names = "--layers", defaultValue = "2", description = "decoder layers (default ${DEFAULT-VALUE})")
    int layers;

    @Option(names = "--rope-theta", defaultValue = "10000", description = "rotary base (default ${DEFAULT-VALUE})")
    double ropeTheta;

    @Option(names = "--tie-embeddings", description = "the LM head reuses the token embedding")
    boolean tieEmbeddings;

    @Option(names = "--max-length", defaultValue = "32768", description = "longest prompt (default ${DEFAULT-VALUE})")
    int maxLength;

    @Option(names = "--seed", defaultValue = "2026", description = "seed of random parameters (default ${DEFAULT-VALUE})")
    long seed;

    @Option(names = "--shard-min-tokens", defaultValue = "2048",
            description = "prompts at least this long run sharded over the ranks (default ${DEFAULT-VALUE})")
    int shardMinTokens;

    @Option(names = "--group-timeout-ms", defaultValue = "60000",
            description = "how long a rank waits for a peer (default ${DEFAULT-VALUE})")
    long groupTimeoutMs;

    @Option(names = "--strategy", defaultValue = "tasp", description = "plan strategy (default ${DEFAULT-VALUE})")
    String strategy;

    @Override
    public Integer call() throws Exception {
        if (params != null && !Files.exists(params)) {
            throw new IllegalArgumentException("--params " + params + " does not exist");
        }
        if (shardMinTokens < 1 || groupTimeoutMs < 1) {
            throw new IllegalArgumentException("--shard-min-tokens and --group-timeout-ms must be at least 1");
        }
        ServedModelConfig config = new ServedModelConfig(new LlamaConfig(vocab, hidden, intermediate, layers, heads,
                kvHeads, ropeTheta, 1e-5, tieEmbeddings), maxLength);
        TopologyDetector.Detection detection = TopologyDetector.standard().detect();
        boolean gpu = detection.gpuFound();
        int n = ranks != null ? ranks : gpu ? detection.topology().deviceCount() : TopologyDetector.virtualRanks();
        if (n < 1) {
            throw new IllegalArgumentException("--ranks must be at least 1, got " + n);
        }
        ServingFolder.Spec spec = new ServingFolder.Spec(config, params, seed, n, gpu, shardMinTokens, groupTimeoutMs,
                Strategy.fromName(strategy));
        List<Path> written = ServingFolder.write(dir, spec);
        System.out.println("wrote a DJL Serving model folder: " + dir.toAbsolutePath());
        for (Path p : written) {
            System.out.printf("  %-28s %,d bytes%n", dir.relativize(p), Files.size(p));
        }
        System.out.println("  " + config.model() + ", max length " + maxLength + ", " + n + (gpu ? " ranks over the node's GPUs" : " virtual CPU ranks")
                + ", prompts of " + shardMinTokens + "+ tokens sharded");
        System.out.println("serve it: djl-serving -m tasp=file://" + dir.toAbsolutePath()
                + "  (then POST {\"tokens\": [...], \"top_k\": 5} to /predictions/tasp)");
        return 0;
    }
}
