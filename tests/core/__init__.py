"""Tests of batchgen.core."""
