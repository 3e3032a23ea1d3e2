"""A ``frontier serve`` server as a child process: start it on a free port, wait until ``/health`` answers,
stop it. Used by the stress benchmark, the serving tests and anyone scripting the server from Python."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_server(model_dir: Path | str, *extra: str, timeout: float = 240) -> tuple[subprocess.Popen, str]:
    """``python -m frontierkit.serve --model DIR --port P ...`` (1 thread) and its base url once /health answers."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "frontierkit.serve", "--model", str(model_dir), "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, deadline = f"http://127.0.0.1:{port}", time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"frontier serve exited: {proc.stdout.read()}")
        if _healthy(url):
            return proc, url
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"frontier serve did not answer /health within {timeout} s")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
