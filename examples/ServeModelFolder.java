import ai.djl.inference.Predictor;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.repository.zoo.ZooModel;
import io.github.taspdjl.models.LlamaConfig;
import io.github.taspdjl.plan.Strategy;
import io.github.taspdjl.serving.DjlServingLoader;
import io.github.taspdjl.serving.ServedModelConfig;
import io.github.taspdjl.serving.ServingFolder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Loads a folder written by {@code bin/tasp serving-model DIR} the way DJL Serving's workload manager
 * loads it and asks for the five most likely tokens after a prompt (without an argument it writes a
 * fresh folder of random parameters first, in a temporary directory). Run from the repository root
 * after {@code mvn -B -DskipTests package}:
 *
 * <pre>
 * bin/tasp serving-model /tmp/tasp-lm
 * java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/ServeModelFolder.java /tmp/tasp-lm
 * </pre>
 */
public final class ServeModelFolder {

    public static void main(String[] args) throws Exception {
        // without an argument: a fresh folder of random parameters, as bin/tasp serving-model writes it
        Path folder = args.length > 0 ? Path.of(args[0]) : Files.createTempDirectory("tasp-lm");
        if (args.length == 0) {
            // a small Llama-style decoder: vocabulary 256, hidden 64, 2 layers, 4 heads over 2 key/value heads
            ServedModelConfig config = new ServedModelConfig(
                    new LlamaConfig(256, 64, 128, 2, 4, 2, 10_000, 1e-5, true), 32_768);
            ServingFolder.write(folder, new ServingFolder.Spec(config, null, 2026, 8, false, 2048, 60_000, Strategy.TASP));
        }
        try (ZooModel<Input, Output> model = DjlServingLoader.load(folder);
                Predictor<Input, Output> predictor = model.newPredictor()) {
            Input request = new Input();
            request.add("{\"tokens\": [17, 4, 99, 250, 3], \"top_k\": 5}");
            Output answer = predictor.predict(request);
            System.out.println(answer.getCode() + " " + answer.getData().getAsString());
        }
    }
}
