"""Tests of batchgen.record."""
