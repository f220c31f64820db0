"""Joining an existing Ray cluster, with one clear line for each way it fails: a cluster that
cannot be reached, and one that is up but refuses this client (Ray 2.60 reports a wrong or
missing auth token as a failed connection, so the port is probed to tell the two apart)."""

from __future__ import annotations

import os
import socket

import ray

from ltray.errors import ExperimentError


def join_cluster(address: str, namespace: str, runtime_env: dict | None = None) -> None:
    try:
        ray.init(address=address, namespace=namespace, runtime_env=runtime_env)
    except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, grpc errors
        raise ExperimentError(describe_failure(address, e, port_open(address))) from None


def port_open(address: str, timeout_s: float = 2.0) -> bool:
    """Whether something listens at the GCS address (host:port; ray:// and http:// forms too)."""
    target = address.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def describe_failure(address: str, error: BaseException, reachable: bool) -> str:
    text = " ".join(str(error).split())[:200]
    if not reachable:
        return (f"cannot reach the Ray cluster at {address}: nothing answers there ({text}); check the "
                "address and that the head node is up")
    mode = os.environ.get("RAY_AUTH_MODE") or "unset (= disabled)"
    return (f"the Ray cluster at {address} is up but refused this client ({text}); RAY_AUTH_MODE is {mode}: "
            "if the cluster uses token auth, set RAY_AUTH_MODE=token and its token (~/.ray/auth_token, or "
            "`ray get-auth-token` on the head); if it runs without auth, set RAY_AUTH_MODE=disabled")
