"""Tests of batchgen.views."""
