"""A toy Nemotron-H model that batchgen makes itself, for tests and the demo (no hub downloads here)."""
