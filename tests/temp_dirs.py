"""Temp dirs for Ray that must stay short, outside the run's own temp folder (see conftest.py)."""

from __future__ import annotations

import os
import shutil
import tempfile

RUN_TMPDIR = "LTRAY_TEST_TMPDIR"  # set by conftest: the run's own temp folder
SYSTEM_TMPDIR = "LTRAY_TEST_SYSTEM_TMPDIR"  # set by conftest: the temp dir before the run's own folder
_short_dirs: list[str] = []


def short_tmpdir(prefix: str) -> str:
    """A private dir directly in the system temp dir, removed when this test process ends: Ray's
    socket paths under it are capped at 107 bytes, and a driver's local Ray nests two levels in it
    (`<dir>/ltray-ray-*/session_*/sockets/plasma_store`), too deep for the run's own folder."""
    path = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get(SYSTEM_TMPDIR, "/tmp"))
    _short_dirs.append(path)
    return path


def remove_short_tmpdirs() -> None:
    while _short_dirs:
        shutil.rmtree(_short_dirs.pop(), ignore_errors=True)
