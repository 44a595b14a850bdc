package io.github.taspdjl.plan;

/**
 * The size of one attention problem, for the {@link CostModel}.
 *
 * @param batch batch size
 * @param seqLen full sequence length in tokens (over all ranks)
 * @param heads query heads
 * @param kvHeads key/value heads (grouped-query attention: heads is a multiple of it)
 * @param headDim head dimension
 * @param dtypeBytes bytes per element of the key/values that travel (2 for bf16/fp16, 4 for fp32)
 */
public record ProblemSize(int batch, long seqLen, int heads, int kvHeads, int headDim, int dtypeBytes) {

    public ProblemSize {
        if (batch < 1 || seqLen < 1 || heads < 1 || kvHeads < 1 || headDim < 1 || dtypeBytes < 1) {
            throw new IllegalArgumentException("problem sizes must be positive: batch=" + batch + " seq=" + seqLen
                    + " heads=" + heads + " kvHeads=" + kvHeads + " headDim=" + headDim + " dtypeBytes=" + dtypeBytes);
        }
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("heads " + heads + " is not a multiple of kv heads " + kvHeads);
        }
    }

    /** The same problem at another sequence length. */
    public ProblemSize withSeqLen(long newSeqLen) {
        return new ProblemSize(batch, newSeqLen, heads, kvHeads, headDim, dtypeBytes);
    }

    /** Bytes of keys plus values per token. */
    public double kvBytesPerToken() {
        return 2.0 * batch * kvHeads * headDim * dtypeBytes;
    }
}
