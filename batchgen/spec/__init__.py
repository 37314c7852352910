"""The job spec: what a user writes in YAML (`job`), its placement rules (`placement`), and the JSON
Schemas of the spec and of the record contracts (`schemas`).

May import: `batchgen.record` (the record fields a spec's `defaults` set, the budget section). No Ray, no
vLLM.
"""
