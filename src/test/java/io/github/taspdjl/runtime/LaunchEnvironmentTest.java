package io.github.taspdjl.runtime;

import static org.testng.Assert.assertEquals;
import static org.testng.Assert.assertTrue;
import static org.testng.Assert.expectThrows;

import java.util.HashMap;
import java.util.Map;
import org.testng.annotations.Test;

/** Reading a rank's place in the job from what torchrun, mpirun and srun set. */
public class LaunchEnvironmentTest {

    @Test
    public void torchrunVariables() {
        Map<String, String> env = LaunchEnvironment.torchrunVariables(5, 8, 1, 4, "10.1.2.3", 29999);
        LaunchEnvironment e = LaunchEnvironment.detect(env).orElseThrow();
        assertEquals(e, new LaunchEnvironment("torchrun", 5, 8, 1, 4, "10.1.2.3", 29999));
        assertEquals(e.nodes(), 2);
    }

    @Test
    public void underTorchrunsAgentStoreTheRendezvousTakesTheNextPort() {
        Map<String, String> env = new HashMap<>(LaunchEnvironment.torchrunVariables(0, 2, 0, 2, "127.0.0.1", 29500));
        env.put("TORCHELASTIC_USE_AGENT_STORE", "True");
        assertEquals(LaunchEnvironment.detect(env).orElseThrow().masterPort(), 29501);
        env.put("TASP_MASTER_PORT", "31000");
        assertEquals(LaunchEnvironment.detect(env).orElseThrow().masterPort(), 31000);
    }

    @Test
    public void torchrunWithoutLocalVariablesIsOneNode() {
        Map<String, String> env = Map.of("RANK", "2", "WORLD_SIZE", "3", "MASTER_ADDR", "127.0.0.1");
        LaunchEnvironment e = LaunchEnvironment.detect(env).orElseThrow();
        assertEquals(e.localRank(), 2);
        assertEquals(e.localWorldSize(), 3);
        assertEquals(e.masterPort(), LaunchEnvironment.DEFAULT_PORT);
    }

    @Test
    public void openMpiOnOneNodeMeetsOnLoopback() {
        Map<String, String> env = Map.of("OMPI_COMM_WORLD_RANK", "3", "OMPI_COMM_WORLD_SIZE", "4",
                "OMPI_COMM_WORLD_LOCAL_RANK", "3", "OMPI_COMM_WORLD_LOCAL_SIZE", "4");
        assertEquals(LaunchEnvironment.detect(env).orElseThrow(),
                new LaunchEnvironment("mpirun", 3, 4, 3, 4, "127.0.0.1", 29500));
    }

    @Test
    public void openMpiOverNodesNeedsMasterAddr() {
        Map<String, String> env = new HashMap<>(Map.of("OMPI_COMM_WORLD_RANK", "9", "OMPI_COMM_WORLD_SIZE", "16",
                "OMPI_COMM_WORLD_LOCAL_RANK", "1", "OMPI_COMM_WORLD_LOCAL_SIZE", "8"));
        IllegalArgumentException ex = expectThrows(IllegalArgumentException.class, () -> LaunchEnvironment.detect(env));
        assertTrue(ex.getMessage().contains("MASTER_ADDR"), ex.getMessage());
        env.put("MASTER_ADDR", "node1");
        env.put("MASTER_PORT", "1234");
        LaunchEnvironment e = LaunchEnvironment.detect(env).orElseThrow();
        assertEquals(e.masterAddr(), "node1");
        assertEquals(e.nodes(), 2);
    }

    @Test
    public void slurmUsesTheFirstNodeOfTheJob() {
        Map<String, String> env = Map.of("SLURM_PROCID", "13", "SLURM_NTASKS", "16", "SLURM_LOCALID", "5",
                "SLURM_NODEID", "1", "SLURM_TASKS_PER_NODE", "8(x2)", "SLURM_NODELIST", "gpu[007-008]");
        assertEquals(LaunchEnvironment.detect(env).orElseThrow(),
                new LaunchEnvironment("srun", 13, 16, 5, 8, "gpu007", 29500));
    }

    @Test
    public void slurmUnevenTasksPerNode() {
        Map<String, String> env = Map.of("SLURM_PROCID", "8", "SLURM_NTASKS", "11", "SLURM_LOCALID", "0",
                "SLURM_NODEID", "2", "SLURM_TASKS_PER_NODE", "4(x2),3", "SLURM_NODELIST", "a,b,c",
                "MASTER_ADDR", "b");
        LaunchEnvironment e = LaunchEnvironment.detect(env).orElseThrow();
        assertEquals(e.localWorldSize(), 3);
        assertEquals(e.masterAddr(), "b");
    }

    @Test
    public void slurmHostLists() {
        assertEquals(LaunchEnvironment.firstHost("gpu[07-09,12],login1"), "gpu07");
        assertEquals(LaunchEnvironment.firstHost("login1,gpu[07-09]"), "login1");
        assertEquals(LaunchEnvironment.firstHost("node5"), "node5");
        assertEquals(LaunchEnvironment.firstHost("rack1-n[3,5]"), "rack1-n3");
        expectThrows(IllegalArgumentException.class, () -> LaunchEnvironment.firstHost("gpu[07-09"));
    }

    @Test
    public void torchrunWinsOverTheSchedulersVariables() {
        Map<String, String> env = new HashMap<>(LaunchEnvironment.torchrunVariables(1, 2, 1, 2, "127.0.0.1", 4000));
        env.put("SLURM_PROCID", "0");
        env.put("SLURM_NTASKS", "1");
        assertEquals(LaunchEnvironment.detect(env).orElseThrow().launcher(), "torchrun");
    }

    @Test
    public void noLauncherNoEnvironment() {
        assertTrue(LaunchEnvironment.detect(Map.of("PATH", "/bin")).isEmpty());
    }

    @Test
    public void malformedVariablesAreNamed() {
        IllegalArgumentException a = expectThrows(IllegalArgumentException.class, () -> LaunchEnvironment.detect(
                Map.of("RANK", "one", "WORLD_SIZE", "2", "MASTER_ADDR", "h")));
        assertTrue(a.getMessage().contains("RANK='one'"), a.getMessage());
        IllegalArgumentException b = expectThrows(IllegalArgumentException.class, () -> LaunchEnvironment.detect(
                Map.of("RANK", "2", "WORLD_SIZE", "2", "MASTER_ADDR", "h")));
        assertTrue(b.getMessage().contains("rank 2 outside a world of 2"), b.getMessage());
        IllegalArgumentException c = expectThrows(IllegalArgumentException.class, () -> LaunchEnvironment.detect(
                Map.of("RANK", "0", "WORLD_SIZE", "2")));
        assertTrue(c.getMessage().contains("MASTER_ADDR"), c.getMessage());
        IllegalArgumentException d = expectThrows(IllegalArgumentException.class, () -> LaunchEnvironment.detect(
                Map.of("RANK", "0", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "70000")));
        assertTrue(d.getMessage().contains("70000"), d.getMessage());
    }
}
