"""An error as one line: its root cause out of Ray's wrapping (`batchgen.core.failures`)."""

from __future__ import annotations

from batchgen.core.failures import raised_in, root_cause

# What a write task's error read when the S3 server stopped mid-job (Ray 2.60, s3fs): the traceback, then
# Ray Data's advice. The user must see the connection error, not the advice.
STORE_LOST = """ray::Write() (pid=1, ip=192.0.2.2)
  File "/x/aiobotocore/httpsession.py", line 364, in send
    raise EndpointConnectionError(endpoint_url=request.url, error=e)
botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL: "http://127.0.0.1:1/b/out/_checkpoint/p.pending.parquet"
Failed to apply UDF transform after 1/1 attempts (total backoff 0.0s).
To change retry attempts, backoff, or which errors are retried, configure `ray.data.DataContext.get_current()` (`retried_io_errors` for I/O; `retried_map_errors` and `max_map_retries` for any task) if you believe this to be transient.
"""

REFUSED = """The actor died because of an error raised in its creation task, ray::MapWorker(MapBatches(GenerateStage)).__init__() (pid=1123, ip=192.0.2.2)
  File "/x/stage.py", line 59, in __init__
RuntimeError: CUDA out of memory: tried to allocate 20 GiB

The above exception was the direct cause of the following exception:

  File "/x/stage.py", line 63, in __init__
batchgen.cluster.stage.EngineRefused: a replica's engine did not start on node 192.0.2.2: RuntimeError: CUDA out of memory: tried to allocate 20 GiB
"""


class EngineRefused(RuntimeError):
    """Stands for `batchgen.cluster.stage.EngineRefused`: matched by name, as in Ray's text."""


def test_a_remote_error_is_its_last_exception_line_without_ray_advice_or_module_path():
    assert root_cause(RuntimeError(STORE_LOST)) == (
        'EndpointConnectionError: Could not connect to the endpoint URL: "http://127.0.0.1:1/b/out/_checkpoint/p.pending.parquet"')
    remote = RuntimeError("ray::MapWorker.__init__() (pid=1)\n  File \"x.py\", line 3\n    raise\n"
                          "RuntimeError: vLLM started Model Runner V2: set VLLM_USE_V2_MODEL_RUNNER=0\n")
    assert root_cause(remote) == "RuntimeError: vLLM started Model Runner V2: set VLLM_USE_V2_MODEL_RUNNER=0"


def test_a_plain_error_is_its_type_and_message():
    assert root_cause(KeyError("x")) == "KeyError: 'x'"
    assert root_cause(ValueError("")) == "ValueError: "
    assert root_cause(RuntimeError("two lines\nwith no exception line")) == "with no exception line"


def test_a_kind_raised_remotely_is_found_by_name_in_the_text():
    assert raised_in(RuntimeError(REFUSED), EngineRefused) == (
        "a replica's engine did not start on node 192.0.2.2: RuntimeError: CUDA out of memory: tried to allocate 20 GiB")
    assert raised_in(RuntimeError(STORE_LOST), EngineRefused) == ""
