"""Tests of batchgen.cli."""
