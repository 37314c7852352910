"""KubeRay rendering: a job spec becomes a ConfigMap (the spec, mounted into the head pod) and a `ray.io/v1`
RayJob whose cluster has a CPU-only head and one GPU worker pod per replica.

`k8s/nemotron-nano-9b-v2.yaml` is this rendering of `jobs/nemotron-nano-9b-v2.yaml` (a test keeps them
equal); `batchgen k8s JOB.yaml` renders the same shape for any spec.
"""

from __future__ import annotations

import math

import yaml

from batchgen.spec.job import JobSpec

DEFAULT_IMAGE = "ghcr.io/batchgen/batchgen:0.1.0"
RAY_VERSION = "2.60.0"
SPEC_DIR = "/etc/batchgen"
MODEL_CACHE, MODEL_CACHE_SIZE = "/models", "128Gi"  # HF_HOME's volume on each worker: a 9B model is ~18 GB
# A label NVIDIA's GPU operator (feature discovery) puts on GPU nodes; clusters without it edit this.
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
# Secrets are referenced, never copied: the cluster's operators create them (README, "Kubernetes").
SECRET_ENV = [
    ("HF_TOKEN", "batchgen-hub-token", "token"),
    ("AWS_ACCESS_KEY_ID", "batchgen-object-store", "access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "batchgen-object-store", "secret_access_key"),
]


def _secret_env() -> list[dict]:
    return [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}
        for name, secret, key in SECRET_ENV
    ]


def _container(name: str, image: str, resources: dict, mounts: list[dict], ports: list[dict] | None = None) -> dict:
    container = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "env": _secret_env(),
                 "resources": {"requests": resources, "limits": resources}, "volumeMounts": mounts}
    if ports:
        container["ports"] = ports
    return container


def render(spec: JobSpec, image: str = DEFAULT_IMAGE, replicas: int | None = None) -> list[dict]:
    """The ConfigMap and RayJob for `spec`; `replicas` overrides `scaling.replicas`."""
    replicas = replicas or spec.scaling.replicas
    if replicas != spec.scaling.replicas:
        spec = spec.model_copy(update={"scaling": spec.scaling.model_copy(update={"replicas": replicas})})
    gpus = math.ceil(spec.scaling.gpus_per_replica)
    spec_map = f"{spec.name}-spec"
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": spec_map, "labels": {"app.kubernetes.io/name": "batchgen", "batchgen/job": spec.name}},
        "data": {"job.yaml": yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False)},
    }
    head = _container(
        "ray-head", image, {"cpu": "4", "memory": "16Gi"},
        [{"name": "job-spec", "mountPath": SPEC_DIR, "readOnly": True}],
        [{"containerPort": 6379, "name": "gcs"}, {"containerPort": 8265, "name": "dashboard"},
         {"containerPort": 10001, "name": "client"}],
    )
    worker_resources = {"cpu": str(max(4, math.ceil(spec.scaling.cpus_per_replica))), "memory": "48Gi"}
    if gpus:
        worker_resources["nvidia.com/gpu"] = str(gpus)
    worker = _container("ray-worker", image, worker_resources, [{"name": "dshm", "mountPath": "/dev/shm"},
                                                                 {"name": "model-cache", "mountPath": MODEL_CACHE}])
    worker["env"].append({"name": "HF_HOME", "value": f"{MODEL_CACHE}/hf"})
    worker_pod = {
        "containers": [worker],
        "volumes": [
            # vLLM and NCCL share tensors through /dev/shm; the container default (64 MiB) is far too small.
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
            # The weights, downloaded once per pod; sized so the node evicts the pod, not fills its disk.
            {"name": "model-cache", "emptyDir": {"sizeLimit": MODEL_CACHE_SIZE}},
        ],
    }
    if gpus:
        worker_pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        worker_pod["nodeSelector"] = dict(GPU_NODE_SELECTOR)
    rayjob = {
        "apiVersion": "ray.io/v1", "kind": "RayJob",
        "metadata": {"name": spec.name, "labels": {"app.kubernetes.io/name": "batchgen", "batchgen/job": spec.name}},
        "spec": {
            "entrypoint": f"batchgen run {SPEC_DIR}/job.yaml",
            "submissionMode": "K8sJobMode",
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 3600,
            "backoffLimit": 1,
            "activeDeadlineSeconds": 7 * 24 * 3600,
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                # Ray 2.60 heads turn token auth on by default: said explicitly (`authOptions.mode`, KubeRay
                # 1.7's CRD) so the operator manages the token for the head, workers and submitter. What the
                # operator does with it is not in the schema and has not been run here.
                "authOptions": {"mode": "token"},
                "headGroupSpec": {
                    # The head schedules and writes the markers; it gets no GPU and runs no replica.
                    "rayStartParams": {"dashboard-host": "0.0.0.0", "num-gpus": "0"},
                    "template": {"spec": {
                        "containers": [head],
                        "volumes": [{"name": "job-spec", "configMap": {"name": spec_map}}],
                    }},
                },
                "workerGroupSpecs": [{
                    "groupName": "gpu-workers" if gpus else "cpu-workers",
                    "replicas": replicas, "minReplicas": replicas, "maxReplicas": replicas,
                    "rayStartParams": {},
                    "template": {"spec": worker_pod},
                }],
            },
        },
    }
    return [config_map, rayjob]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the spec in the ConfigMap) as readable `|` blocks."""


_Dumper.add_representer(
    str, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)
)


def render_yaml(spec: JobSpec, image: str = DEFAULT_IMAGE, replicas: int | None = None) -> str:
    header = f"# Rendered by `batchgen k8s` from the job spec {spec.name!r}; apply with kubectl apply -f.\n"
    return header + yaml.dump_all(render(spec, image, replicas), Dumper=_Dumper, sort_keys=False)
