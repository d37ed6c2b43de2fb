"""Facts about the machine a benchmark ran on, recorded beside its figures.

The CPU model string alone does not tell two hosts apart ("AMD EPYC", 2 cores, on two cloud
hosts whose figures differ 2-3.5x), so every record also carries a ``fingerprint``: a short hash
of the host's machine id, CPU and core count. A report compares fingerprints to decide whether
a result was measured on the machine its heading names. The fingerprint itself is the
runtime's (``runtime/machine.py``), which checks it before using a backend recommendation.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sketchsearch.runtime.machine import cpu_model, machine_fingerprint, machine_id

__all__ = [
    "cpu_model",
    "describe_machine",
    "machine_facts",
    "machine_fingerprint",
    "machine_id",
    "run_record",
]


def machine_facts(**versions: str) -> dict[str, str]:
    """CPU, core count, fingerprint, Python and platform, plus the library versions named."""
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "fingerprint": machine_fingerprint(),
        "python": platform.python_version(),
        "system": platform.platform(),
        **versions,
    }


def describe_machine(environment: Mapping[str, Any] | None) -> str:
    """'AMD EPYC (2 cores, machine 3d1219c7c4c5)': how a report names where figures came from."""
    env = environment or {}
    machine = env.get("fingerprint") or "unrecorded"
    return f"{env.get('cpu', '?')} ({env.get('cores', '?')} cores, machine {machine})"


def run_record(argv: Sequence[str] | None = None) -> dict[str, str]:
    """When and by which command a result file was written: its ``date`` and ``command``."""
    args = list(sys.argv if argv is None else argv)
    if args and not args[0].endswith(".py"):  # a console script: named as the user typed it
        args = [Path(args[0]).name, *args[1:]]
    elif args:
        args = ["python", *args]
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(args) if args else "?",
    }
