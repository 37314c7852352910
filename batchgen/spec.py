"""The job spec: what a user writes in YAML, validated once where it enters (pydantic, unknown keys refused).

Every field carries a description: it is the documentation, the JSON Schema (`schemas/job.schema.json`) and
the error message's context in one place.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from batchgen.records import RecordFields


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ModelSpec(Section):
    path: str = Field(description="hub id, local directory, or toy:nemotron-h (the test model batchgen builds itself)")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    profile: Literal["auto", "nemotron-nano-v2", "qwen3", "deepseek-r1", "none"] = Field(
        "auto", description="reasoning profile; auto recognises the family from its chat template"
    )
    trust_remote_code: bool = Field(False, description="run code shipped with the model")


class BudgetSpec(Section):
    mode: Literal["newline", "strict"] = Field(
        "newline",
        description="newline: after the budget, end the reasoning at the next line break, or at budget + "
        "grace_tokens if none comes (model card); strict: end it exactly at the budget",
    )
    grace_tokens: int = Field(500, ge=0, description="newline mode: how long to wait for a line break")
    close_text: str = Field(".\n</think>\n\n", description="forced to end a reasoning cut mid-line")
    close_text_at_line_break: str = Field("</think>\n\n", description="forced to end a reasoning at a line break")


class Defaults(RecordFields):
    """Record fields applied to every record that does not set them itself."""


EngineArgs = dict[str, Any]
