"""Tests of batchgen.cluster."""
