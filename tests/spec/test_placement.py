"""What a job needs of its cluster, and the line it shows while the cluster cannot hold it
(`batchgen.spec.placement`)."""

from __future__ import annotations

from batchgen.spec.job import ScalingSpec
from batchgen.spec.placement import TASK_CPUS, cluster_need, shortfall


def test_a_job_needs_its_replicas_and_the_slots_of_its_tasks_and_checkpoint_filter():
    assert cluster_need(ScalingSpec(replicas=2, gpus_per_replica=0, cpus_per_replica=1)) == {"CPU": 2 + TASK_CPUS}
    assert cluster_need(ScalingSpec(replicas=4, gpus_per_replica=2, cpus_per_replica=8)) == {"CPU": 34, "GPU": 8}


def test_a_cluster_too_small_says_what_the_job_waits_for():
    cpu = ScalingSpec(replicas=2, gpus_per_replica=0, cpus_per_replica=1)
    assert shortfall(cpu, {"CPU": 2.0, "memory": 1e9}) == (
        "waiting for a node with 2 more CPU: the job needs 4 CPU (2 replicas x 1 + 2 for reading, the "
        "checkpoint filter and writing), the cluster has 2 CPU")
    assert shortfall(cpu, {"CPU": 4.0}) == shortfall(cpu, {"CPU": 64.0}) == ""
    gpu = ScalingSpec(replicas=2, gpus_per_replica=0.5, cpus_per_replica=1, )
    assert shortfall(gpu, {"CPU": 16.0}) == ("waiting for a node with 1 more GPU: the job needs 1 GPU "
                                             "(2 replicas x 0.5), the cluster has 0 GPU")
