package io.github.taspdjl.plan;

import java.util.List;

/**
 * One step of a plan. The executor posts all of a step's sends and receives as one group and runs the
 * step's attention tasks at the same time; tasks only read data that was there before the step began
 * (the local shard, or chunks received in earlier steps), so transfers of step {@code t} overlap with the
 * compute on what step {@code t-1} received. A step ends when both are done.
 *
 * @param index step number, from 0
 * @param transfers the transfers of the step
 * @param compute the attention tasks of the step
 */
public record Step(int index, List<Transfer> transfers, List<AttentionTask> compute) {

    public Step {
        transfers = List.copyOf(transfers);
        compute = List.copyOf(compute);
    }
}
