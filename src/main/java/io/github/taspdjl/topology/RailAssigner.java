package io.github.taspdjl.topology;

/**
 * Decides which GPU each NIC is nearest to (its rail) from a distance table. Pure.
 *
 * <p>A NIC's rail is the GPU at the smallest distance when that GPU is unique. When several GPUs
 * tie at the smallest distance and that distance is at most {@code shareLimit} (they sit under the
 * same PCIe switch as the NIC), the NIC goes to the tied GPU with the fewest NICs so far, then the
 * lowest index, which spreads NICs over GPUs that share a switch. Otherwise the rail is unknown
 * (null): a NIC that is equally far from several GPUs has no rail.
 */
final class RailAssigner {

    private RailAssigner() {}

    /**
     * @param distance {@code distance[nic][gpu]}, smaller is nearer
     * @param shareLimit the largest distance at which ties are broken instead of giving up
     * @return per NIC, the GPU index or null
     */
    static Integer[] assign(int[][] distance, int shareLimit) {
        Integer[] out = new Integer[distance.length];
        int gpus = distance.length == 0 ? 0 : distance[0].length;
        int[] assigned = new int[gpus];
        for (int nic = 0; nic < distance.length; nic++) {
            int best = Integer.MAX_VALUE;
            int ties = 0;
            for (int g = 0; g < gpus; g++) {
                if (distance[nic][g] < best) {
                    best = distance[nic][g];
                    ties = 1;
                } else if (distance[nic][g] == best) {
                    ties++;
                }
            }
            if (gpus == 0 || (ties > 1 && best > shareLimit)) {
                continue;
            }
            int pick = -1;
            for (int g = 0; g < gpus; g++) {
                if (distance[nic][g] == best && (pick < 0 || assigned[g] < assigned[pick])) {
                    pick = g;
                }
            }
            assigned[pick]++;
            out[nic] = pick;
        }
        return out;
    }
}
