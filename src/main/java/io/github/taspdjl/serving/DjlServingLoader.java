package io.github.taspdjl.serving;

import ai.djl.Device;
import ai.djl.ModelException;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.repository.zoo.Criteria;
import ai.djl.repository.zoo.ZooModel;
import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;

/**
 * Loads a model folder the way DJL Serving's workload manager does (its {@code ModelInfo}, read from
 * its sources): read {@code serving.properties}; keys starting with {@code option.} become options
 * (prefix stripped), the rest arguments; the model is named after the folder; a batch size above 1
 * adds the {@code stack} batchifier argument; one {@code Criteria} with Input/Output types, the
 * folder, the engine, arguments, options and the device entry of {@code load_on_devices}. No
 * translator factory is given, so DJL's {@code ServingTranslatorFactory} looks in {@code libs/}. The
 * tests and {@code tasp serve-bench} load folders through this, so they see what the server would.
 */
public final class DjlServingLoader {

    private DjlServingLoader() {}

    /** Loads {@code dir} as DJL Serving would, on the device its {@code load_on_devices} names. */
    public static ZooModel<Input, Output> load(Path dir) throws IOException, ModelException {
        Properties prop = new Properties();
        try (Reader r = Files.newBufferedReader(dir.resolve("serving.properties"))) {
            prop.load(r);
        }
        Map<String, String> options = new HashMap<>();
        Map<String, Object> arguments = new HashMap<>();
        for (String key : prop.stringPropertyNames()) {
            if (key.startsWith("option.")) {
                options.put(key.substring(7), prop.getProperty(key));
            } else {
                arguments.put(key, prop.getProperty(key));
            }
        }
        Criteria.Builder<Input, Output> builder = Criteria.builder().setTypes(Input.class, Output.class)
                .optModelPath(dir)
                .optModelName(dir.getFileName().toString().replaceAll("(\\W|^_)", "_"))
                .optEngine(prop.getProperty("engine"))
                .optArguments(arguments)
                .optOptions(options);
        if (Integer.parseInt(prop.getProperty("batch_size", "1")) > 1 && !arguments.containsKey("batchifier")) {
            builder.optArgument("batchifier", "stack");
        }
        String devices = prop.getProperty("load_on_devices", "");
        if (devices.contains(";")) {
            throw new IllegalArgumentException("load_on_devices=" + devices + " asks for one model copy per device; "
                    + "a folder of tasp serving-model has one device entry");
        }
        builder.optDevice(Device.fromName(devices));
        return builder.build().loadModel();
    }
}
