"""A raw record to what the engine runs, without an engine: `RecordPreparer` normalizes a record
(`record.contract`), builds its prompt, sampling values and budget plan (`record.prompting`) and turns what
cannot run into the record's error row. `batchgen validate`, the replica and the benchmarks all prepare
records through it, so they see the very same prompts. Imports no vLLM.
"""

from __future__ import annotations

from batchgen.engine.models import context_length, load_tokenizer, profile_for, resolve_path
from batchgen.record.budget import BudgetSpec
from batchgen.record.contract import RecordError, RecordFields, normalize
from batchgen.record.profiles import ReasoningProfile
from batchgen.record.prompting import EngineInput, PromptBuilder
from batchgen.record.rows import error_row
from batchgen.spec.job import ModelSpec

NO_BUDGET_PROCESSOR = RecordError(
    "invalid_value", "max_thinking_tokens: this replica was started without budgets (Replica(..., budget_processor=True))")


class RecordPreparer:
    """Prepares the records of one model: `build` gives a record's `EngineInput` or `RecordError`,
    `prepare` its `EngineInput` or error row. Not thread-safe: a Hugging Face tokenizer used from several
    threads at once can fail ("Already borrowed"), so callers prepare one at a time.

    `model_name`: the rows' `model` column; `tokenizer`: the model's Hugging Face tokenizer; `profile`: its
    reasoning profile; `budget`: the job's budget section; `defaults`: the job's record defaults;
    `max_model_len`: the engine's context in tokens (prompt plus generation); `budget_processor`: whether the
    engine registered the thinking-budget logits processor (without it, a record with a budget cannot run).
    Raises ValueError when the budget's closing texts lack the profile's end-of-thinking token."""

    def __init__(self, model_name: str, tokenizer, profile: ReasoningProfile, max_model_len: int,
                 budget: BudgetSpec | None = None, defaults: RecordFields | None = None, budget_processor: bool = True):
        self.model_name = model_name
        self.tokenizer = tokenizer
        self.profile = profile
        self.defaults = defaults or RecordFields()
        self.budget_processor = budget_processor
        self.prompts = PromptBuilder(tokenizer, profile, budget or BudgetSpec(), max_model_len)

    @classmethod
    def for_model(cls, model: ModelSpec, engine: dict | None = None, budget: BudgetSpec | None = None,
                  defaults: RecordFields | None = None, max_model_len: int | None = None,
                  budget_processor: bool = True) -> RecordPreparer:
        """The preparer of `model` (its tokenizer, `models.load_tokenizer`, and its reasoning profile,
        `models.profile_for`), for callers without an engine (`validate`, the benchmarks). `max_model_len` is the running engine's; without one, the context the job's
        `engine` section would give an engine (`models.context_length`: its `max_model_len`, else the
        model's config). Raises what loading the tokenizer or config raises (OSError for a missing model)."""
        path = resolve_path(model.path)
        tokenizer = load_tokenizer(model, path)
        if max_model_len is None:
            max_model_len = context_length(model, path, engine or {})
        return cls(model.path, tokenizer, profile_for(model, tokenizer), max_model_len, budget, defaults, budget_processor)

    def build(self, raw: dict | RecordError, rid: str) -> EngineInput | RecordError:
        """A raw record (a JSON object's fields, or the `RecordError` of a line that did not decode) as the
        engine runs it, or why it cannot run: the codes of `contract.normalize` (`invalid_type`,
        `missing_prompt`, ...: the message names the field) and of `PromptBuilder.build` (`prompt_too_long`,
        ...). `rid`: the record's row id (`core.identity`)."""
        request = raw if isinstance(raw, RecordError) else normalize(raw, self.defaults, row_id=rid)
        return request if isinstance(request, RecordError) else self.prompts.build(request)

    def prepare(self, raw: dict, rid: str) -> EngineInput | dict:
        """A raw record's `EngineInput`, or its error row (`rows.error_row`, `sample_index` null): the errors
        of `build`, and `invalid_value` for a record with a thinking budget when the engine has no budget
        processor (a caller outside a job, whose scan registers it whenever a record sets a budget)."""
        prepared = self.build(raw, rid)
        if isinstance(prepared, RecordError):
            return error_row(rid, self.model_name, prepared)
        if prepared.budget and not self.budget_processor:
            return error_row(rid, self.model_name, NO_BUDGET_PROCESSOR, prepared.mode, len(prepared.prompt_ids))
        return prepared
