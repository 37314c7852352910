"""The toy models batchgen makes itself, for tests, benchmarks and the demo (no hub downloads here): a
Nemotron-H (`toy:nemotron-h`) and a plain-attention Qwen3 (`toy:qwen3`)."""
