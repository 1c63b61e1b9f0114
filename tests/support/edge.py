"""A real nginx edge on loopback, configured by `cdn.edge.render`, for tests and the benchmark.

    with NginxEdge(tmp_path / "edge", origin_url) as edge:
        httpx.get(edge.media_url + "/v_x/r_y/master.m3u8")
        edge.origin_requests("/media/v_x/r_y/master.m3u8")   # what reached the origin

Debian's nginx (`apt-get install -y nginx`, RECIPES.md "A real CDN edge") runs as
`nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'` with its cache, logs and temp files under
DIR. Its access log is the edge's JSON log (`$upstream_cache_status`, the upstream address
and status): `log()` reads it, `clear_log()` truncates it (never delete it: nginx keeps
writing to the file it opened). Start the origin first: nginx does not collapse requests that
fail to connect.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import httpx

from cdn.edge import HEALTH_PATH, EdgeConfig, render
from tests.support.services import free_port

NGINX = Path("/usr/sbin/nginx")
INSTALL = "apt-get install -y nginx"


class NginxEdge:
    """nginx with the rendered edge configuration, listening on 127.0.0.1:`port`."""

    def __init__(
        self, directory: Path, origin: str, port: int | None = None, **options: Any
    ) -> None:
        assert NGINX.is_file(), f"nginx is missing: {NGINX} (install it: {INSTALL})"
        self.dir = Path(directory).resolve()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.media_url = f"{self.url}/media"
        self.cache_dir = self.dir / "cache"
        self.access_log = self.dir / "access.log"
        self.error_log = self.dir / "error.log"
        self.config = EdgeConfig(
            origin=origin,
            listen=f"127.0.0.1:{self.port}",
            cache_dir=str(self.cache_dir),
            access_log=str(self.access_log),
            error_log=str(self.error_log),
            pid=str(self.dir / "nginx.pid"),
            temp_dir=str(self.dir / "temp"),
            # As root the workers would run as `nobody`, who cannot enter pytest's 0700 dirs.
            user="root" if os.geteuid() == 0 else "",
            **options,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, deadline_s: float = 20.0) -> NginxEdge:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "temp").mkdir(exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(render(self.config))
        argv = [str(NGINX), "-p", str(self.dir), "-c", str(conf)]
        checked = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"nginx -t refused the edge config:\n{checked.stderr}"
        self._stderr = (self.dir / "nginx.stderr").open("ab")
        self.proc = subprocess.Popen(
            [*argv, "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + deadline_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.errors()}")
            try:
                if httpx.get(self.url + HEALTH_PATH, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not answer within {deadline_s} s:\n{self.errors()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGQUIT (graceful: workers finish their requests), SIGKILL to the group after."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> NginxEdge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what happened ------------------------------------------------------------------------
    def log(self) -> list[dict[str, str]]:
        """Every access log entry so far (one JSON object a line, see cdn/edge.py)."""
        if not self.access_log.is_file():
            return []
        entries = []
        for line in self.access_log.read_text().splitlines():
            if line.strip():
                entries.append(json.loads(line))
        return entries

    def clear_log(self) -> None:
        """Truncate the access log (as `: > access.log`): nginx appends to the same file."""
        with open(self.access_log, "r+b") as fh:
            fh.truncate(0)

    def origin_requests(self, uri: str | None = None) -> list[dict[str, str]]:
        """The log entries that went to the origin (an upstream address is set), for `uri`."""
        return [
            entry
            for entry in self.log()
            if entry["upstream"] and (uri is None or entry["uri"] == uri)
        ]

    def errors(self) -> str:
        parts = []
        for path in (self.error_log, self.dir / "nginx.stderr"):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)
