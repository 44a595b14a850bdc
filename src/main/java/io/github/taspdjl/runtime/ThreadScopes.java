package io.github.taspdjl.runtime;

import java.util.concurrent.Callable;

/** Runs code with a thread-local set to a value, restoring what it held before. */
final class ThreadScopes {

    private ThreadScopes() {}

    static <V, T> T with(ThreadLocal<V> local, V value, Callable<T> body) throws Exception {
        V previous = local.get();
        local.set(value);
        try {
            return body.call();
        } finally {
            if (previous == null) {
                local.remove();
            } else {
                local.set(previous);
            }
        }
    }
}
