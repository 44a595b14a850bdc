import ai.djl.inference.Predictor;
import ai.djl.modality.Input;
import ai.djl.modality.Output;
import ai.djl.repository.zoo.ZooModel;
import io.github.taspdjl.serving.DjlServingLoader;
import java.nio.file.Path;

/**
 * Loads a folder written by {@code bin/tasp serving-model DIR} the way DJL Serving's workload manager
 * loads it and asks for the five most likely tokens after a prompt. Run from the repository root
 * after {@code mvn -B -DskipTests package}:
 *
 * <pre>
 * bin/tasp serving-model /tmp/tasp-lm
 * java -Dai.djl.offline=true -cp "target/tasp-djl-0.1.0-SNAPSHOT.jar:target/lib/*" examples/ServeModelFolder.java /tmp/tasp-lm
 * </pre>
 */
public final class ServeModelFolder {

    public static void main(String[] args) throws Exception {
        Path folder = Path.of(args.length > 0 ? args[0] : "/tmp/tasp-lm");
        try (ZooModel<Input, Output> model = DjlServingLoader.load(folder);
                Predictor<Input, Output> predictor = model.newPredictor()) {
            Input request = new Input();
            request.add("{\"tokens\": [17, 4, 99, 250, 3], \"top_k\": 5}");
            Output answer = predictor.predict(request);
            System.out.println(answer.getCode() + " " + answer.getData().getAsString());
        }
    }
}
