"""Cluster support: `python -m ltray.cluster check cluster.yaml` validates a Ray autoscaler
file offline (Ray's schema + ltray's rules) so `ray up` does not fail half-way. Never imports
ray at module level.
"""

from ltray.cluster.check import CheckResult, check_config, check_file, load_cluster_file
from ltray.cluster.problems import Problem

__all__ = ["CheckResult", "Problem", "check_config", "check_file", "load_cluster_file"]
