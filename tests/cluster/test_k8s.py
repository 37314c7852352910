"""RayJob manifests, shipped and rendered, against the KubeRay v1 RayJob CRD's schema, closed against
unknown fields, plus the operator's own rules (../shared/kuberay/README.md)."""

from __future__ import annotations

import copy
import re

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from batchgen.cli.app import app
from batchgen.cluster.k8s import render, render_yaml
from batchgen.spec.job import load_spec, parse_spec
from tests import ROOT

CRD = ROOT.parent / "shared" / "kuberay" / "ray.io_rayjobs.yaml"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _closed(schema):
    """Every object schema with properties refuses unknown keys (the API server would drop them silently)."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _closed(value)
    elif isinstance(schema, list):
        for value in schema:
            _closed(value)
    return schema


@pytest.fixture(scope="module")
def validator():
    if not CRD.exists():
        pytest.skip(f"needs the KubeRay CRD at {CRD}")
    crd = yaml.load(CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft4Validator(_closed(copy.deepcopy(v1["schema"]["openAPIV3Schema"])))


def check_rayjob(validator, doc):
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]
    assert not errors, errors
    name, spec = doc["metadata"]["name"], doc["spec"]
    assert len(name) <= 47 and DNS_1035.match(name), name
    assert ("rayClusterSpec" in spec) != ("clusterSelector" in spec)
    assert "ttlSecondsAfterFinished" not in spec or spec.get("shutdownAfterJobFinishes") is True
    assert not ("deletionStrategy" in spec and spec.get("shutdownAfterJobFinishes"))
    assert spec.get("submissionMode", "K8sJobMode") in {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
    for group in spec["rayClusterSpec"]["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def documents(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


MANIFESTS = sorted(p for p in (ROOT / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_shipped_rayjobs_validate(validator, manifest):
    rayjobs = [d for d in documents(manifest) if d.get("kind") == "RayJob"]
    assert rayjobs, f"{manifest} holds no RayJob"
    for doc in rayjobs:
        check_rayjob(validator, doc)


def test_the_shipped_manifest_is_the_rendering_of_the_shipped_spec():
    spec = load_spec(ROOT / "jobs" / "nemotron-nano-9b-v2.yaml")
    assert (ROOT / "k8s" / "nemotron-nano-9b-v2.yaml").read_text() == render_yaml(spec), "run: batchgen k8s ... > k8s/"


def test_the_configmap_carries_a_valid_spec_and_is_mounted():
    config_map, rayjob = render(load_spec(ROOT / "jobs" / "nemotron-nano-9b-v2.yaml"))
    spec = parse_spec(yaml.safe_load(config_map["data"]["job.yaml"]))
    assert spec == load_spec(ROOT / "jobs" / "nemotron-nano-9b-v2.yaml")
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert head["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]
    assert rayjob["spec"]["entrypoint"] == "batchgen run /etc/batchgen/job.yaml"


def test_gpu_workers_and_no_secret_values():
    _, rayjob = render(load_spec(ROOT / "jobs" / "nemotron-nano-9b-v2.yaml"), replicas=2)
    cluster = rayjob["spec"]["rayClusterSpec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    assert "nvidia.com/gpu" not in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    (workers,) = cluster["workerGroupSpecs"]
    pod = workers["template"]["spec"]
    assert workers["replicas"] == 2 and pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["volumes"]
    # the weights' cache: a sized volume where HF_HOME points; GPU nodes selected; token auth said explicitly
    assert {"name": "model-cache", "emptyDir": {"sizeLimit": "128Gi"}} in pod["volumes"]
    assert {"name": "model-cache", "mountPath": "/models"} in pod["containers"][0]["volumeMounts"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert cluster["authOptions"] == {"mode": "token"}
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env.pop("HF_HOME") == {"name": "HF_HOME", "value": "/models/hf"}
    for entry in env.values():  # the rest are credentials: by reference only
        assert "value" not in entry and "secretKeyRef" in entry["valueFrom"]


def test_rendered_rayjobs_validate_for_other_specs(validator, tmp_path):
    for job in ("s3-parquet.yaml", "nemotron-nano-9b-v2.yaml"):
        for replicas in (1, 3):
            for doc in render(load_spec(ROOT / "jobs" / job), "registry.example/batchgen:dev", replicas):
                if doc["kind"] == "RayJob":
                    check_rayjob(validator, doc)


def test_a_typo_is_caught(validator):
    _, rayjob = render(load_spec(ROOT / "jobs" / "nemotron-nano-9b-v2.yaml"))
    rayjob["spec"]["entrypointt"] = rayjob["spec"].pop("entrypoint")
    assert list(validator.iter_errors(rayjob))


def test_kustomization_points_at_real_fields():
    kustomization = yaml.safe_load((ROOT / "k8s" / "kustomization.yaml").read_text())
    docs = [d for r in kustomization["resources"] for d in documents(ROOT / "k8s" / r)]
    (rayjob,) = [d for d in docs if d["kind"] == "RayJob"]
    images = {c["image"].split(":")[0] for d in docs if d["kind"] == "RayJob"
              for c in d["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"]}
    assert images == {i["name"] for i in kustomization["images"]}
    for patch in kustomization["patches"]:
        for op in yaml.safe_load(patch["patch"]):
            node = rayjob
            for part in op["path"].strip("/").split("/"):
                part = part.replace("~1", "/")
                node = node[int(part)] if isinstance(node, list) else node[part]


def test_cli_renders_and_refuses_local_paths(validator):
    runner = CliRunner()
    result = runner.invoke(app, ["k8s", str(ROOT / "jobs" / "s3-parquet.yaml"), "--replicas", "2", "--image", "x/y:1"])
    assert result.exit_code == 0, result.output
    (rayjob,) = [d for d in yaml.safe_load_all(result.output) if d and d["kind"] == "RayJob"]
    check_rayjob(validator, rayjob)
    refused = runner.invoke(app, ["k8s", str(ROOT / "jobs" / "demo.yaml")])
    assert refused.exit_code == 2 and "relative local path" in refused.output
