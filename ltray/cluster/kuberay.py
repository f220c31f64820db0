"""`ltray check` for KubeRay manifests (apiVersion ray.io/v1, kind RayCluster or RayJob), offline.

Structure: the fields KubeRay requires of the parts ltray relies on (a head group and worker
groups with pod templates, string rayStartParams, replica bounds; a RayJob's entrypoint, its
own cluster spec, shutdown and TTL). ltray's rules: rayVersion is the Ray that ltray pins (the
image's), every Ray container runs ltray's own image at this version, the head takes no trials,
a GPU group scales from 0 with num-gpus matching its nvidia.com/gpu limit, and LTRAY_STORAGE is
the same bucket URI in every Ray container (a pod's local path is not shared with the others).
"""

from __future__ import annotations

import re

from ltray.cluster.nodes import key_path, mapping
from ltray.cluster.pins import LTRAY_IMAGE, PackagePins
from ltray.cluster.problems import Problem
from ltray.cluster.storage import STORAGE_VAR, URI_SCHEMES

API_VERSION = "ray.io/v1"
KINDS = ("RayCluster", "RayJob")
GPU = "nvidia.com/gpu"
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_kuberay(config: dict) -> bool:
    return str(config.get("apiVersion", "")).startswith("ray.io/")


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _quantity(value) -> int | None:
    """A whole-number Kubernetes quantity (1 or "1"), else None."""
    if _int(value) is not None:
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


class Findings:
    def __init__(self):
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def problem(self, *where_and_message) -> None:
        """One finding per field: the first (the most basic) is the one to fix first."""
        *where, message = where_and_message
        path = key_path(*where)
        if all(p.path != path for p in self.problems):
            self.problems.append(Problem(path, message))


def ray_containers(group: dict, *where) -> list[tuple[tuple, dict]]:
    """(key path, container) of the Ray container of a group's pod template (KubeRay runs Ray in the first)."""
    containers = mapping(mapping(group.get("template")).get("spec")).get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        return []
    return [((*where, "template", "spec", "containers", 0), containers[0])]


def group_structure(found: Findings, group, *where) -> None:
    if not isinstance(group, dict):
        found.problem(*where, "must be a mapping")
        return
    params = group.get("rayStartParams", {})
    if not isinstance(params, dict):
        found.problem(*where, "rayStartParams", "must be a mapping of flag -> string")
    else:
        for flag, value in params.items():
            if not isinstance(value, str):
                found.problem(*where, "rayStartParams", flag, f"must be a string (KubeRay rejects {value!r}): "
                              f"quote it, e.g. {flag}: \"{value}\"")
    containers = mapping(mapping(group.get("template")).get("spec")).get("containers")
    if not isinstance(containers, list) or not containers:
        found.problem(*where, "template", "spec", "containers", "needs at least one container (the Ray one first)")
        return
    for i, c in enumerate(containers):
        if not isinstance(c, dict) or not c.get("name") or not c.get("image"):
            found.problem(*where, "template", "spec", "containers", i, "each container needs a name and an image")


def worker_structure(found: Findings, group, *where) -> None:
    group_structure(found, group, *where)
    if not isinstance(group, dict):
        return
    if not isinstance(group.get("groupName"), str) or not group.get("groupName"):
        found.problem(*where, "groupName", "every worker group needs a groupName")
    bounds = {k: _int(group.get(k)) for k in ("replicas", "minReplicas", "maxReplicas")}
    for k, v in bounds.items():
        if k in group and (v is None or v < 0):
            found.problem(*where, k, f"must be a whole number >= 0, got {group.get(k)!r}")
    if "maxReplicas" not in group:
        found.problem(*where, "maxReplicas", "required: the most pods the autoscaler may start for this group")
    lo, hi = bounds["minReplicas"] or 0, bounds["maxReplicas"]
    if hi is not None and lo > hi:
        found.problem(*where, "minReplicas", f"{lo} is more than maxReplicas {hi}")


def cluster_rules(found: Findings, spec, pins: PackagePins, *where) -> dict:
    """Structure and ltray's rules for one RayCluster spec at `where`; facts for the summary."""
    import ltray

    if not isinstance(spec, dict):
        found.problem(*where, "must be a mapping (the RayCluster spec)")
        return {}
    facts = {}
    ray = pins.pins.get("ray")
    version = spec.get("rayVersion")
    if not isinstance(version, str):
        found.problem(*where, "rayVersion", "required: the Ray version of the image, as a string")
    elif ray and version != ray.version:
        found.problem(*where, "rayVersion", f"{version} but ltray's image carries Ray {ray.version} (ltray pins "
                      f"ray=={ray.version}): KubeRay must run the image's Ray")
    if spec.get("enableInTreeAutoscaling") is not True:
        found.problem(*where, "enableInTreeAutoscaling", "must be true: ltray's GPU workers start at 0 pods and "
                      "the autoscaler adds them for pending trials")
    head = spec.get("headGroupSpec")
    if head is None:
        found.problem(*where, "headGroupSpec", "required")
        head = {}
    group_structure(found, head, *where, "headGroupSpec")
    head = mapping(head)
    if mapping(head.get("rayStartParams")).get("num-cpus") != "0":
        found.problem(*where, "headGroupSpec", "rayStartParams", "num-cpus",
                      'must be "0" so no trial lands on the head (it runs the driver and the consensus actor)')
    workers = spec.get("workerGroupSpecs")
    if not isinstance(workers, list) or not workers:
        found.problem(*where, "workerGroupSpecs", "needs at least one worker group (ltray's GPU workers)")
        workers = []
    groups = [(("headGroupSpec",), head)] + [(("workerGroupSpecs", i), w) for i, w in enumerate(workers)]
    gpu_groups = []
    for i, group in enumerate(workers):
        worker_structure(found, group, *where, "workerGroupSpecs", i)
        group = mapping(group)
        for path, container in ray_containers(group, *where, "workerGroupSpecs", i):
            limit = _quantity(mapping(mapping(container.get("resources")).get("limits")).get(GPU))
            if limit:
                gpu_groups.append((i, group, limit))
    if workers and not gpu_groups:
        found.problem(*where, "workerGroupSpecs", f"no worker group asks for GPUs: give one a "
                      f"resources.limits.{GPU} in its Ray container")
    for i, group, limit in gpu_groups:
        at = (*where, "workerGroupSpecs", i)
        low = _int(group.get("minReplicas"))
        if low is None or low != 0:
            found.problem(*at, "minReplicas", f"must be 0 so the GPU group scales from 0 (got "
                          f"{group.get('minReplicas', 'none')!r}): idle GPUs cost money")
        elif (_int(group.get("replicas")) or 0) > 0:
            found.warnings.append(Problem(key_path(*at, "replicas"), f"{group['replicas']} GPU pods start with the "
                                          "cluster before any trial asks for them"))
        gpus = mapping(group.get("rayStartParams")).get("num-gpus")
        if gpus != str(limit):
            found.problem(*at, "rayStartParams", "num-gpus", f"must be \"{limit}\", the container's {GPU} limit "
                          f"(got {gpus!r}): without it the autoscaler does not know the group has GPUs and "
                          "cannot scale it from 0")
        facts.setdefault("gpu", []).append(f"{group.get('groupName')} {group.get('minReplicas')}.."
                                           f"{group.get('maxReplicas')} x {limit} GPU")
    storages = {}
    for group_where, group in groups:
        for path, container in ray_containers(mapping(group), *where, *group_where):
            image = container.get("image")
            own = LTRAY_IMAGE.search(image) if isinstance(image, str) else None
            if not own:
                found.problem(*path, "image", f"{image!r} is not ltray's image: build it from the Dockerfile and "
                              f"push it as <registry>/ltray:{ltray.__version__}")
            elif own[1] != ltray.__version__:
                found.problem(*path, "image", f"{image} is built for ltray {own[1]} but this is ltray "
                              f"{ltray.__version__}: rebuild the image from the Dockerfile and push it as "
                              f"ltray:{ltray.__version__}")
            else:
                facts["image"] = image.rsplit("/", 1)[-1]
            env = container.get("env") if isinstance(container.get("env"), list) else []
            values = [e.get("value") for e in env if isinstance(e, dict) and e.get("name") == STORAGE_VAR]
            if not values:
                found.problem(*path, "env", f"no {STORAGE_VAR}: set it to the bucket URI of the experiment "
                              "folders, e.g. s3://<bucket>/experiments")
            for value in values:
                storages.setdefault(value, key_path(*path, "env", STORAGE_VAR))
    for value, at in storages.items():
        if not isinstance(value, str) or not value.startswith(URI_SCHEMES) or not value.split("://", 1)[1].split("/")[0]:
            found.problems.append(Problem(at, f"{value!r} is not an s3:// or gs:// URI: a path is each pod's "
                                          "own disk, which the other pods cannot reach"))
    if len(storages) > 1:
        first, second = list(storages)[:2]
        found.problems.append(Problem(storages[second], f"{second!r} differs from {first!r} at {storages[first]}: "
                                      "every pod must use the same experiment folder"))
    if len(storages) == 1:
        facts["storage"] = next(iter(storages))
    return facts


def check_kuberay(config: dict, pins: PackagePins) -> tuple[list[Problem], list[Problem], str]:
    """(problems, warnings, summary) of one RayCluster or RayJob manifest."""
    found = Findings()
    kind = config.get("kind")
    if config.get("apiVersion") != API_VERSION:
        found.problem("apiVersion", f"{config.get('apiVersion')!r}: ltray's manifests use {API_VERSION} "
                      "(KubeRay >= 1.0)")
    if kind not in KINDS:
        found.problem("kind", f"{kind!r}: ltray checks {' and '.join(KINDS)}")
        return found.problems, found.warnings, ""
    name = mapping(config.get("metadata")).get("name")
    if not isinstance(name, str) or not DNS_NAME.match(name):
        found.problem("metadata", "name", f"{name!r}: required, lower-case letters, digits and '-'")
    spec = mapping(config.get("spec"))
    if kind == "RayCluster":
        facts = cluster_rules(found, config.get("spec"), pins, "spec")
    else:
        entrypoint = spec.get("entrypoint")
        if not isinstance(entrypoint, str) or not re.search(r"\bltray(\s+|\.)sweep\b", entrypoint):
            found.problem("spec", "entrypoint", "must run a sweep: `ltray sweep SWEEP.yaml ...`")
        if "rayClusterSpec" not in spec:
            found.problem("spec", "rayClusterSpec", "required: the RayJob starts its own autoscaling cluster "
                          "(and shuts it down when the sweep ends)")
        if spec.get("shutdownAfterJobFinishes") is not True:
            found.problem("spec", "shutdownAfterJobFinishes", "must be true: GPU pods would outlive the sweep")
        ttl = _int(spec.get("ttlSecondsAfterFinished"))
        if ttl is None or ttl < 0:
            found.problem("spec", "ttlSecondsAfterFinished", "required: seconds to keep the finished cluster "
                          "(its logs) before it is deleted, e.g. 600")
        facts = cluster_rules(found, spec.get("rayClusterSpec", {}), pins, "spec", "rayClusterSpec")
    summary = "; ".join(filter(None, [
        f"{kind} {name}", f"rayVersion {spec.get('rayVersion') or mapping(spec.get('rayClusterSpec')).get('rayVersion')}",
        f"image {facts.get('image')}" if facts.get("image") else "",
        "head takes no trials", f"GPU workers {', '.join(facts.get('gpu', []))}" if facts.get("gpu") else "",
        f"storage {facts['storage']}" if facts.get("storage") else "", "KubeRay structure + ltray rules (offline)"]))
    return found.problems, found.warnings, summary
