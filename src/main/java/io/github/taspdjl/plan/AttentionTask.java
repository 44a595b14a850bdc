package io.github.taspdjl.plan;

/**
 * One attention call's worth of work (the executor may fuse tasks of one step that share rank, query
 * block and mask and read adjacent key/value data): the rank's queries of block {@code queryBlock} attend
 * to the keys/values of block {@code kvBlock} inside {@code chunk}, read from {@code slot}.
 *
 * @param rank the rank that computes
 * @param queryBlock global index of a block the rank holds (its queries)
 * @param chunk the key/value chunk used
 * @param kvBlock global index of the block of {@code chunk.owner()} whose piece (or whole block, for
 *     {@link ChunkId#WHOLE}) is used
 * @param slot where the chunk is on the rank
 * @param mask {@link Mask#FULL} or {@link Mask#CAUSAL} (diagonal block)
 */
public record AttentionTask(int rank, int queryBlock, ChunkId chunk, int kvBlock, Slot slot, Mask mask) {

    @Override
    public String toString() {
        return "r" + rank + " q" + queryBlock + " x kv" + kvBlock + chunk + "@" + slot + (mask == Mask.CAUSAL ? " causal" : "");
    }
}
