"""`kustomize build` for the subset of kustomize that deploy/k8s uses, so the
tests can check the objects an overlay makes without the kustomize binary.

Supported: resources (files and directories), namespace, images, replicas,
configMapGenerator and secretGenerator (files, envs, literals; behavior create
or merge), and patches with a kind/name target and an inline JSON 6902 patch.
A kustomization using anything else is refused, so the tests never pass over
a field they do not apply. Generated names get no content hash: kustomize
appends one and rewrites every reference to it, so references by the plain
name are what the tests check.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jsonpatch
import yaml

SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "images",
    "replicas",
    "configMapGenerator",
    "secretGenerator",
    "patches",
}
# Kinds that live outside any namespace (of those this repo uses).
CLUSTER_SCOPED = {"Namespace"}


def build(directory: Path) -> list[dict]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise ValueError(f"{directory}: kustomize fields the tests do not apply: {sorted(unsupported)}")
    objects: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        objects += build(path) if path.is_dir() else [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for spec in kustomization.get("configMapGenerator", []):
        _generate(objects, "ConfigMap", spec, directory)
    for spec in kustomization.get("secretGenerator", []):
        _generate(objects, "Secret", spec, directory)
    for patch in kustomization.get("patches", []):
        _patch(objects, patch)
    for replicas in kustomization.get("replicas", []):
        (target,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == replicas["name"]]
        target["spec"]["replicas"] = replicas["count"]
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            pairs[key.strip()] = value
    return pairs


def _generate(objects: list[dict], kind: str, spec: dict, directory: Path) -> None:
    unsupported = set(spec) - {"name", "behavior", "files", "envs", "literals"}
    if unsupported:
        raise ValueError(f"{kind} generator fields the tests do not apply: {sorted(unsupported)}")
    data: dict[str, str] = {}
    for entry in spec.get("files", []):
        key, _, path = entry.rpartition("=")
        data[key or Path(path).name] = (directory / path).read_text()
    for path in spec.get("envs", []):
        data |= read_env_file(directory / path)
    for literal in spec.get("literals", []):
        key, value = literal.split("=", 1)
        data[key] = value
    existing = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == spec["name"]]
    behavior = spec.get("behavior", "create")
    if behavior == "merge":
        (target,) = existing
        target["data"] |= _encode(kind, data)
        return
    if behavior != "create" or existing:
        raise ValueError(f"{kind} {spec['name']}: behavior {behavior} over {len(existing)} existing")
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}, "data": _encode(kind, data)}
    if kind == "Secret":
        obj["type"] = "Opaque"
    objects.append(obj)


def _encode(kind: str, data: dict[str, str]) -> dict[str, str]:
    if kind == "Secret":
        return {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return data


def _patch(objects: list[dict], patch: dict) -> None:
    if set(patch) != {"target", "patch"} or set(patch["target"]) != {"kind", "name"}:
        raise ValueError(f"only kind/name targets with an inline patch are applied: {patch}")
    operations = yaml.safe_load(patch["patch"])
    targets = [
        i
        for i, o in enumerate(objects)
        if o["kind"] == patch["target"]["kind"] and o["metadata"]["name"] == patch["target"]["name"]
    ]
    if not targets:
        raise ValueError(f"patch target not found: {patch['target']}")
    for i in targets:
        objects[i] = jsonpatch.apply_patch(objects[i], operations)


def _set_image(objects: list[dict], image: dict) -> None:
    for obj in objects:
        pod = pod_spec(obj)
        for container in (pod or {}).get("containers", []) + (pod or {}).get("initContainers", []):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def pod_spec(obj: dict) -> dict | None:
    """The pod spec of a workload (Deployment, Job), else None."""
    template = obj.get("spec", {}).get("template")
    return template["spec"] if template else None
