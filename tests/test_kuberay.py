"""`ltray check` on KubeRay manifests: the shipped RayCluster and RayJob pass; each broken variant is
refused with one line naming the file and the field; exit status as for cluster files."""

import copy
from pathlib import Path

import pytest
import yaml

from ltray.cluster.__main__ import main
from ltray.cluster.check import check_file, check_kuberay_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "deploy" / "kubernetes" / "raycluster.yaml"
JOB = ROOT / "deploy" / "kubernetes" / "rayjob.yaml"


def load(path):
    return yaml.safe_load(path.read_text())


def run_main(capsys, *args):
    code = main(["check", *map(str, args)])
    return code, capsys.readouterr().out.strip().splitlines()


@pytest.mark.parametrize("path", [CLUSTER, JOB])
def test_shipped_manifests_pass(path, capsys):
    code, out = run_main(capsys, path)
    assert code == 0, out
    assert out[-1].startswith(f"{path}: OK (Ray")
    assert "rayVersion 2.60.0" in out[-1] and "image ltray:0.3.0" in out[-1] and "gpu-1x 0..10 x 1 GPU" in out[-1]
    assert all("REPLACE_ME" in line for line in out[:-1])  # the only warnings are the placeholders


def test_the_rayjob_runs_the_shipped_cluster_spec():
    job = load(JOB)["spec"]
    assert job["rayClusterSpec"] == load(CLUSTER)["spec"]
    assert job["shutdownAfterJobFinishes"] is True and job["ttlSecondsAfterFinished"] > 0
    assert "--resume --take-over" in job["entrypoint"]  # the resume story


def head_container(spec):
    return spec["headGroupSpec"]["template"]["spec"]["containers"][0]


def gpu_group(spec):
    return spec["workerGroupSpecs"][0]


def worker_container(spec):
    return gpu_group(spec)["template"]["spec"]["containers"][0]


WORKER = "spec.workerGroupSpecs[0]"
CASES = {
    "wrong rayVersion": (lambda s: s.__setitem__("rayVersion", "2.59.0"), "spec.rayVersion",
                         "2.59.0 but ltray's image carries Ray 2.60.0"),
    "GPU group cannot scale from 0": (lambda s: gpu_group(s).update(minReplicas=1, replicas=1),
                                      f"{WORKER}.minReplicas", "must be 0 so the GPU group scales from 0"),
    "no num-gpus for the GPU limit": (lambda s: gpu_group(s)["rayStartParams"].pop("num-gpus"),
                                      f"{WORKER}.rayStartParams.num-gpus", "cannot scale it from 0"),
    "local storage path": (lambda s: [c["env"][0].update(value="/data/experiments")
                                      for c in (head_container(s), worker_container(s))],
                           "spec.headGroupSpec.template.spec.containers[0].env.LTRAY_STORAGE",
                           "'/data/experiments' is not an s3:// or gs:// URI"),
    "another version's image": (lambda s: head_container(s).update(image="registry.example/ltray:0.1.0"),
                                "spec.headGroupSpec.template.spec.containers[0].image",
                                "is built for ltray 0.1.0 but this is ltray 0.3.0"),
    "Ray's own image": (lambda s: worker_container(s).update(image="rayproject/ray:2.60.0-py311-gpu"),
                        f"{WORKER}.template.spec.containers[0].image", "is not ltray's image"),
    "head takes trials": (lambda s: s["headGroupSpec"]["rayStartParams"].update({"num-cpus": "4"}),
                          "spec.headGroupSpec.rayStartParams.num-cpus", 'must be "0"'),
    "no autoscaling": (lambda s: s.update(enableInTreeAutoscaling=False), "spec.enableInTreeAutoscaling",
                       "must be true"),
    "unquoted rayStartParams": (lambda s: gpu_group(s)["rayStartParams"].update({"num-gpus": 1}),
                                f"{WORKER}.rayStartParams.num-gpus", "must be a string"),
    "no maxReplicas": (lambda s: gpu_group(s).pop("maxReplicas"), f"{WORKER}.maxReplicas", "required"),
    "storage differs": (lambda s: worker_container(s)["env"][0].update(value="s3://other/experiments"),
                        f"{WORKER}.template.spec.containers[0].env.LTRAY_STORAGE", "every pod must use the same"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("path", [CLUSTER, JOB], ids=["raycluster", "rayjob"])
def test_each_broken_manifest_is_refused_with_one_line(case, path, tmp_path, capsys):
    edit, field, message = CASES[case]
    doc = load(path)
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    edit(spec)
    if doc["kind"] == "RayJob":
        field = field.replace("spec.", "spec.rayClusterSpec.", 1)
    broken = tmp_path / path.name
    broken.write_text(yaml.safe_dump(doc))
    code, out = run_main(capsys, broken)
    assert code == 2
    assert len(out) == 1, out  # one finding, one line
    assert out[0].startswith(f"{broken}: {field}: ") and message in out[0], out


@pytest.mark.parametrize("edit, field, message", [
    (lambda j: j["spec"].update(shutdownAfterJobFinishes=False), "spec.shutdownAfterJobFinishes", "must be true"),
    (lambda j: j["spec"].pop("ttlSecondsAfterFinished"), "spec.ttlSecondsAfterFinished", "required"),
    (lambda j: j["spec"].update(entrypoint="python train.py"), "spec.entrypoint", "must run a sweep"),
    (lambda j: j["spec"].pop("rayClusterSpec"), "spec.rayClusterSpec", "required"),
])
def test_rayjob_rules(edit, field, message):
    doc = load(JOB)
    edit(doc)
    problems = check_kuberay_config(doc).problems
    assert any(p.path == field and message in p.message for p in problems), problems


def test_wrong_kind_and_api_version_are_named():
    doc = copy.deepcopy(load(CLUSTER))
    doc["apiVersion"], doc["kind"] = "ray.io/v1alpha1", "RayService"
    paths = {p.path for p in check_kuberay_config(doc).problems}
    assert paths == {"apiVersion", "kind"}


def test_a_ray_up_file_is_still_checked_as_one():
    assert "validate_config" in check_file(ROOT / "cluster.yaml").summary
