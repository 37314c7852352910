"""Where a replica runs and how its engine spreads over GPUs: `scaling.gpus_per_replica` becomes vLLM's
tensor parallelism and the Ray resources of the replica's actor. Not yet run on a GPU: every rule below
is taken from vLLM's and Ray's source at the pinned versions (vLLM 0.32/0.33, Ray 2.60) and said where.

- 0 GPUs: a CPU replica; no tensor parallelism.
- 1 GPU: the actor holds the GPU and vLLM runs in it (its default single-process executor).
- N > 1 GPUs: as Ray's own `ray.data.llm` does (`ray/llm/_internal/batch/stages/vllm_engine_stage.py`,
  `post_init` and `_ray_scheduling_strategy_fn`): the actor holds no GPU; each replica gets its own
  placement group of N bundles of one GPU each, packed on as few nodes as possible, and vLLM starts one
  Ray worker per rank inside it (`distributed_executor_backend="ray"`; vLLM finds the group with
  `ray.util.get_current_placement_group()`, `vllm/v1/executor/ray_utils.py`). vLLM's multiprocessing
  executor inside an actor that holds several GPUs is what this avoids.
- A fraction of a GPU: replicas share one, so each engine must be told its share of the GPU's memory
  (`gpu_memory_utilization`, a per-instance limit: `vllm/config/cache.py`), or start-up fails when the
  second engine finds less free memory than its share (`vllm/v1/worker/utils.py`).
"""

from __future__ import annotations

from functools import partial

from batchgen.spec.placement import gpus_of


def engine_args(scaling, engine: dict) -> dict:
    """The engine arguments placement adds to the spec's `engine` (which it never overrides: `check` has
    refused a disagreement)."""
    world = gpus_of(scaling)
    if world <= 1:
        return {}
    pipeline = int(engine.get("pipeline_parallel_size", 1))
    return {"tensor_parallel_size": world // pipeline, "distributed_executor_backend": "ray"}


def ray_args(scaling) -> dict:
    """The Ray resources of a replica's actor, as keyword arguments of Ray Data's `map_batches`."""
    world = gpus_of(scaling)
    if world <= 1:
        return {"num_gpus": scaling.gpus_per_replica, "num_cpus": scaling.cpus_per_replica}
    # Ray 2.60 runs `ray_remote_args_fn` before creating each actor (actor_pool_map_operator.py), so each
    # replica gets a group of its own; Ray marks the argument deprecated for 2.64, which batchgen does not
    # run (Ray is pinned to 2.60).
    return {"num_gpus": 0, "num_cpus": scaling.cpus_per_replica,
            "ray_remote_args_fn": partial(placement_group_strategy, bundles(world, scaling.cpus_per_replica))}


def bundles(world: int, actor_cpus: float) -> list[dict]:
    """One GPU per rank, as `ray.data.llm` shapes them ({"GPU": 1, "CPU": 1}); the first also holds the
    actor's own CPUs, which are taken from the group."""
    return [{"GPU": 1, "CPU": max(1, actor_cpus)}] + [{"GPU": 1, "CPU": 1} for _ in range(world - 1)]


def placement_group_strategy(shape: list[dict]) -> dict:
    """A new placement group for one replica, packed, that the actor and every task it starts (vLLM's
    workers) are scheduled into."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = ray.util.placement_group(shape, strategy="PACK")
    return {"scheduling_strategy": PlacementGroupSchedulingStrategy(group, placement_group_capture_child_tasks=True)}
