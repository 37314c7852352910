"""The Ray and cluster edge: the job on Ray Data (`pipeline`, its replica stage `stage`, Ray's datasource
and checkpoint pieces in `ray_io`), the same job checked in-process without Ray (`validation`), batchgen as a
library (`library`: `run`, `validate`, and `generate`, the replica stage for a Ray Data pipeline), the Ray
Jobs API (`submit`) and KubeRay manifests (`k8s`).

May import: every layer below it (`record`, `spec`, `core`, `engine`, `views`). Ray is imported here and in
`engine.placement` only.
"""
