"""Tests of batchgen.spec."""
