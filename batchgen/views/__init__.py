"""What people look at: the progress display (`progress`), where Ray's and vLLM's logs go (`logs`), what
an output prefix holds (`survey`, `batchgen inspect`) and its HTML report (`report`).

May import: `batchgen.record`, `batchgen.spec`, `batchgen.core`. Reads prefixes without Ray.
"""
