"""`ltray slurm` and each node's part of the job, without SLURM or Ray: the #SBATCH lines and settings
come from the flags, bad flags give one line and exit 2 with nothing written, and ports, temp dir,
resources and `ray start` arguments come from the job's environment (tests/test_slurm.py runs the
script on a real SLURM)."""

import ipaddress
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ltray.cluster import slurm_node
from ltray.cluster.slurm import SlurmJob, main, render, time_limit_s
from ltray.errors import ConfigError
from tests.sweep_helpers import TINY_SWEEP

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sweep_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_SWEEP))
    return path


def test_script_from_flags(sweep_file, tmp_path, capsys):
    out = tmp_path / "job.sbatch"
    code = main([str(sweep_file), "--nodes", "4", "--gpus-per-node", "8", "--cpus-per-node", "64", "--time", "2-00",
                 "--partition", "gpu", "--account", "lab", "--storage", "s3://bucket/exp", "--max-requeues", "5",
                 "--signal-lead", "900", "-o", str(out)])
    assert code == 0, capsys.readouterr()
    text = out.read_text()
    sbatch = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    for want in ("--nodes=4", "--ntasks-per-node=1", "--gpus-per-node=8", "--cpus-per-task=64", "--time=2-00",
                 "--partition=gpu", "--account=lab", "--requeue", "--signal=B:TERM@900", "--open-mode=append"):
        assert f"#SBATCH {want}" in sbatch, want
    assert f"LTRAY_SWEEP={sweep_file}" in text and "LTRAY_MAX_REQUEUES=5" in text
    assert "export LTRAY_STORAGE=s3://bucket/exp" in text and "LTRAY_WORKER_GPUS=8" in text
    assert 'scontrol requeue "$SLURM_JOB_ID"' in text and "--resume --take-over" in text
    assert "ray stop" not in text and "symmetric-run" not in text
    assert subprocess.run(["bash", "-n", str(out)]).returncode == 0  # the script parses


def test_defaults_leave_gpus_and_storage_out(sweep_file):
    text = render(SlurmJob(sweep=sweep_file, time="30"))
    assert "--gpus-per-node" not in text.split("# ---- the job")[0]
    assert "LTRAY_STORAGE" not in text.split("# ---- the job")[0]


@pytest.mark.parametrize("flags, message", [
    (["--time", "tomorrow"], "--time 'tomorrow': not a SLURM time limit"),
    (["--time", "10", "--signal-lead", "600"], "--signal-lead 600: must be more than 0 and less than the time limit"),
    (["--time", "60", "--nodes", "0"], "--nodes 0: must be at least 1"),
    (["--time", "60", "--partition", "gpu;rm -rf"], "--partition 'gpu;rm -rf': only letters"),
    (["--time", "60", "--storage", "s3//bucket"], None),  # relative: made absolute, so accepted
])
def test_bad_flags_one_line_nothing_written(flags, message, sweep_file, tmp_path, capsys):
    out = tmp_path / "job.sbatch"
    code = main([str(sweep_file), *flags, "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    if message is None:
        assert code == 0
        return
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_a_bad_sweep_file_is_found_before_the_queue(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY_SWEEP, "rounds": "many"}))
    assert main([str(bad), "--time", "60"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "rounds" in err[0]


def test_ltray_slurm_is_a_subcommand(sweep_file):
    out = subprocess.run([sys.executable, "-m", "ltray.cli", "slurm", str(sweep_file), "--time", "1:00:00"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.startswith("#!/bin/bash\n#SBATCH"), out.stderr


@pytest.mark.parametrize("text, seconds", [("30", 1800), ("1:30", 90), ("2:00:00", 7200), ("1-0", 86400),
                                           ("1-2:30", 95400), ("0-0:0:5", 5)])
def test_time_limits(text, seconds):
    assert time_limit_s(text) == seconds


def test_time_limit_zero_is_refused():
    with pytest.raises(ConfigError):
        time_limit_s("0")


# ---- each node's part ---------------------------------------------------------------------------

def test_ports_come_from_the_job_id_and_move_on_when_taken():
    a, b = slurm_node.pick_ports(1234, lambda p: True), slurm_node.pick_ports(1235, lambda p: True)
    assert a.base != b.base and set(a.all()).isdisjoint(b.all())  # neighbouring jobs do not overlap
    assert slurm_node.PORT_LOW <= a.base and a.base + slurm_node.BLOCK <= slurm_node.PORT_HIGH + slurm_node.BLOCK
    assert not set(a.all()) & set(range(10002, 20000)) and 6379 not in a.all()  # a default Ray's ports
    taken = set(a.all())
    moved = slurm_node.pick_ports(1234, lambda p: p not in taken)
    assert moved.base == a.base + slurm_node.BLOCK


def test_a_port_in_use_is_seen():
    with socket.socket() as s:
        s.bind(("", 0))
        s.listen()
        assert not slurm_node.port_free(s.getsockname()[1])


def test_temp_dir_is_short_and_per_run():
    env = {"SLURM_JOB_ID": "4242", "SLURM_RESTART_COUNT": "3", "TMPDIR": "/scratch/" + "x" * 80}
    path = slurm_node.job_dir(env)
    assert path == Path("/tmp/ltray-4242.3")  # $TMPDIR too long for Ray's socket paths
    assert len(str(path)) + slurm_node.SOCKET_ROOM <= slurm_node.MAX_SOCKET_PATH
    assert slurm_node.job_dir({"SLURM_JOB_ID": "7", "TMPDIR": "/local/job7"}) == Path("/local/job7/ltray-7.0")


@pytest.mark.parametrize("env, cpus, gpus", [
    ({"SLURM_CPUS_ON_NODE": "16", "SLURM_GPUS_ON_NODE": "4"}, 16, 4),
    ({"SLURM_CPUS_ON_NODE": "8", "CUDA_VISIBLE_DEVICES": "2,5"}, 8, 2),
    ({"SLURM_CPUS_ON_NODE": "2", "CUDA_VISIBLE_DEVICES": ""}, 2, 0),
])
def test_resources_come_from_the_allocation(env, cpus, gpus):
    assert slurm_node.allocated(env) == (cpus, gpus)


def test_ray_start_arguments_name_every_port(tmp_path):
    ports = slurm_node.Ports(25000)
    head = slurm_node.ray_start_args("head", ports, tmp_path, "10.0.0.5", 16, 4)
    assert head[:2] == ["start", "--block"] and "--head" in head
    assert head[head.index("--port") + 1] == "25000" and head[head.index("--num-gpus") + 1] == "4"
    assert head[head.index("--temp-dir") + 1] == str(tmp_path)
    assert head[head.index("--node-ip-address") + 1] == "10.0.0.5"
    worker = slurm_node.ray_start_args("worker", ports, tmp_path, "10.0.0.6", 16, 4, "10.0.0.5:25000")
    assert worker[worker.index("--address") + 1] == "10.0.0.5:25000" and "--head" not in worker
    given = {a for a in head if a.endswith("-port")}
    assert {"--node-manager-port", "--object-manager-port", "--metrics-export-port", "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--ray-client-server-port",
            "--min-worker-port", "--max-worker-port", "--port"} <= given


def test_node_ip_prefers_the_override_then_a_routable_address():
    assert slurm_node.node_ip("anything", {"LTRAY_NODE_IP": "10.1.2.3"}) == "10.1.2.3"
    # "localhost" resolves to loopback only: the address on the default route, if there is one
    ip = ipaddress.ip_address(slurm_node.node_ip("localhost", {}))
    assert ip.version == 4 and (not ip.is_loopback or not has_route())


def has_route() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return True
        except OSError:
            return False


def test_outside_a_job_one_line(monkeypatch, capsys):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert slurm_node.main(["address"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SLURM_JOB_ID is not set" in err[0]


def test_the_driver_waits_until_the_head_has_started(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        address = f"127.0.0.1:{s.getsockname()[1]}"
        ready = tmp_path / "head.ready"
        with pytest.raises(slurm_node.NodeError, match="did not answer"):  # the port is open, Ray not yet up
            slurm_node.wait_for_head(address, 1.0, ready=ready)
        ready.touch()
        slurm_node.wait_for_head(address, 5.0, ready=ready)


def test_waiting_stops_when_the_head_has_ended(tmp_path):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    with pytest.raises(slurm_node.NodeError, match="ended before it answered"):
        slurm_node.wait_for_head("127.0.0.1:1", 60.0, pid=ended.pid)
