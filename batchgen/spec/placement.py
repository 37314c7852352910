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
