package io.github.taspdjl.plan;

/**
 * One chunk moving over the arc {@code src -> dst} in one step: the sender's send (from {@code sendSlot})
 * paired with the receiver's receive (into {@code recvSlot}). A plan read back from the flat form may hold
 * a send without a receive ({@code recvSlot == null}) or a receive without a send ({@code sendSlot == null});
 * the {@link PlanValidator} rejects both.
 *
 * @param src sending rank
 * @param dst receiving rank
 * @param chunk the chunk that travels
 * @param sendSlot where the sender reads it, or null when no rank sends it
 * @param recvSlot where the receiver puts it, or null when no rank receives it
 */
public record Transfer(int src, int dst, ChunkId chunk, Slot sendSlot, Slot recvSlot) {

    @Override
    public String toString() {
        return src + "->" + dst + " " + chunk + " " + sendSlot + "=>" + recvSlot;
    }
}
