"""The spec's placement rules: which `scaling.gpus_per_replica` and `engine` parallelism settings can run
together, checked when the spec is loaded (pure: no Ray, no vLLM). How a valid setting becomes engine
arguments and Ray resources is `batchgen.engine.placement`'s; the sources of each rule are cited there.
"""

from __future__ import annotations


def gpus_of(scaling) -> int:
    """The GPUs a replica's engine spans (its tensor-parallel world): 0 on CPU, 1 for a fraction."""
    return 0 if scaling.gpus_per_replica == 0 else max(1, int(scaling.gpus_per_replica))


def check(scaling, engine: dict) -> None:
    """The spec's placement rules; raises ValueError naming the keys (the spec's cross-field check)."""
    gpus, tensor_parallel = scaling.gpus_per_replica, engine.get("tensor_parallel_size")
    if gpus > 1 and gpus != int(gpus):
        raise ValueError(f"scaling.gpus_per_replica: more than one GPU must be a whole number, got {gpus}")
    if 0 < gpus < 1:
        share = engine.get("gpu_memory_utilization")
        if share is None and engine.get("kv_cache_memory_bytes") is None:
            raise ValueError(
                f"scaling.gpus_per_replica {gpus} shares a GPU between replicas: set engine.gpu_memory_utilization "
                f"below {gpus} (e.g. {round(gpus * 0.85, 2)}) so each engine takes only its share of the GPU's memory")
        if share is not None and share >= gpus:
            raise ValueError(f"engine.gpu_memory_utilization {share} must be below scaling.gpus_per_replica {gpus}: "
                             "each engine takes that share of the whole GPU's memory")
    pipeline = int(engine.get("pipeline_parallel_size", 1))
    if tensor_parallel is not None and int(tensor_parallel) * pipeline != gpus_of(scaling) and gpus >= 1:
        raise ValueError(
            f"engine.tensor_parallel_size {tensor_parallel} (x pipeline_parallel_size {pipeline}) disagrees with "
            f"scaling.gpus_per_replica {gpus}: set only scaling.gpus_per_replica, it sets the tensor parallelism")
    if gpus == 0 and tensor_parallel not in (None, 1):
        raise ValueError(f"engine.tensor_parallel_size {tensor_parallel} needs GPUs: scaling.gpus_per_replica is 0")


# CPU slots a job holds beside its replicas: Ray Data's checkpoint filter (an actor of one CPU on every
# resumed pass, `ray/data/_internal/planner/checkpoint/plan_read_op.py`) and one for the reader, repartition
# and writer tasks. With fewer, a pass's tasks wait for slots its actors hold, forever.
TASK_CPUS = 2


def cluster_need(scaling) -> dict[str, float]:
    """The Ray resources a job needs in the whole cluster at once: its replicas' and `TASK_CPUS`."""
    need = {"CPU": scaling.replicas * scaling.cpus_per_replica + TASK_CPUS}
    if scaling.gpus_per_replica:
        need["GPU"] = scaling.replicas * scaling.gpus_per_replica
    return need


def shortfall(scaling, cluster: dict[str, float]) -> str:
    """What the job waits for, given the cluster's total resources (`ray.cluster_resources()`, live nodes
    only), or "" when the cluster can hold it: `waiting for a node with 2 more CPU: the job needs 4 CPU
    (2 replicas x 1 + 2 for reading, the checkpoint filter and writing), the cluster has 2 CPU`."""
    need = cluster_need(scaling)
    short = [kind for kind in need if cluster.get(kind, 0) < need[kind]]
    if not short:
        return ""
    per = {"CPU": f"{scaling.replicas} replicas x {scaling.cpus_per_replica:g} + {TASK_CPUS} for reading, the "
                  "checkpoint filter and writing",
           "GPU": f"{scaling.replicas} replicas x {scaling.gpus_per_replica:g}"}
    more = " and ".join(f"{need[k] - cluster.get(k, 0):g} more {k}" for k in short)
    needs = " and ".join(f"{need[k]:g} {k} ({per[k]})" for k in short)
    has = " and ".join(f"{cluster.get(k, 0):g} {k}" for k in short)
    return f"waiting for a node with {more}: the job needs {needs}, the cluster has {has}"
