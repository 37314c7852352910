"""Record logic: one record, from its input fields to its output row, as pure functions.

Owns the input record contract and its error codes (`contract`), a table's row made into a record by
prompt templates (`templates`), reasoning profiles (`profiles`), prompt building (`prompting`), the
thinking-budget rules (`budget`), answer-only stop strings (`stops`), budget sweeps (`sweep`), the answer's split, tool calls and structured checks (`answers`), the output row
contract (`rows`), answers graded against a reference (`grading`) and OpenAI Batch API lines
(`openai_batch`).

May import: nothing else of batchgen. No Ray, no vLLM, no I/O: everything here is tested directly
(`make test-fast`).
"""
