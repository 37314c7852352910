"""The job core: what makes a job a job, whatever runs it. Row ids (`identity`), the ledgers of records
handed out and running through engine deaths (`ledger`), passthrough columns (`passthrough`), which
columns of an input count and how (`columns`), another job's output as input (`chained`), the prompt
section made ready to render (`prompts`), the input scan (`scan`), reading input files as blocks
(`reading`), blocks to records and rows to blocks (`blocks`), the order records run in (`schedule`), the record flow inside a replica (`flow`), suspects after an engine death narrowed down to the record
that kills it (`suspects`), the tally and verdicts (`stats`), output blocks graded (`grades`) and a graded
job's figures (`scores`), the output prefix (`prefix`),
fsspec locations with staged writes and whether a store answers (`storage`), errors as the one line a user
reads (`failures`), calls that may never answer (`deadline`), an id digest spill to disk (`spill`) and
records numbered by position (`positions`).

May import: `batchgen.record`, `batchgen.spec`. Never Ray and never vLLM, not even lazily: the job's
guarantees are plain code that `make test-fast` covers (a test enforces it).
"""
