"""The `batchgen` command (typer): `app` (run, validate, inspect, report, schema, k8s), `cluster` (submit,
status, logs, stop, list), `common` (spec loading and failure lines), and `gpu_check` (`make gpu-check`).

May import: every layer. Commands stay short: parse, load the spec, call the library, exit with a code.
"""
