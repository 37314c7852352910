"""The public Python front (`batchgen/__init__.py`): every documented name resolves, and importing the
package or a lower layer loads neither Ray nor vLLM (Ray workers import submodules by the thousand)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import batchgen


@pytest.mark.parametrize("name", batchgen.__all__)
def test_every_public_name_resolves_and_is_documented(name):
    value = getattr(batchgen, name)
    assert value.__doc__, f"batchgen.{name} has no docstring"
    assert f"`{name}`" in batchgen.__doc__, f"batchgen.{name} is not in the front's table"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        batchgen.nothing_here  # noqa: B018


def test_importing_the_front_and_the_lower_layers_loads_no_ray_and_no_vllm():
    code = ("import sys, batchgen, batchgen.record.contract, batchgen.spec.job, batchgen.core.prefix; "
            "batchgen.load_spec; print(sorted(m for m in ('ray', 'vllm', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
