package io.github.taspdjl.serving;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import io.github.taspdjl.models.LlamaModel;
import io.github.taspdjl.models.LlamaWeights;
import io.github.taspdjl.plan.Strategy;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.CodeSource;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;

/**
 * A model folder that DJL Serving loads: {@code serving.properties}, the parameters and {@code
 * libs/} with the jars the translator needs beyond what the server brings (DJL, its PyTorch engine,
 * Gson, JNA and SLF4J are the server's own).
 *
 * <p>How the server loads it: it reads {@code serving.properties}, gives keys starting with {@code
 * option.} to {@code Model.load} and the rest to the translator as arguments, makes the model's
 * block with DJL's {@code IdentityBlockFactory} (named in the properties; the real model cannot be
 * a single block, since long prompts run across a group), reads no parameter file itself ({@code
 * option.hasParameter=false}: the server names a model after its folder, so a parameter file named
 * after the model would break when the folder is renamed), and finds {@link TaspServingTranslator}
 * by scanning {@code libs/}. The translator then builds the decoder from the shape keys and reads
 * the file named by {@code parameters}.
 */
public final class ServingFolder {

    /** The translator argument naming the parameter file inside the folder. */
    public static final String PARAMETERS = "parameters";
    public static final String DEFAULT_PARAMETERS_FILE = "tasp-lm.params";

    private ServingFolder() {}

    /** What to write. */
    public record Spec(ServedModelConfig config, Path parameters, long seed, int ranks, boolean gpu,
            int shardMinTokens, long groupTimeoutMs, Strategy strategy) {}

    /**
     * Writes a complete folder into {@code dir} (created if missing; files of ours in it are
     * replaced): parameters (copied from {@code spec.parameters()}, or random from {@code
     * spec.seed()}), {@code serving.properties} and {@code libs/}. Returns the files written.
     */
    public static List<Path> write(Path dir, Spec spec) throws IOException, MalformedModelException {
        if (spec.parameters() != null) {
            checkParameters(spec.parameters(), spec.config()); // before anything is written
        }
        Files.createDirectories(dir);
        List<Path> written = new ArrayList<>();
        Path params;
        if (spec.parameters() == null) {
            params = dir.resolve(DEFAULT_PARAMETERS_FILE);
            writeRandomParameters(params, spec.config(), spec.seed());
            written.add(params);
        } else if (Files.isDirectory(spec.parameters())) {
            params = dir.resolve("weights"); // a sharded Hugging Face checkpoint
            Files.createDirectories(params);
            for (Path f : safetensorsIn(spec.parameters())) {
                written.add(Files.copy(f, params.resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING));
            }
        } else {
            params = dir.resolve(isSafetensors(spec.parameters()) ? "model.safetensors" : DEFAULT_PARAMETERS_FILE);
            written.add(Files.copy(spec.parameters(), params, StandardCopyOption.REPLACE_EXISTING));
        }
        Path props = dir.resolve("serving.properties");
        Files.writeString(props, properties(spec, dir.relativize(params).toString()));
        written.add(props);
        written.addAll(writeLibs(dir.resolve("libs")));
        return written;
    }

    /**
     * A Llama model of this shape with the parameters read from {@code path}, on {@code manager}'s
     * device, frozen (inference only). {@code path} is one of: a Hugging Face {@code .safetensors}
     * file or a folder of them ({@code LlamaWeights}); a file of DJL's {@code Model.save} (it starts
     * with {@code DJL@}); the parameters of the model's block ({@link #saveParameters}).
     */
    public static DecoderModel loadModel(Path path, ServedModelConfig config, NDManager manager)
            throws IOException, MalformedModelException {
        LlamaModel model = LlamaModel.builder().setConfig(config.model()).build();
        String what = path.getFileName() + " as a Llama model with " + config.model();
        try {
            if (Files.isDirectory(path) || isSafetensors(path)) {
                LlamaWeights.loadSafetensors(model, path, manager);
            } else if (!Files.isRegularFile(path)) {
                throw new IOException("parameter file not found: " + path);
            } else if (isDjlModelFile(path)) {
                // Model.load reads its header and then the block's parameters onto its own manager,
                // which must live as long as the served model: it closes with the caller's manager.
                Model holder = Model.newInstance("tasp-lm", manager.getDevice(), "PyTorch");
                manager.attachInternal("tasp-params-" + UUID.randomUUID(), holder);
                holder.setBlock(model);
                try (InputStream in = new BufferedInputStream(Files.newInputStream(path))) {
                    holder.load(in);
                }
                requireShapes(model, config, path);
            } else {
                try (InputStream in = new BufferedInputStream(Files.newInputStream(path))) {
                    model.loadParameters(manager, new DataInputStream(in));
                }
                requireShapes(model, config, path);
            }
        } catch (MalformedModelException | IOException | RuntimeException e) {
            throw new MalformedModelException("cannot read " + what + ": " + e.getMessage(), e);
        }
        model.freezeParameters(true); // no autograd graph on the worker and rank threads
        return new ServedLlama(model, config.maxLength());
    }

    /**
     * DJL reads a parameter of any shape into a parameter of the same name, so a file saved from a
     * model of another vocabulary or width would load and then compute nonsense: compare every
     * parameter with a freshly initialized model of the expected shape.
     */
    private static void requireShapes(LlamaModel loaded, ServedModelConfig config, Path file)
            throws MalformedModelException {
        try (NDManager scratch = NDManager.newBaseManager(ai.djl.Device.cpu(), "PyTorch")) {
            LlamaModel expected = LlamaModel.builder().setConfig(config.model()).build();
            expected.initialize(scratch);
            var want = expected.getParameters();
            var got = loaded.getParameters();
            if (want.size() != got.size()) {
                throw new MalformedModelException(file.getFileName() + " holds " + got.size() + " parameters, a "
                        + "Llama model with " + config.model() + " has " + want.size());
            }
            for (int i = 0; i < want.size(); i++) {
                Shape w = want.get(i).getValue().getArray().getShape();
                Shape g = got.get(i).getValue().getArray().getShape();
                if (!w.equals(g)) {
                    throw new MalformedModelException(file.getFileName() + ": parameter " + got.get(i).getKey()
                            + " is " + g + ", but a Llama model with " + config.model() + " has " + w);
                }
            }
        }
    }

    /** Saves a model's parameters in the block format {@link #loadModel} reads. */
    public static void saveParameters(Block block, Path file) throws IOException {
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file))) {
            DataOutputStream dos = new DataOutputStream(out);
            block.saveParameters(dos);
            dos.flush();
        }
    }

    private static void writeRandomParameters(Path file, ServedModelConfig config, long seed) throws IOException {
        Engine engine = Engine.getEngine("PyTorch");
        engine.setRandomSeed((int) seed);
        try (NDManager manager = NDManager.newBaseManager(ai.djl.Device.cpu(), "PyTorch")) {
            LlamaModel model = LlamaModel.builder().setConfig(config.model()).build();
            model.initialize(manager);
            saveParameters(model, file);
        }
    }

    private static boolean isSafetensors(Path p) {
        return p.getFileName().toString().endsWith(".safetensors");
    }

    private static boolean isDjlModelFile(Path p) throws IOException {
        try (InputStream in = Files.newInputStream(p)) {
            byte[] magic = in.readNBytes(4);
            return new String(magic, java.nio.charset.StandardCharsets.US_ASCII).equals("DJL@");
        }
    }

    private static List<Path> safetensorsIn(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            List<Path> out = files.filter(ServingFolder::isSafetensors).sorted().toList();
            if (out.isEmpty()) {
                throw new IOException(dir + " holds no .safetensors files");
            }
            return out;
        }
    }

    private static void checkParameters(Path file, ServedModelConfig config)
            throws IOException, MalformedModelException {
        try (NDManager manager = NDManager.newBaseManager(ai.djl.Device.cpu(), "PyTorch")) {
            loadModel(file, config, manager);
        }
    }

    static String properties(Spec spec, String parametersPath) {
        StringBuilder sb = new StringBuilder();
        sb.append("# A tasp-djl decoder language model for DJL Serving, written by `tasp serving-model`.\n");
        sb.append("# Keys starting with \"option.\" go to Model.load (prefix stripped); every other key reaches\n");
        sb.append("# the translator (io.github.taspdjl.serving.TaspServingTranslator, found in libs/) as an argument.\n\n");
        line(sb, "engine", "PyTorch", "the DJL engine that runs the model");
        line(sb, "blockFactory", "ai.djl.nn.IdentityBlockFactory", "DJL's identity block stands in for the model's "
                + "block: the translator builds the Llama model itself, because a long prompt runs across a group");
        line(sb, "option.hasParameter", "false", "Model.load reads no parameter file; the translator reads `parameters`");
        line(sb, "load_on_devices", spec.gpu() ? "0" : "cpu", "one device entry, so one copy of the model: its "
                + "worker owns all ranks of the group (" + (spec.gpu() ? "GPU 0" : "no GPU: virtual CPU ranks") + ")");
        line(sb, "minWorkers", "1", "one worker");
        line(sb, "maxWorkers", "1", "and never more: the group serves one sequence at a time");
        line(sb, "batch_size", "4", "requests the worker takes at once; each is answered on its own");
        line(sb, "max_batch_delay", "100", "milliseconds to wait for a batch to fill");
        line(sb, "job_queue_size", "64", "requests that may wait for the worker");
        line(sb, PARAMETERS, parametersPath, "the model's parameters, in this folder");
        for (Map.Entry<String, String> e : spec.config().toArguments().entrySet()) {
            line(sb, e.getKey(), e.getValue(), describe(e.getKey()));
        }
        line(sb, SequenceScorer.Settings.RANKS, Integer.toString(spec.ranks()), "sequence-parallel ranks of the group");
        line(sb, SequenceScorer.Settings.STRATEGY, spec.strategy().cliName(), "the plan the group runs");
        line(sb, SequenceScorer.Settings.SHARD_MIN_TOKENS, Integer.toString(spec.shardMinTokens()),
                "prompts at least this long run sharded over the group; shorter ones on one device");
        line(sb, SequenceScorer.Settings.GROUP_TIMEOUT_MS, Long.toString(spec.groupTimeoutMs()),
                "how long a rank waits for a peer before the group fails (the request gets 500)");
        line(sb, TaspServingTranslator.DEFAULT_TOP_K, "5", "next tokens returned when a request gives no top_k");
        return sb.toString();
    }

    private static String describe(String key) {
        return switch (key) {
            case ServedModelConfig.VOCABULARY -> "token ids are 0 .. vocab_size-1";
            case ServedModelConfig.HIDDEN -> "embedding width";
            case ServedModelConfig.INTERMEDIATE -> "hidden units of each SwiGLU MLP";
            case ServedModelConfig.LAYERS -> "decoder layers";
            case ServedModelConfig.HEADS -> "query heads";
            case ServedModelConfig.KV_HEADS -> "key/value heads (grouped-query attention)";
            case ServedModelConfig.ROPE_THETA -> "base of the rotary position embeddings";
            case ServedModelConfig.RMS_NORM_EPS -> "epsilon of every RMSNorm";
            case ServedModelConfig.TIE_EMBEDDINGS -> "whether the LM head reuses the token embedding";
            case ServedModelConfig.MAX_LENGTH -> "longest prompt accepted, in tokens";
            default -> key;
        };
    }

    private static void line(StringBuilder sb, String key, String value, String comment) {
        sb.append("# ").append(comment).append('\n').append(key).append('=').append(value).append("\n\n");
    }

    /**
     * Copies this library (its jar, or a jar packed from its classes folder when it runs from a
     * build tree) and JCuda (GPU detection) into {@code libs}.
     */
    private static List<Path> writeLibs(Path libs) throws IOException {
        Files.createDirectories(libs);
        List<Path> out = new ArrayList<>();
        Path self = codeSource(TaspServingTranslator.class);
        Path selfJar = libs.resolve("tasp-djl.jar");
        if (Files.isDirectory(self)) {
            packJar(self, selfJar);
        } else {
            Files.copy(self, selfJar, StandardCopyOption.REPLACE_EXISTING);
        }
        out.add(selfJar);
        // JCuda (GPU detection) and its natives: the classpath entries named jcuda*.jar
        for (String entry : System.getProperty("java.class.path", "").split(java.io.File.pathSeparator)) {
            Path p = entry.isEmpty() ? null : Path.of(entry);
            String name = p == null || p.getFileName() == null ? "" : p.getFileName().toString();
            if (name.startsWith("jcuda") && name.endsWith(".jar") && Files.isRegularFile(p)) {
                Path target = libs.resolve(name);
                Files.copy(p, target, StandardCopyOption.REPLACE_EXISTING);
                out.add(target);
            }
        }
        return out;
    }

    private static Path codeSource(Class<?> c) throws IOException {
        CodeSource cs = c.getProtectionDomain().getCodeSource();
        if (cs == null) {
            throw new IOException("cannot tell where " + c.getName() + " was loaded from");
        }
        try {
            return Path.of(cs.getLocation().toURI());
        } catch (URISyntaxException e) {
            throw new IOException("bad code source of " + c.getName() + ": " + cs.getLocation(), e);
        }
    }

    private static void packJar(Path classes, Path jar) throws IOException {
        Manifest manifest = new Manifest();
        manifest.getMainAttributes().putValue("Manifest-Version", "1.0");
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar), manifest);
                Stream<Path> files = Files.walk(classes)) {
            // the translator first: DJL's factory loads the jar's classes in entry order until one is a translator
            Path translator = classes.resolve(TaspServingTranslator.class.getName().replace('.', '/') + ".class");
            for (Path p : files.filter(Files::isRegularFile)
                    .sorted(Comparator.comparing((Path p) -> !p.equals(translator)).thenComparing(Path::toString))
                    .toList()) {
                String name = classes.relativize(p).toString().replace(p.getFileSystem().getSeparator(), "/");
                if (name.toLowerCase(Locale.ROOT).equals("meta-inf/manifest.mf")) {
                    continue;
                }
                out.putNextEntry(new JarEntry(name));
                Files.copy(p, out);
                out.closeEntry();
            }
        }
    }
}
