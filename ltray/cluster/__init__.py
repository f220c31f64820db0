"""Cluster support: `python -m ltray.cluster check FILE` validates a Ray autoscaler file (Ray's
schema + ltray's rules) or a KubeRay manifest offline, so `ray up` or `kubectl apply` does not
fail half-way; `ltray slurm` (slurm.py, slurm_node.py) writes and runs SLURM batch jobs. Never
imports ray at module level.
"""

from ltray.cluster.check import CheckResult, check_config, check_file, load_cluster_file
from ltray.cluster.problems import Problem

__all__ = ["CheckResult", "Problem", "check_config", "check_file", "load_cluster_file"]
