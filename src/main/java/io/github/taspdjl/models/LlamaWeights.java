package io.github.taspdjl.models;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Parameter;
import io.github.taspdjl.jni.NativeOps;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Hugging Face Llama weights in safetensors files, by their usual tensor names ({@code
 * model.embed_tokens.weight}, {@code model.layers.N.self_attn.q_proj.weight}, ..., {@code
 * lm_head.weight}), into a {@link LlamaModel}. Reads with DJL's own safetensors decoder ({@code
 * NDList.decode}); Hugging Face's (out, in) matrices are DJL's {@code Linear} layout, so weights are
 * copied as they are (cast to float32).
 */
public final class LlamaWeights {

    private static final Logger logger = LoggerFactory.getLogger(LlamaWeights.class);

    private LlamaWeights() {}

    /** The model's parameters by Hugging Face tensor name, in the model's order. */
    public static Map<String, Parameter> huggingFaceNames(LlamaModel model) {
        Map<String, Parameter> names = new LinkedHashMap<>();
        names.put("model.embed_tokens.weight", model.getTokenEmbedding());
        for (int i = 0; i < model.getLayers().size(); i++) {
            LlamaDecoderLayer layer = model.getLayers().get(i);
            String p = "model.layers." + i + ".";
            names.put(p + "input_layernorm.weight", layer.getInputNorm().getWeight());
            names.put(p + "self_attn.q_proj.weight", weight(layer.getAttention().getQueryProjection()));
            names.put(p + "self_attn.k_proj.weight", weight(layer.getAttention().getKeyProjection()));
            names.put(p + "self_attn.v_proj.weight", weight(layer.getAttention().getValueProjection()));
            names.put(p + "self_attn.o_proj.weight", weight(layer.getAttention().getResultProjection()));
            names.put(p + "post_attention_layernorm.weight", layer.getPostAttentionNorm().getWeight());
            names.put(p + "mlp.gate_proj.weight", weight(layer.getMlp().getGateProjection()));
            names.put(p + "mlp.up_proj.weight", weight(layer.getMlp().getUpProjection()));
            names.put(p + "mlp.down_proj.weight", weight(layer.getMlp().getDownProjection()));
        }
        names.put("model.norm.weight", model.getFinalNorm().getWeight());
        if (!model.getConfig().tieWordEmbeddings()) {
            names.put("lm_head.weight", model.getLmHead());
        }
        return names;
    }

    private static Parameter weight(ai.djl.nn.Block linear) {
        return linear.getParameters().get("weight");
    }

    /**
     * Loads every tensor of the model from {@code path}: one {@code .safetensors} file, or a folder
     * whose {@code .safetensors} files (a sharded checkpoint) are read in name order. The model is
     * initialized first if it is not. Every expected tensor must be there with the expected shape;
     * tensors the model has no place for are an error too (a different architecture), except the
     * rotary frequencies some checkpoints store ({@code rotary_emb.inv_freq}), which are computed.
     *
     * @throws IllegalArgumentException naming the missing, unexpected or misshapen tensors
     */
    public static void loadSafetensors(LlamaModel model, Path path, NDManager manager) throws IOException {
        if (!model.isInitialized()) {
            model.initialize(manager);
        }
        Map<String, Parameter> expected = huggingFaceNames(model);
        TreeSet<String> missing = new TreeSet<>(expected.keySet());
        List<String> unexpected = new ArrayList<>();
        for (Path file : files(path)) {
            try (NDManager scratch = manager.newSubManager(); InputStream in = Files.newInputStream(file)) {
                NDList tensors = NDList.decode(scratch, in);
                for (NDArray t : tensors) {
                    String name = t.getName();
                    Parameter p = expected.get(name);
                    if (p == null) {
                        if (name == null || !name.endsWith("rotary_emb.inv_freq")) {
                            unexpected.add(name + " (in " + file.getFileName() + ")");
                        }
                        continue;
                    }
                    NDArray target = p.getArray();
                    if (!t.getShape().equals(target.getShape())) {
                        throw new IllegalArgumentException("tensor " + name + " in " + file.getFileName() + " has shape "
                                + t.getShape() + "; this model's config needs " + target.getShape());
                    }
                    NDArray value = NativeOps.dataType(t) == DataType.FLOAT32 ? t : NativeOps.cast(t, DataType.FLOAT32);
                    value.toDevice(target.getDevice(), false).copyTo(target);
                    missing.remove(name);
                }
            }
        }
        if (!unexpected.isEmpty()) {
            throw new IllegalArgumentException("tensors this Llama model has no place for: " + unexpected
                    + " (a different architecture, or a config that does not match the checkpoint?)");
        }
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException("tensors missing from " + path + ": " + missing);
        }
        logger.debug("loaded {} Llama tensors from {}", expected.size(), path);
    }

    private static List<Path> files(Path path) throws IOException {
        if (!Files.isDirectory(path)) {
            if (!Files.isRegularFile(path)) {
                throw new IllegalArgumentException("no safetensors file or folder at " + path);
            }
            return List.of(path);
        }
        try (Stream<Path> s = Files.list(path)) {
            List<Path> files = s.filter(f -> f.getFileName().toString().endsWith(".safetensors")).sorted().toList();
            if (files.isEmpty()) {
                throw new IllegalArgumentException("no .safetensors files in " + path);
            }
            return files;
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }
}
