"""Shared fixtures: the toy model (built once, cached) and one real vLLM replica for the whole session."""

from __future__ import annotations

import pytest

from batchgen.spec import BudgetSpec, ModelSpec

TOY = ModelSpec(path="toy:nemotron-h")
# Small enough for a 2-core CPU; eager mode skips torch.compile's minutes of start-up.
TEST_ENGINE = {"max_model_len": 2048, "dtype": "float32", "enforce_eager": True, "max_num_seqs": 64,
               "gpu_memory_utilization": 0.05}
# The toy's "steps" reasoning breaks lines every ~9 tokens and its "ramble" line runs ~150 tokens without
# one, so a grace of 20 lets the newline rule and the abrupt cut both be seen with one engine.
TEST_GRACE = 20


@pytest.fixture(scope="session")
def toy_model_dir():
    from batchgen.toy.build import ensure_toy_model

    return ensure_toy_model()


@pytest.fixture(scope="session")
def toy_tokenizer(toy_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(toy_model_dir)


@pytest.fixture(scope="session")
def replica(toy_model_dir):
    from batchgen.replica import Replica

    with Replica(TOY, TEST_ENGINE, BudgetSpec(grace_tokens=TEST_GRACE)) as engine:
        yield engine
