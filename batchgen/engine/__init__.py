"""The engine side: model paths and engine defaults (`models`), the engine-free record preparer
(`preparer`: raw record -> engine input or error row) and row shaper (`shaping`: engine output -> row),
one vLLM replica (`replica`), the thinking budget inside vLLM (`budget_processor`), GPUs per replica
(`placement`) and the tool-call parser per profile (`tool_parsers`).

May import: `batchgen.record`, `batchgen.spec`, `batchgen.core`, `batchgen.toy`. vLLM is imported only
where an engine is built (`replica`, `budget_processor`, `tool_parsers`), with an install hint.
"""
