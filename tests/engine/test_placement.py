"""How `scaling.gpus_per_replica` places a replica (pure: the spec's rules, the engine's and Ray's
arguments built; no GPU here, so nothing is started on one; the placement group itself is made on a real
Ray in test_pipeline)."""

from __future__ import annotations

import pytest

from batchgen.engine import placement
from batchgen.spec.job import SpecError, parse_spec


def spec(gpus, engine=None, cpus=1):
    return parse_spec({"name": "p", "model": {"path": "toy:nemotron-h"}, "engine": engine or {},
                       "input": {"uri": "in.jsonl"}, "output": {"uri": "out/"},
                       "scaling": {"gpus_per_replica": gpus, "cpus_per_replica": cpus}})


@pytest.mark.parametrize("gpus, engine, message", [
    (0.5, {}, "scaling.gpus_per_replica 0.5 shares a GPU between replicas: set engine.gpu_memory_utilization "
              "below 0.5 (e.g. 0.42)"),
    (0.5, {"gpu_memory_utilization": 0.5}, "engine.gpu_memory_utilization 0.5 must be below scaling.gpus_per_replica 0.5"),
    (1.5, {}, "scaling.gpus_per_replica: more than one GPU must be a whole number, got 1.5"),
    (2, {"tensor_parallel_size": 4}, "engine.tensor_parallel_size 4 (x pipeline_parallel_size 1) disagrees with "
                                     "scaling.gpus_per_replica 2"),
    (1, {"tensor_parallel_size": 2}, "disagrees with scaling.gpus_per_replica 1"),
    (0, {"tensor_parallel_size": 2}, "engine.tensor_parallel_size 2 needs GPUs: scaling.gpus_per_replica is 0"),
])
def test_placements_that_cannot_work_are_refused_naming_the_keys(gpus, engine, message):
    with pytest.raises(SpecError) as refused:
        spec(gpus, engine)
    assert message in str(refused.value) and not str(refused.value).startswith(("(top level)", "Value error"))


def test_one_gpu_or_none_runs_the_engine_in_the_actor():
    for gpus in (0, 1):
        scaling = spec(gpus).scaling
        assert placement.engine_args(scaling, {}) == {}
        assert placement.ray_args(scaling) == {"num_gpus": gpus, "num_cpus": 1}
    shared = spec(0.5, {"gpu_memory_utilization": 0.42}).scaling
    assert placement.ray_args(shared) == {"num_gpus": 0.5, "num_cpus": 1} and placement.engine_args(shared, {}) == {}


def test_several_gpus_are_tensor_parallel_ranks_in_a_placement_group_per_replica():
    scaling = spec(4, cpus=2).scaling
    assert placement.engine_args(scaling, {}) == {"tensor_parallel_size": 4, "distributed_executor_backend": "ray"}
    assert placement.engine_args(scaling, {"pipeline_parallel_size": 2}) == \
        {"tensor_parallel_size": 2, "distributed_executor_backend": "ray"}
    args = placement.ray_args(scaling)
    assert args["num_gpus"] == 0 and args["num_cpus"] == 2  # the actor holds no GPU: vLLM's workers do
    assert args["ray_remote_args_fn"].func is placement.placement_group_strategy
    assert args["ray_remote_args_fn"].args == ([{"GPU": 1, "CPU": 2}] + [{"GPU": 1, "CPU": 1}] * 3,)
    assert spec(2, {"tensor_parallel_size": 2}).engine["tensor_parallel_size"] == 2  # agreeing is fine
