"""python -m ltray.cluster check: the shipped cluster files pass; broken variants fail with a line
naming the offending key; user mistakes give one line and exit 2, never a traceback."""

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ltray.cluster.__main__ import main
from ltray.cluster.check import check_config
from ltray.cluster.nodes import key_path, node_commands
from ltray.cluster.pins import Pin, PackagePins, package_pins, parse_requirements, pins_in
from ltray.cluster.schema import ray_problems, schema_problems
from ltray.cluster.shell import assignments, bind_mounts, flag_values, mounts, simple_commands
from ltray.cluster.storage import storage_rules

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["cluster.yaml", "cluster-gcp.yaml"]


@pytest.fixture(scope="module")
def aws():
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def problems_of(config):
    return [(p.path, p.message) for p in check_config(config).problems]


def run_main(capsys, *args):
    code = main(["check", *map(str, args)])
    return code, capsys.readouterr().out.strip().splitlines()


# ---- the shipped files -------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_passes(name, capsys):
    code, out = run_main(capsys, ROOT / name)
    assert code == 0, out
    assert out[-1].startswith(f"{ROOT / name}: OK (")
    assert "Ray schema + validate_config" in out[-1]  # Ray's own offline check ran too
    assert "torch==2.14.1 torchvision==0.29.1 ray==2.60.0" in out[-1]
    # the only warnings are the placeholders a user must fill in
    assert all("warning" in line and "REPLACE_ME" in line for line in out[:-1])


def test_shipped_files_follow_the_brief(aws):
    head = aws["available_node_types"][aws["head_node_type"]]
    assert head["resources"]["CPU"] == 0
    workers = [v for k, v in aws["available_node_types"].items() if k != aws["head_node_type"]]
    assert all(w["min_workers"] == 0 and w["resources"]["GPU"] >= 1 for w in workers)
    assert aws["idle_timeout_minutes"] > 0 and aws["provider"]["region"] == "us-west-2"
    text = (ROOT / "cluster.yaml").read_text().lower()
    assert "aws_secret" not in text and "aws_access_key" not in text
    assert "--metrics-export-port=8080" in " ".join(aws["head_start_ray_commands"])


# ---- broken variants: each fails, naming the key -----------------------------------------------

def set_resource(node, name, value):
    return lambda c: c["available_node_types"][node]["resources"].__setitem__(name, value)


def drop_gpus(c):
    for spec in c["available_node_types"].values():
        spec["resources"].pop("GPU", None)


def replace_in_setup(old, new):
    def edit(c):
        c["setup_commands"] = [cmd.replace(old, new) for cmd in c["setup_commands"]]
    return edit


def drop_storage(c):
    c["setup_commands"] = [cmd for cmd in c["setup_commands"] if "LTRAY_STORAGE" not in cmd]


NFS_SETUP = [
    'pip install -q -c ~/ltray/requirements/lock.txt "torch==2.14.1" "torchvision==0.29.1" "ray[default,tune]==2.60.0"',
    'pip install -q -c ~/ltray/requirements/lock.txt -e ~/ltray"[sweep]"',
    "grep -q LTRAY_STORAGE ~/.bashrc || echo 'export LTRAY_STORAGE=/mnt/ltray/experiments' >> ~/.bashrc",
    "grep -q RAY_AUTH_MODE ~/.bashrc || echo 'export RAY_AUTH_MODE=disabled' >> ~/.bashrc",
]
NFS_MOUNT = [
    "sudo mkdir -p /mnt/ltray",
    "mountpoint -q /mnt/ltray || sudo mount -t nfs4 -o nfsvers=4.1,hard fs-1.efs.us-west-2.amazonaws.com:/ /mnt/ltray",
]


def pip_and_nfs(c):
    """The documented alternative (docs/cluster.md): Ray's own images, pip installs in the setup
    commands and an EFS mount for the experiment folder, instead of ltray's image and a bucket."""
    c["docker"] = {"image": "rayproject/ray:2.60.0-py311-gpu", "head_image": "rayproject/ray:2.60.0-py311-cpu",
                   "container_name": "ray_container",
                   "run_options": ["--ulimit nofile=65536:65536", "--volume=/mnt/ltray:/mnt/ltray"]}
    c["initialization_commands"] = list(NFS_MOUNT)
    c["setup_commands"] = list(NFS_SETUP)
    c["head_setup_commands"] = ['pip install -q "boto3>=1.4.8"']


def variant(*edits):
    def edit(c):
        pip_and_nfs(c)
        for e in edits:
            e(c)
    return edit


@pytest.fixture
def nfs(aws):
    c = copy.deepcopy(aws)
    pip_and_nfs(c)
    return c


def min_over_max(c):
    c["max_workers"] = 3
    c["available_node_types"]["gpu_1x_a10g"]["min_workers"] = 2
    c["available_node_types"]["gpu_4x_a10g"]["min_workers"] = 2


BROKEN = {
    "head takes trials": (set_resource("head", "CPU", 4), "available_node_types.head.resources.CPU",
                          "must be 0"),
    "head has a GPU": (set_resource("head", "GPU", 1), "available_node_types.head.resources.GPU",
                       "absent or 0"),
    "no GPU worker": (drop_gpus, "available_node_types", "no worker type can provide GPUs"),
    "unknown top-level key": (lambda c: c.__setitem__("ltray", {"storage": "/x"}), "ltray",
                              "not allowed by Ray's cluster schema"),
    "unknown node key": (lambda c: c["available_node_types"]["gpu_1x_a10g"].__setitem__("gpus", 1),
                         "available_node_types.gpu_1x_a10g.gpus", "unknown key 'gpus'"),
    "fractional GPU": (set_resource("gpu_1x_a10g", "GPU", 0.5),
                       "available_node_types.gpu_1x_a10g.resources.GPU", "whole number"),
    "wrong torch pin": (variant(replace_in_setup("torch==2.14.1", "torch==2.13.0")), "setup_commands[0]",
                        "torch==2.13.0 but ltray pins torch==2.14.1"),
    "ray without extras": (variant(replace_in_setup("ray[default,tune]==", "ray==")), "setup_commands[0]",
                           "without the extras [default,tune]"),
    "Ray's image without pins": (lambda c: c["docker"].__setitem__("image", "rayproject/ray:2.60.0-py311-gpu"),
                                 "setup_commands", "must install torch==2.14.1, torchvision==0.29.1, ray==2.60.0"),
    "an image of another ltray": (lambda c: c["docker"].__setitem__("image", "ecr.example/ltray:0.1.0"),
                                  "docker.image", "is built for ltray 0.1.0 but this is ltray"),
    "missing storage": (drop_storage, "setup_commands", "no LTRAY_STORAGE="),
    "storage on a local disk": (replace_in_setup("s3://REPLACE_ME-bucket/experiments", "/home/ray/exp"),
                                "initialization_commands", "not inside a network file system"),
    "mount not bound into docker": (variant(lambda c: c["docker"].__setitem__("run_options", [])),
                                    "docker.run_options", "--volume=/mnt/ltray:/mnt/ltray"),
    "max_workers below min sum": (min_over_max, "max_workers", "less than the sum"),
    "unknown head type": (lambda c: c.__setitem__("head_node_type", "cpu"), "head_node_type",
                          "unknown node type 'cpu'"),
    "old Ray image": (lambda c: c["docker"].__setitem__("image", "rayproject/ray:2.50.0-py311-gpu"),
                      "docker.image", "has Ray 2.50.0 but ltray pins ray==2.60.0"),
    "no metrics port on workers": (
        lambda c: c.__setitem__("worker_start_ray_commands", [
            "export RAY_AUTH_MODE=disabled; ray start --address=$RAY_HEAD_IP:6379"]),
        "worker_start_ray_commands", "--metrics-export-port"),
    "auth modes differ": (
        lambda c: c.__setitem__("worker_start_ray_commands", [
            "ray start --address=$RAY_HEAD_IP:6379 --metrics-export-port=8080"]),
        "worker_start_ray_commands", "RAY_AUTH_MODE is unset here but disabled"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_variant_names_the_key(name, aws, tmp_path, capsys):
    edit, path, message = BROKEN[name]
    config = copy.deepcopy(aws)
    edit(config)
    target = tmp_path / "cluster.yaml"
    target.write_text(yaml.safe_dump(config))
    code, out = run_main(capsys, target)
    assert code == 2
    assert any(line.startswith(f"{target}: {path}: ") and message in line for line in out), out
    assert not any("OK" in line.split(": ")[1] for line in out)


def test_one_message_per_key(aws):
    """Ray's schema also rejects a fractional resource; only ltray's clearer message is kept."""
    config = copy.deepcopy(aws)
    set_resource("gpu_1x_a10g", "GPU", 0.5)(config)
    assert problems_of(config) == [
        ("available_node_types.gpu_1x_a10g.resources.GPU", "must be a whole number >= 0, got 0.5 "
         "(fractional GPU shares are set per architecture in the sweep file)")]


def test_worker_override_must_repeat_setup(nfs):
    config = nfs
    config["available_node_types"]["gpu_4x_a10g"]["worker_setup_commands"] = [
        'pip install "torch==2.14.1"']
    found = problems_of(config)
    where = "available_node_types.gpu_4x_a10g.worker_setup_commands"
    assert (where, "node type gpu_4x_a10g must install torchvision==0.29.1, ray==2.60.0: pin them "
            "in a pip install setup command") in found
    assert any(p == where and "LTRAY_STORAGE" in m for p, m in found)
    assert all(p == where for p, _ in found)  # the head and the other worker type are fine


def test_storage_uri_is_accepted_and_must_agree(nfs):
    config = nfs
    replace_in_setup("/mnt/ltray/experiments", "s3://my-bucket/ltray")(config)
    assert problems_of(config) == []
    config["available_node_types"]["gpu_4x_a10g"]["worker_setup_commands"] = (
        config["setup_commands"][:2] + ["export LTRAY_STORAGE=gs://other/ltray"])
    assert problems_of(config) == [
        ("available_node_types.gpu_4x_a10g.worker_setup_commands[2]",
         "LTRAY_STORAGE=gs://other/ltray differs from LTRAY_STORAGE=s3://my-bucket/ltray set at "
         "setup_commands[2]: every node must use the same experiment folder")]


def test_storage_value_must_be_literal(nfs):
    config = nfs
    replace_in_setup("/mnt/ltray/experiments", "/mnt/${RUN}/exp")(config)
    [(path, message)] = problems_of(config)
    assert path == "setup_commands[2]" and "must be literal" in message


def test_storage_without_docker_needs_only_the_mount(nfs):
    config = nfs
    del config["docker"]
    assert problems_of(config) == []
    config["initialization_commands"] = [c for c in config["initialization_commands"]
                                         if "mount -t" not in c]
    [(path, message)] = problems_of(config)
    assert path == "initialization_commands" and "node types head, gpu_1x_a10g" in message


def test_yaml_syntax_error_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster_name: ltray\nprovider:\n  type: aws\n  region: [us-west-2\n")
    code, out = run_main(capsys, bad)
    assert code == 2 and len(out) == 1
    assert out[0].startswith(f"{bad}: YAML syntax error: line 5, column 1: ")


def test_duplicate_key_is_an_error(tmp_path, capsys):
    dup = tmp_path / "dup.yaml"
    dup.write_text("cluster_name: a\nmax_workers: 2\nmax_workers: 3\n")
    code, out = run_main(capsys, dup)
    assert code == 2 and out == [f"{dup}: YAML syntax error: line 3, column 1: duplicate key 'max_workers'"]


@pytest.mark.parametrize("text, message", [("", "got NoneType"), ("- a\n", "got list")])
def test_not_a_mapping(tmp_path, capsys, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    code, out = run_main(capsys, path)
    assert code == 2 and out == [f"{path}: expected a mapping of cluster settings, {message}"]


def test_missing_file_and_exit_code_via_subprocess(tmp_path):
    missing = tmp_path / "nope.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "ltray.cluster", "check", "cluster.yaml", str(missing)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2  # one good file does not hide a bad one
    last = result.stdout.strip().splitlines()[-1]
    assert last == f"{missing}: cannot read cluster file (No such file or directory)"
    assert "cluster.yaml: OK (" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


# ---- the small pieces --------------------------------------------------------------------------

def test_schema_problems_report_every_path():
    config = {"cluster_name": "x", "provider": {"type": "aws"}, "bogus": 1,
              "available_node_types": {"w": {"resources": {"GPU": 1.5}}}}
    paths = {p.path for p in schema_problems(config)}
    assert paths == {"bogus", "available_node_types.w", "available_node_types.w.resources.GPU"}


def test_ray_validate_config_runs_offline(aws):
    assert ray_problems(copy.deepcopy(aws)) == ([], True)
    broken = copy.deepcopy(aws)
    broken["provider"]["type"] = "nocloud"
    found, ran = ray_problems(broken)
    assert ran and "Unsupported node provider" in found[0].message


def test_key_path_quotes_dotted_names():
    assert key_path("available_node_types", "ray.head.default", "resources", "CPU") == \
        'available_node_types["ray.head.default"].resources.CPU'
    assert key_path("setup_commands", 3) == "setup_commands[3]"


def test_shell_parsing():
    assert simple_commands("a -q x || sudo mount b c; echo 'd; e'") == [
        ["a", "-q", "x"], ["sudo", "mount", "b", "c"], ["echo", "d; e"]]
    [m] = mounts("mountpoint -q /m || sudo mount -t nfs4 -o a=1,b fs-1.efs:/ /m")
    assert (m.fstype, m.source, m.target, m.is_network) == ("nfs4", "fs-1.efs:/", "/m", True)
    assert mounts("sudo mount 10.0.0.2:/share /data")[0].is_network  # host:/path source
    assert not mounts("sudo mount /dev/nvme1n1 /data")[0].is_network  # a local disk
    assert bind_mounts(["--ulimit nofile=1:1", "-v /a:/b:ro", "--volume=/c:/d",
                        "--mount type=bind,source=/e,target=/f"]) == [("/e", "/f"), ("/a", "/b"),
                                                                       ("/c", "/d")]
    line = "grep -q X f || echo 'export LTRAY_STORAGE=/s' >> f"
    assert assignments(line, "LTRAY_STORAGE") == ["/s"]
    line = "ray start --head --metrics-export-port 9090"
    assert flag_values(line, "--metrics-export-port") == ["9090"]


def test_node_commands_follow_ray_overrides(nfs):
    config = nfs
    config["available_node_types"]["gpu_4x_a10g"]["initialization_commands"] = ["echo own"]
    nodes = {n.node_type: n for n in node_commands(config)}
    assert [p for p, _ in nodes["head"].setup][-1] == "head_setup_commands[0]"
    assert [p for p, _ in nodes["gpu_1x_a10g"].setup] == [f"setup_commands[{i}]" for i in range(4)]
    assert nodes["gpu_4x_a10g"].host == (
        ("available_node_types.gpu_4x_a10g.initialization_commands[0]", "echo own"),)
    assert nodes["head"].images == (("docker.head_image", "rayproject/ray:2.60.0-py311-cpu"),)
    assert nodes["gpu_1x_a10g"].images == (("docker.image", "rayproject/ray:2.60.0-py311-gpu"),)
    # the override drops the EFS mount on that worker type only
    problems, _ = storage_rules(list(nodes.values()))
    paths = [p.path for p in problems]
    assert paths == ["available_node_types.gpu_4x_a10g.initialization_commands"]


def test_pins_come_from_the_lock(tmp_path):
    pins = package_pins()
    assert pins.source.endswith("requirements/lock.txt")
    assert pins.pins["torch"] == Pin("2.14.1")
    assert pins.pins["ray"] == Pin("2.60.0", frozenset({"default", "tune"}))  # extras from pyproject.toml
    assert pins.requires_python == ">=3.10,<3.14"
    meta = parse_requirements(["torch==2.14.1", 'pytest==9.2.0; extra == "test"', "numpy>=2",
                               'numpy==1.0; python_version < "3"'])
    assert meta.pins == {"torch": Pin("2.14.1")}  # other extras, other Pythons and ranges skipped
    assert pins_in('pip install "Ray[default, tune]==2.60.0" torch_vision==1 numpy>=2') == [
        ("ray", frozenset({"default", "tune"}), "2.60.0"), ("torch-vision", frozenset(), "1")]
    # a lock with another torch makes the shipped cluster file fail, naming the lock
    (tmp_path / "lock.txt").write_text((ROOT / "requirements" / "lock.txt").read_text()
                                       .replace("torch==2.14.1", "torch==2.15.0"))
    other = package_pins(ROOT / "pyproject.toml", tmp_path / "lock.txt")
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    pip_and_nfs(config)
    problems = problems_of_with(config, other)
    assert ("setup_commands[0]", f"torch==2.14.1 but ltray pins torch==2.15.0 ({tmp_path / 'lock.txt'})") \
        in problems


def test_installed_ltray_without_checkout_pins_what_is_installed(tmp_path):
    import importlib.metadata

    pins = package_pins(tmp_path / "pyproject.toml", tmp_path / "lock.txt")  # no checkout there
    assert pins.source == "the versions installed with ltray"
    assert pins.pins["ray"] == Pin(importlib.metadata.version("ray"), frozenset({"default", "tune"}))
    assert pins.pins["torch"].version == importlib.metadata.version("torch")


def problems_of_with(config, pins):
    return [(p.path, p.message) for p in check_config(config, pins=pins).problems]


def test_without_pins_the_version_rule_is_skipped(aws):
    result = check_config(copy.deepcopy(aws), pins=PackagePins())
    assert result.ok and any("version rule skipped" in w.message for w in result.warnings)


# ---- the Grafana dashboard ---------------------------------------------------------------------

# metric -> the series Prometheus sees (Ray adds ray_, counters get _total, histograms 3 series)
EXPORTED = {
    "ray_ltray_masks_received": ["ray_ltray_masks_received_total"],
    "ray_ltray_rounds_finished": ["ray_ltray_rounds_finished_total"],
    "ray_ltray_consensus_groups_complete": ["ray_ltray_consensus_groups_complete"],
    "ray_ltray_consensus_sparsity": ["ray_ltray_consensus_sparsity"],
    "ray_ltray_round_seconds": ["ray_ltray_round_seconds_bucket", "ray_ltray_round_seconds_sum",
                                "ray_ltray_round_seconds_count"],
    "ray_ltray_followups": ["ray_ltray_followups"],
    "ray_ltray_progress": ["ray_ltray_progress"],
    "ray_ltray_eta_seconds": ["ray_ltray_eta_seconds"],
    "ray_ltray_trials_running": ["ray_ltray_trials_running"],
}
GRAFANA_BUILTINS = {"__rate_interval", "__range", "__interval"}


def test_grafana_dashboard_covers_every_metric():
    dashboard = json.loads((ROOT / "monitoring" / "grafana-ltray.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    series = {s for e in exprs for s in re.findall(r"\bray_ltray_\w+", e)}
    for metric, names in EXPORTED.items():
        assert set(names) <= series, metric
    assert series <= {n for names in EXPORTED.values() for n in names}  # no typo'd names
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"]
               if p["type"] != "row")
    assert any('state=~"pending|running|done"' in e for e in exprs)
    assert any("histogram_quantile" in e and "_bucket" in e for e in exprs)


def test_a_node_without_a_machine_image_is_warned(aws):
    """Without ImageId Ray boots its end-of-life default AMI, whose driver is too old for torch."""
    c = copy.deepcopy(aws)
    del c["available_node_types"]["gpu_1x_a10g"]["node_config"]["ImageId"]
    result = check_config(c)
    assert result.ok  # a warning: offline, the check cannot tell which images exist
    (warning,) = [w for w in result.warnings if "machine image" in w.message]
    assert warning.path == 'available_node_types.gpu_1x_a10g.node_config.ImageId'
    assert "end-of-life" in warning.message and "resolve:ssm:" in warning.message
    gcp = yaml.safe_load((ROOT / "cluster-gcp.yaml").read_text())
    for disk in gcp["available_node_types"]["gpu_1x_l4"]["node_config"]["disks"]:
        disk["initializeParams"].pop("sourceImage")
    assert any("machine image" in w.message and "gpu_1x_l4" in w.path for w in check_config(gcp).warnings)


def test_grafana_dashboard_keeps_experiments_apart_and_is_well_formed():
    dashboard = json.loads((ROOT / "monitoring" / "grafana-ltray.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert re.fullmatch(r"label_values\(ray_ltray_\w+(\{.*\})?, experiment\)", variables["experiment"]["query"]["query"])
    # every query filters by the chosen experiment(s), except those of the variables it depends on
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["query"]["query"] for n, v in variables.items() if v["type"] == "query"
                and n not in ("SessionName", "experiment")]
    for query in queries:
        for selector in re.findall(r"\bray_ltray_\w+(\{[^}]*\})?", query):
            assert 'experiment=~"$experiment"' in selector, query
        assert set(re.findall(r"\$\{?(\w+)", query)) <= set(variables) | GRAFANA_BUILTINS, query
    exprs = {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in dashboard["panels"]}
    assert any("ray_ltray_eta_seconds" in e for e in exprs["ETA"])
    assert any(re.search(r"by \([^)]*\bdevice\b[^)]*\) \(ray_ltray_trials_running", e)
               for e in exprs["Running trials by device"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"{p['title']} overlaps another panel"
        cells |= area
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs)), p["title"]
