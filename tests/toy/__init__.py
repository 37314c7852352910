"""Tests of batchgen.toy."""
