"""A real `sketchsearch serve` process on 127.0.0.1 and a free port, for the service tests.

The server is the command users run, started as a subprocess: its first stdout line names
the URL; the fixture waits for /readyz. Its stderr is kept and shown when a test fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

URL_LINE = re.compile(r"serving (http://\S+/)")
START_TIMEOUT = 60.0


def build_gallery_cli(engine: Path, images: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "sketchsearch.cli", "gallery", "build", "--engine", str(engine),
         "--images", str(images), "--out", str(out), "--quiet"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out


class ServeProcess:
    def __init__(
        self,
        engine: Path,
        index: Path | None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready: bool = True,
        block_torch: bool = False,
    ) -> None:
        args = ["serve", "--engine", str(engine)]
        if index is not None:
            args += ["--index", str(index)]
        args += ["--port", "0", *extra_args]
        if block_torch:  # the service must run where torch cannot be imported
            from blockers import BLOCK_TORCH

            code = f"{BLOCK_TORCH}\nsys.argv = {['sketchsearch', *args]!r}\n"
            code += "from sketchsearch.cli.main import main\nmain()\n"
            self.command = [sys.executable, "-c", code]
        else:
            self.command = [sys.executable, "-m", "sketchsearch.cli", *args]
        self.env = {**os.environ, **(env or {})}
        self.wait_ready = ready
        self.url = ""
        self.stderr_lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServeProcess:
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the first line, or "" when it exits
        match = URL_LINE.search(line)
        if match is None:
            self.process.wait(timeout=30)
            raise RuntimeError(f"serve did not start: {line!r} {self.stderr()}")
        self.url = match.group(1)
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        if self.wait_ready:
            self._wait_ready()
        return self

    def _drain_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line.rstrip("\n"))

    def stderr(self) -> str:
        time.sleep(0.05)
        return "\n".join(self.stderr_lines)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"serve at {self.url} not ready in {START_TIMEOUT} s: {self.stderr()}")

    def stop(self, how: signal.Signals = signal.SIGINT) -> int:
        """Stop it as a user or a supervisor would (Ctrl-C, or SIGTERM); the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(how)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
