package io.github.taspdjl.jni;

/** A failure inside the native library, with its code from {@code native/include/tasp.h}. */
public class TaspNativeException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    /** A libtorch function the library needs is missing from the loaded libtorch. */
    public static final int SYMBOL = 2;
    /** A libtorch call failed (libtorch prints the cause to standard error). */
    public static final int TORCH = 3;
    /** Not initialized, or a CUDA operation on a CPU-only build. */
    public static final int STATE = 4;

    /** The sequence-parallel group failed: a peer timed out or raised (the message says which). */
    public static final int GROUP = 5;

    private final int code;

    public TaspNativeException(int code, String message) {
        super(message);
        this.code = code;
    }

    public TaspNativeException(String message, Throwable cause) {
        super(message, cause);
        this.code = STATE;
    }

    public int code() {
        return code;
    }
}
