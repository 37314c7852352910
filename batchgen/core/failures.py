"""An error as the one line a user reads: its root cause, out of whatever Ray wrapped around it.

Ray's errors from a remote task or actor carry the remote traceback in their text, chained causes
included, and Ray Data appends its own advice after it ("Failed to apply UDF transform after 1/1
attempts", "To change retry attempts ..."). The line worth showing is the last exception line of the
traceback, `SomeError: what happened`.
"""

from __future__ import annotations

import re

# `ValueError: ...`, `botocore.exceptions.EndpointConnectionError: ...`, `RayTaskError(OSError): ...`
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception|Refused|Died|Exit)(?:\(\w+\))?): (.*)$")


def root_cause(error: BaseException) -> str:
    """`error` as one line, `Name: message`: for a traceback-carrying error (Ray's), its last exception line,
    without the module path; for a plain one, its type and message."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return f"{type(error).__name__}: {lines[0] if lines else ''}"
    found = [m for m in map(_EXCEPTION_LINE.match, lines) if m]
    if not found:
        return lines[-1]
    name, message = found[-1].groups()
    return f"{name}: {message}"


def raised_in(error: BaseException, kind: type[BaseException]) -> str:
    """The message of the last `kind` error raised remotely under `error` (found in the traceback Ray
    carries in its text), or "" when there is none."""
    marker = f"{kind.__name__}: "
    lines = [line.strip() for line in str(error).splitlines() if marker in line]
    return lines[-1].split(marker, 1)[1] if lines else ""
