"""The Tune function trainable: a thin adapter from a trial's config to `run_trial_work`.

Each finished round is recorded in the trial's own files (the source of truth, on the
experiment's storage) and reported to Tune as scalars; nothing Tune checkpoints is needed to
resume: a restarted trial continues from its own resume state.
"""

from __future__ import annotations

import socket

import ray
from ray import tune

from ltray.experiment.records import TrialRecord
from ltray.plugins import PluginError
from ltray.storage import open_storage
from ltray.sweep import metrics
from ltray.orchestration.plan import TrialSpec
from ltray.orchestration.trial_work import run_trial_work
from ltray.training.device import claim_device


def run_trial(config: dict) -> None:
    spec = TrialSpec.from_tune(config)
    record = TrialRecord(open_storage(config["exp_uri"]), spec.trial_id)
    device = claim_device(spec.resources.cpu, spec.resources.gpu)
    experiment = config["experiment"]

    def report(row: dict, new: bool) -> None:
        tune.report(_metrics(row))
        if new:
            metrics.record_round(experiment, spec.labels["arch"], spec.labels["technique"], spec.kind,
                                 float(row["seconds"]))

    try:
        run_trial_work(spec, record, device=device, root=config["data_root"], download=config["download"],
                       report=report)
    except PluginError as e:  # e.g. a worker without the plugin's package: say which node
        raise PluginError(f"{e} (on node {ray.util.get_node_ip_address()}, {socket.gethostname()})") from None


def _metrics(row: dict) -> dict:
    """A row as Tune metrics: Tune owns the key 'trial_id' (the callback takes ours from the config).
    node_id and assigned resources say where the trial runs (node_ip cannot tell apart nodes of one host)."""
    ctx = ray.get_runtime_context()
    return {k: v for k, v in row.items() if k != "trial_id"} | {"node_id": ctx.get_node_id(),
                                                                 "assigned": ctx.get_assigned_resources()}
