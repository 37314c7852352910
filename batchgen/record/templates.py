"""Prompt templates: a table's row (its own columns) made into a record of the input contract (pure logic).

A job's `prompt` section (`batchgen.spec.job.PromptSpec`) names Jinja2 templates over a row's columns: a
user turn with an optional system turn, or a whole list of turns; few-shot examples rendered as user and
assistant turns before the row's own; contract fields (`max_thinking_tokens`, `reasoning`, ...) taken from
columns. `PromptPlan` is that section resolved (template files read, example rows loaded: JSON-able, so
Ray actors get it as a constructor argument) and `Renderer` applies it to one row at a time.

The rules, each one a user would otherwise find out the hard way:
- A template that fails on a row's values in any other way (a filter given the wrong type, a division by
  zero, the sandbox refusing an attribute) is the row's `template_error`.
- Templates run in Jinja2's sandbox (a template from a shared file cannot reach Python's internals) with
  `StrictUndefined`: a name the row lacks is the row's `missing_field` error, never an empty string in the
  prompt. A null value counts as missing (a lake table's null is "no value"); a template may test for it
  with `{% if context is defined %}` or give a fallback with `{{ context | default("none") }}`.
- `trim_blocks` and `lstrip_blocks` are on, as in Hugging Face's chat templates, so `{% if %}` lines in a
  YAML block do not leave blank lines in the prompt.
- With k examples drawn per record, the draw is seeded by the job's seed and the record's id (`_sample`),
  so a rerun or a resumed job shows each record the same examples; an example
  that is the record itself (the same id, or the same rendered user turn) is never shown to it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import concat

from batchgen.record.contract import RecordError, id_text

_UNDEFINED = re.compile(r"'([^']+)' is undefined")


class TemplateError(ValueError):
    """A template that does not compile, or an example that does not render: the message names the
    template and the line."""


_ENVIRONMENT = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, trim_blocks=True,
                                             lstrip_blocks=True, keep_trailing_newline=False, autoescape=False)


def compile_template(text: str, name: str) -> jinja2.Template:
    """`text` compiled; raises TemplateError naming `name` (`prompt.user`) and the line."""
    try:
        return _ENVIRONMENT.from_string(text)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"{name}: line {error.lineno}: {error.message}") from None


@dataclass(frozen=True)
class PromptPlan:
    """A resolved `prompt` section. `turns`: (role, template text) in order, the row's own turns;
    `fields`: contract field -> the column it is taken from; `examples`: few-shot example rows (JSON
    values), shown with `example_turns` ((role, template) pairs, usually a user and an assistant turn);
    `k`: examples drawn per record (None: every example, in file order); `seed`: the job's seed;
    `example_id`: the examples' column compared with a record's id."""

    turns: tuple[tuple[str, str], ...]
    fields: dict[str, str] = field(default_factory=dict)
    examples: tuple[dict, ...] = ()
    example_turns: tuple[tuple[str, str], ...] = ()
    k: int | None = None
    seed: int = 0
    example_id: str = "id"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> PromptPlan:
        return cls(turns=tuple(map(tuple, data["turns"])), fields=data["fields"], examples=tuple(data["examples"]),
                   example_turns=tuple(map(tuple, data["example_turns"])), k=data["k"], seed=data["seed"],
                   example_id=data["example_id"])

    def identity(self) -> dict:
        """What makes two plans render differently (the output's fingerprint takes it): the templates, the
        fields, a digest of the examples, and their draw."""
        examples = hashlib.sha256(json.dumps(self.examples, sort_keys=True, default=str).encode()).hexdigest()[:16]
        identity = {"turns": self.turns, "fields": self.fields, "example_turns": self.example_turns,
                    "examples": examples if self.examples else None, "k": self.k, "example_id": self.example_id}
        return json.loads(json.dumps(identity))  # as `_job.json` gives it back: lists, not tuples


def _present(row: dict) -> dict:
    """The row's values a template can see: null is no value."""
    return {k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and v != v)}


def _missing(error: jinja2.UndefinedError, template: str, row: dict) -> RecordError:
    has = ", ".join(sorted(row)) or "no values"
    found = _UNDEFINED.search(error.message or "")
    if found:
        return RecordError("missing_field", f"the {template} template needs {found.group(1)!r}; this record has {has}")
    return RecordError("missing_field", f"the {template} template: {error.message}; this record has {has}")


class Renderer:
    """Applies a `PromptPlan` to rows. Compiling the templates and rendering the examples happen once,
    here; raises TemplateError for a template that does not compile or an example that does not render."""

    def __init__(self, plan: PromptPlan):
        self.plan = plan
        self._turns = [(role, compile_template(text, f"prompt.{name}"), name)
                       for (role, text), name in zip(plan.turns, turn_names(plan.turns))]
        example_turns = [(role, compile_template(text, f"prompt.examples.{role}")) for role, text in plan.example_turns]
        self._examples = []  # (id, rendered turns)
        for number, example in enumerate(plan.examples, start=1):
            eid = id_text(example.get(plan.example_id))
            values = _present(example) | ({"id": eid} if eid is not None else {})  # as a record's templates see it
            try:
                turns = [{"role": role, "content": t.render(values)} for role, t in example_turns]
            except jinja2.UndefinedError as error:
                raise TemplateError(f"prompt.examples: example {number}: {_missing(error, 'example', values).message}") from None
            except Exception as error:  # a filter given the wrong type, the sandbox: the example's, named
                raise TemplateError(f"prompt.examples: example {number}: {type(error).__name__}: {error}") from None
            self._examples.append((eid, turns))
        # Which examples a record must not see: those with its id, and those whose user turn is its own
        # (spaces at either end do not make another question).
        self._by_id: dict[str, set[int]] = {}
        self._by_user: dict[str, set[int]] = {}
        for i, (eid, turns) in enumerate(self._examples):
            self._by_id.setdefault(eid, set()).add(i)
            user = next((t["content"].strip() for t in turns if t["role"] == "user"), None)
            self._by_user.setdefault(user, set()).add(i)
        self._globals = dict(_ENVIRONMENT.globals)

    def render(self, row: dict, rid: str) -> dict | RecordError:
        """A raw record of the input contract (`messages`, and the plan's `fields` from their columns) for
        one row (its columns' values, JSON or Arrow's Python values); `rid`: its row id, which templates
        see as `id` (a column named `id` is where the row id came from, or is not read). A name the templates need that the row lacks or
        holds null is the `missing_field` error naming the template and the row's columns."""
        values = _present(row)
        values["id"] = rid  # the row id, whichever column it came from (`input.id_column`)
        # One context for all of a row's turns: making a Jinja2 context is most of a render's cost, and the
        # turns are templates of one environment without blocks. Its globals (range, namespace, ...) as
        # `Template.render` gives them; a column of the same name wins.
        context = self._turns[0][1].new_context({**self._globals, **values}, shared=True)
        messages = []
        for role, template, name in self._turns:
            try:
                messages.append({"role": role, "content": concat(template.root_render_func(context))})
            except jinja2.UndefinedError as error:
                return _missing(error, name, {k: v for k, v in values.items() if k != "id"})
            except Exception as error:  # a template's own failure on this row's values (a filter, a division, the sandbox)
                return RecordError("template_error", f"the {name} template: {type(error).__name__}: {error}")
        if self._examples:
            user = next((m["content"].strip() for m in messages if m["role"] == "user"), None)
            shown = [turn for i in self._draw(rid, row, user) for turn in self._examples[i][1]]
            lead = next((i for i, m in enumerate(messages) if m["role"] != "system"), len(messages))
            messages[lead:lead] = shown
        record = {"messages": messages}
        for name, column in self.plan.fields.items():
            if row.get(column) is not None:
                record[name] = row[column]
        return record

    def _draw(self, rid: str, row: dict, user: str | None) -> list[int]:
        """The examples shown to a record (indices): every one, or `k` drawn by a seeded generator; never
        the record itself."""
        own = id_text(row.get(self.plan.example_id)) or rid
        excluded = self._by_id.get(own, set()) | self._by_user.get(user, set())
        eligible = [i for i in range(len(self._examples)) if i not in excluded]
        if self.plan.k is None or self.plan.k >= len(eligible):
            return eligible
        return _sample(eligible, self.plan.k, f"{self.plan.seed}\x00examples\x00{rid}".encode())


def _sample(items: list[int], k: int, key: bytes) -> list[int]:
    """`k` of `items`, drawn by a partial Fisher-Yates shuffle driven by BLAKE2b of `key`. Not
    `random.Random(seed).sample`: seeding a Mersenne Twister costs more than the rest of a row's rendering,
    and Python does not promise that `sample` draws the same across versions; this does, anywhere."""
    items = list(items)
    stream = b""
    for j in range(k):
        if len(stream) < 8 * (j + 1):
            stream += hashlib.blake2b(key + len(stream).to_bytes(4, "big"), digest_size=64).digest()
        pick = j + int.from_bytes(stream[8 * j: 8 * j + 8], "big") % (len(items) - j)
        items[j], items[pick] = items[pick], items[j]
    return items[:k]


def turn_names(turns) -> list[str]:
    """The name of each (role, template) turn in messages: its role (`user`), or `messages[2]` where the
    role repeats."""
    roles = [role for role, _ in turns]
    return [role if roles.count(role) == 1 else f"messages[{i}]" for i, (role, _) in enumerate(turns)]


def template_names(text: str) -> set[str]:
    """The names a template reads from its row (Jinja2's undeclared variables)."""
    return meta.find_undeclared_variables(_ENVIRONMENT.parse(text))
