package io.github.taspdjl;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;

/** Comparisons of NDArrays for tests, computed in float64. */
public final class NDAsserts {

    private NDAsserts() {}

    /** Max absolute difference at most {@code tolerance}. */
    public static void assertClose(NDArray actual, NDArray expected, double tolerance, String what) {
        NDArray a = actual.toType(DataType.FLOAT64, false);
        NDArray e = expected.toType(DataType.FLOAT64, false);
        assertEquals(a.getShape(), e.getShape(), what + " shape");
        double err = a.sub(e).abs().max().getDouble();
        assertTrue(err <= tolerance, what + ": max abs error " + err + " > " + tolerance);
    }

    /** Max absolute difference over max absolute expected value at most {@code tolerance}. */
    public static void assertRelative(NDArray actual, NDArray expected, double tolerance, String what) {
        NDArray a = actual.toType(DataType.FLOAT64, false);
        NDArray e = expected.toType(DataType.FLOAT64, false);
        assertEquals(a.getShape(), e.getShape(), what + " shape");
        double err = a.sub(e).abs().max().getDouble() / Math.max(e.abs().max().getDouble(), 1e-30);
        assertTrue(err <= tolerance, what + ": relative error " + err + " > " + tolerance);
    }
}
