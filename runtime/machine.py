"""Which machine this is: a short fingerprint that tells two hosts with the same CPU apart.

Benchmarks record it beside their figures, and the runtime compares it before it trusts a
backend recommendation, since figures measured on one CPU do not transfer to another.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def machine_id() -> str:
    """systemd's /etc/machine-id (stable across reboots), else the host name."""
    with contextlib.suppress(OSError):
        text = Path("/etc/machine-id").read_text().strip()
        if text:
            return text
    return platform.node()


def machine_fingerprint() -> str:
    """12 hex digits that name this machine without revealing its id."""
    text = f"{machine_id()}|{cpu_model()}|{os.cpu_count()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def available_cpus() -> int:
    """The cores this process may run on (a container's or ``taskset``'s limit included)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
