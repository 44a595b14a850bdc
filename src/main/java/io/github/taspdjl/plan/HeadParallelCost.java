package io.github.taspdjl.plan;

import java.util.ArrayList;
import java.util.List;

/**
 * {@link CostModel}'s prediction for head-parallel plans ({@link HeadParallel}): three phases that do not
 * overlap. (1) The all-to-all of q, k and v inside every group: rank {@code g*u+j} sends member {@code k}
 * of its group its S/n tokens of k's query heads and of the key/value heads k needs; all groups at once,
 * over the topology's links (streams and ports as for any step). (2) The inner plan over the n/u ranks of
 * a head subset, predicted on that part of the topology with H/u query heads (pure Ulysses: one attention
 * call over the whole sequence, no merge). (3) The all-to-all of the output and its fp32 LSE back.
 */
final class HeadParallelCost {

    private HeadParallelCost() {}

    static CostModel.Prediction predict(CostModel model, Plan plan, ProblemSize p) {
        HeadParallel hp = plan.headParallel();
        hp.requireHeads(p.heads(), p.kvHeads());
        int n = plan.worldSize();
        int u = hp.degree();
        double tokens = (double) p.seqLen() / n;
        int hq = hp.queryHeadsPerMember(p.heads());
        double element = (double) p.batch() * p.headDim() * p.dtypeBytes();
        List<int[]> arcsIn = new ArrayList<>();
        List<int[]> arcsOut = new ArrayList<>();
        List<Double> bytesIn = new ArrayList<>();
        List<Double> bytesOut = new ArrayList<>();
        boolean uniform = true;
        for (int g = 0; g < n / u; g++) {
            for (int j = 0; j < u; j++) {
                for (int k = 0; k < u; k++) {
                    if (j == k) {
                        continue;
                    }
                    int[] kv = hp.kvHeads(k, p.heads(), p.kvHeads());
                    arcsIn.add(new int[] {hp.rank(g, j), hp.rank(g, k)});
                    bytesIn.add(tokens * (hq + 2.0 * (kv[1] - kv[0])) * element);
                    arcsOut.add(new int[] {hp.rank(g, k), hp.rank(g, j)});
                    bytesOut.add(tokens * hq * (element + 4.0 * p.batch()));
                }
            }
        }
        for (int k = 0; k < u; k++) {
            uniform &= hp.uniform(k, p.heads(), p.kvHeads());
        }
        double in = model.transferSeconds(arcsIn, unbox(bytesIn));
        double out = model.transferSeconds(arcsOut, unbox(bytesOut));
        double step = model.parameters().stepSeconds();
        List<CostModel.StepCost> steps = new ArrayList<>();
        steps.add(new CostModel.StepCost(0, in, 0, in + step));
        Plan inner = hp.inner();
        int[] kv0 = hp.kvHeads(0, p.heads(), p.kvHeads());
        ProblemSize innerProblem = new ProblemSize(p.batch(), p.seqLen(), hq, uniform ? kv0[1] - kv0[0] : hq, p.headDim(),
                p.dtypeBytes());
        if (inner.worldSize() == 1) {
            double compute = model.attentionSeconds(model.device(0), innerProblem, p.seqLen(), p.seqLen(), plan.causal());
            steps.add(new CostModel.StepCost(1, 0, compute, compute + step));
        } else {
            int[] members = new int[inner.worldSize()];
            for (int g = 0; g < members.length; g++) {
                members[g] = hp.rank(g, 0);
            }
            CostModel innerModel = new CostModel(model.topology().restrictedTo(members), model.parameters());
            for (CostModel.StepCost s : innerModel.predict(inner, innerProblem).steps()) {
                steps.add(new CostModel.StepCost(steps.size(), s.commSeconds(), s.computeSeconds(), s.seconds()));
            }
        }
        steps.add(new CostModel.StepCost(steps.size(), out, 0, out + step));
        double total = steps.stream().mapToDouble(CostModel.StepCost::seconds).sum();
        return new CostModel.Prediction(plan, p, steps, total);
    }

    private static double[] unbox(List<Double> values) {
        double[] out = new double[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.get(i);
        }
        return out;
    }
}
