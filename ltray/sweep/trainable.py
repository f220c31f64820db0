"""The Tune function trainable: a thin adapter from a trial's config to `run_trial_work`.

Each finished round is recorded in the trial's own files (the source of truth, on the
experiment's storage) and reported to Tune as scalars; nothing Tune checkpoints is needed to
resume: a restarted trial continues from its own resume state. A failure is recorded in the
trial's error.json from the exception itself, in one line, before Tune sees it.

The driver imports this module to hand Tune the trainable, and must not load torch; a trial's
worker imports it when it creates the trial, before the trial's clock (Tune's `time_total_s`)
starts, and imports what trains (torch) then, so that the clock counts the trial's work and not
its imports (as a direct `run_trajectory` timed after its imports does).
"""

from __future__ import annotations

import socket

import ray
from ray import tune

from ltray.errors import one_line
from ltray.experiment.records import TrialRecord
from ltray.plugins import PluginError
from ltray.storage import open_storage
from ltray.sweep import metrics
from ltray.sweep.ray_compat import in_ray_worker
from ltray.sweep.tune_io import read_trial_config, reported_metrics

if in_ray_worker():  # a trial's worker, loading the trainable: what trains is needed next
    import ltray.orchestration.trial_work  # noqa: F401
    import ltray.training.device  # noqa: F401


def run_trial(config: dict) -> None:
    from ltray.orchestration.trial_work import run_trial_work
    from ltray.training.device import claim_device

    trial = read_trial_config(config)
    spec, settings = trial.spec, trial.settings
    record = TrialRecord(open_storage(settings.experiment_uri), spec.trial_id)
    try:
        record.clear_error()  # running again: no longer failed
        device = claim_device(spec.resources.cpu, spec.resources.gpu)

        def report(row: dict, new: bool) -> None:
            tune.report(reported_metrics(row, _where()))
            if new:
                metrics.record_round(settings.experiment, spec.labels.arch, spec.labels.technique, spec.kind.value,
                                     float(row["seconds"]))

        try:
            run_trial_work(spec, record, device=device, root=settings.data_root, download=settings.download,
                           report=report)
        except PluginError as e:  # e.g. a worker without the plugin's package: say which node
            raise PluginError(f"{e} (on node {ray.util.get_node_ip_address()}, {socket.gethostname()})") from None
    except Exception as e:
        try:
            record.mark_error(one_line(e))
        except Exception:  # noqa: BLE001 - the storage failed too: the driver records that the trial died
            pass
        raise


def _where() -> dict:
    """node_id and assigned resources say where the trial runs (node_ip cannot tell apart nodes of one host)."""
    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "assigned": ctx.get_assigned_resources()}
