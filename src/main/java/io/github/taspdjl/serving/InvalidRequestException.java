package io.github.taspdjl.serving;

/**
 * A request the model cannot answer as asked (bad JSON, bad or missing fields, token ids outside the
 * vocabulary, too long). The served model answers it with code 400 and this message, and keeps
 * serving.
 */
public final class InvalidRequestException extends IllegalArgumentException {

    public InvalidRequestException(String message) {
        super(message);
    }

    public InvalidRequestException(String message, Throwable cause) {
        super(message, cause);
    }
}
