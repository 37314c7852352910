"""Shared fixtures: the toy model (built once, cached) and one real vLLM replica for the whole session."""

from __future__ import annotations

import os

import pytest

from batchgen.spec.job import BudgetSpec, ModelSpec
from tests import free_port

# Fake credentials for the loopback S3 server, set before Ray starts so its workers inherit them.
for _name, _value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(_name, _value)

TOY = ModelSpec(path="toy:nemotron-h")
# Small enough for a 2-core CPU; eager mode skips torch.compile's minutes of start-up.
# Compact JSON for structured answers: the toy, trained for a minute, can emit newlines inside a JSON
# object until max_tokens where any whitespace is allowed (seen with a build under transformers 5.19).
TEST_ENGINE = {"max_model_len": 2048, "dtype": "float32", "enforce_eager": True, "max_num_seqs": 64,
               "kv_cache_memory_bytes": 512 << 20,
               "structured_outputs_config": {"backend": "guidance", "disable_any_whitespace": True}}
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
    from batchgen.engine.replica import Replica

    with Replica(TOY, TEST_ENGINE, BudgetSpec(grace_tokens=TEST_GRACE)) as engine:
        yield engine


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API server (moto's server mode) on loopback, and a bucket in it."""
    import s3fs
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3fs.S3FileSystem(endpoint_url=endpoint).mkdir("batchgen-test")
    yield endpoint
    server.stop()
