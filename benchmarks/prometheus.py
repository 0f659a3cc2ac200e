"""A real Prometheus (Debian's ``prometheus`` package, unpacked, not installed) for checking the
metrics the dashboards read.

``ensure_binary()`` fetches the package with ``apt-get download`` once and unpacks it under
``~/.cache/omnialign/prometheus`` (no root, nothing installed). :class:`PrometheusServer` runs
it on a free port over a file-based target list that the caller rewrites as targets come and go
(``file_sd_configs``, re-read every second), and answers PromQL queries through the HTTP API.

    python -m benchmarks.prometheus      # fetch and unpack it (make test does)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

CACHE = Path(os.environ.get("OMNIALIGN_CACHE", Path.home() / ".cache" / "omnialign")) / "prometheus"
PACKAGE = "prometheus"

#: The Grafana dashboard of the repo.
DASHBOARD = Path(__file__).resolve().parents[1] / "dashboards" / "omnialign.json"


def dashboard_queries(rows: set[str] | None = None, rate_interval: str = "20s") -> list[dict]:
    """Every PromQL query of the dashboard (panels under the named rows; all when None), with
    Grafana's ``$__rate_interval`` replaced by ``rate_interval``."""
    out, row = [], None
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        if rows is not None and row not in rows:
            continue
        for t in panel.get("targets", []):
            out.append({"row": row, "panel": panel["title"], "expr": t["expr"].replace("$__rate_interval", rate_interval)})
    return out


def ensure_binary() -> Path:
    """The ``prometheus`` binary, fetched and unpacked on first use."""
    binary = CACHE / "root" / "usr" / "bin" / "prometheus"
    if binary.is_file():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        subprocess.run(["apt-get", "download", PACKAGE], cwd=tmp, check=True, capture_output=True)
        (deb,) = Path(tmp).glob(f"{PACKAGE}_*.deb")
        root = Path(tmp) / "root"
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        shutil.rmtree(CACHE / "root", ignore_errors=True)
        root.rename(CACHE / "root")
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrometheusServer:
    """One Prometheus scraping the targets of :meth:`set_targets` every ``scrape_s``.

    Args:
        root: Folder for its config, target list and data.
        scrape_s: Scrape interval, seconds.
    """

    def __init__(self, root: str | Path, scrape_s: float = 1.0) -> None:
        self.root = Path(root)
        self.scrape_s = scrape_s
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30.0) -> PrometheusServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.set_targets([])
        interval = f"{int(self.scrape_s * 1000)}ms"
        cfg = {"global": {"scrape_interval": interval, "evaluation_interval": interval},
               "scrape_configs": [{"job_name": "omnialign", "file_sd_configs": [
                   {"files": [str(self.root / "targets.json")], "refresh_interval": "1s"}]}]}
        (self.root / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        log = open(self.root / "prometheus.log", "w")
        self.proc = subprocess.Popen([str(ensure_binary()), f"--config.file={self.root / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={self.root / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2)
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"prometheus did not start; see {self.root / 'prometheus.log'}") from None
                time.sleep(0.3)

    def set_targets(self, targets: list[str]) -> None:
        """Replaces the scraped ``host:port`` list (Prometheus picks it up within a second)."""
        tmp = self.root / "targets.json.tmp"
        tmp.write_text(json.dumps([{"targets": sorted(targets)}]))
        os.replace(tmp, self.root / "targets.json")

    def query(self, expr: str, at_s: float | None = None) -> list[dict]:
        """An instant PromQL query (at Unix time ``at_s``, default now); the result vector."""
        params = {"query": expr, **({"time": f"{at_s:.3f}"} if at_s is not None else {})}
        url = f"http://127.0.0.1:{self.port}/api/v1/query?{urllib.parse.urlencode(params)}"
        body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        if body.get("status") != "success":
            raise ValueError(f"query {expr!r} failed: {body}")
        return body["data"]["result"]

    def evaluate(self, queries: list[dict], at_s: float | None = None) -> list[dict]:
        """Each query of :func:`dashboard_queries` with its number of result series at ``at_s``."""
        return [{**q, "series": len(self.query(q["expr"], at_s))} for q in queries]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    print(ensure_binary())
