"""Ray's own autoscaler on this machine, over fake nodes, started and stopped without touching
any other Ray cluster here.

Ray 2.60's ``ray.cluster_utils.AutoscalingCluster`` cannot be used as shipped: the wheel lacks its
example config, and its start and shutdown run ``ray stop --force``, which kills every Ray cluster
on the machine. This starts the head the documented way (``ray start --head
--autoscaling-config=...`` with ``RAY_FAKE_CLUSTER=1``, the provider of ``cluster.local.yaml``) in
a private temp dir and on private ports, and stops exactly the processes that belong to it (the
fake nodes' raylets outlive the autoscaler that launched them, so they are found by their
command lines and killed with their children).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

from engine.errors import InvalidInputError

#: The user-facing local cluster config; the benchmark and tests start from it.
LOCAL_CONFIG = Path(__file__).resolve().parents[1] / "cluster.local.yaml"

#: Worker node type of cluster.local.yaml.
WORKER_TYPE = "cpu_worker"

#: The custom resource only the head offers: stateful ingest stages ask for it (see
#: ``PipelineConfig.stateful_resources``), so a worker node can go without losing a stream.
STABLE_RESOURCE = "omnialign_stable"


@dataclass
class LocalClusterConfig:
    """Shape of the local autoscaling cluster.

    Attributes:
        head_cpus: CPUs the head offers. 0, as Ray advises for clusters: the stateful stages
            ask for the head-only resource instead, and no tokenizer lands there.
        worker_cpus: CPUs of each fake worker node.
        min_workers: Worker nodes kept at all times.
        max_workers: Most worker nodes the autoscaler may launch.
        idle_timeout_s: A worker idle this long is removed.
        upscaling_speed: Ray's ``upscaling_speed`` (nodes launched at once, relative to the current count).
        update_interval_s: Autoscaler loop period, whole seconds (``AUTOSCALER_UPDATE_INTERVAL_S`` is read as an int).
        autoscaler_v2: Run Ray's v2 autoscaler instead of v1 (its env is set; not measured yet).
        extra_env: More environment variables for the head and its autoscaler.
    """

    head_cpus: int = 0
    worker_cpus: int = 2
    min_workers: int = 0
    max_workers: int = 3
    idle_timeout_s: float = 12.0
    upscaling_speed: float = 1.0
    update_interval_s: int = 1
    autoscaler_v2: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.head_cpus < 0 or self.worker_cpus < 1:
            raise InvalidInputError("head_cpus/worker_cpus", "need head_cpus >= 0 and at least 1 CPU per worker")
        if not 0 <= self.min_workers <= self.max_workers:
            raise InvalidInputError("min_workers", f"need 0 <= min_workers <= max_workers, got {self.min_workers}, {self.max_workers}")
        if self.idle_timeout_s <= 0 or self.update_interval_s <= 0 or self.upscaling_speed <= 0:
            raise InvalidInputError("idle_timeout_s", "timeouts, intervals and speeds must be positive")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalAutoscalingCluster:
    """One local autoscaling Ray cluster; a context manager.

    Args:
        config: Cluster shape.
        root: Folder for its config, temp dir and logs (a fresh temp folder when None; keep the
            path short: Ray's unix sockets live under it).
    """

    def __init__(self, config: LocalClusterConfig, root: str | Path | None = None) -> None:
        self.config = config
        self.root = Path(root or tempfile.mkdtemp(prefix="oa-ac-", dir="/tmp"))
        self.port = _free_port()
        self.metrics_port = _free_port()  # the autoscaler's Prometheus endpoint
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard_port = _free_port()  # Ray's state API is served there
        self.head_node_id = None

    # -- lifecycle -----------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment of the head (and of any driver that should see the same settings)."""
        env = dict(os.environ)
        env.update({"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": str(self.config.update_interval_s),
                    "RAY_AUTH_MODE": "disabled", "AUTOSCALER_METRIC_PORT": str(self.metrics_port),
                    # Ray's default health checks stay: 2 busy cores delay a starting node's
                    # heartbeats by seconds, and tighter checks declared healthy nodes dead.
                    "RAY_USAGE_STATS_ENABLED": "0"})
        if self.config.autoscaler_v2:
            from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

            env.update({"RAY_enable_autoscaler_v2": "1", "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_NODE_ID,
                        "RAY_OVERRIDE_NODE_ID_FOR_TESTING": FAKE_HEAD_NODE_ID})
        env.update(self.config.extra_env)
        return env

    def autoscaling_config(self) -> dict:
        """``cluster.local.yaml`` with this cluster's GCS address and shape."""
        cfg = yaml.safe_load(LOCAL_CONFIG.read_text())  # a fresh dict each call
        c = self.config
        cfg["provider"]["gcs_address"] = self.address
        cfg["max_workers"] = c.max_workers
        cfg["upscaling_speed"] = c.upscaling_speed
        cfg["idle_timeout_minutes"] = c.idle_timeout_s / 60.0
        worker = cfg["available_node_types"][WORKER_TYPE]
        worker.update({"resources": {**worker["resources"], "CPU": c.worker_cpus}, "min_workers": c.min_workers, "max_workers": c.max_workers})
        if c.autoscaler_v2:
            from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

            cfg["provider"]["head_node_id"] = FAKE_HEAD_NODE_ID
        return cfg

    def start(self, timeout_s: float = 60.0) -> LocalAutoscalingCluster:
        """Starts the head and its autoscaler; returns once the autoscaler answers."""
        self.root.mkdir(parents=True, exist_ok=True)
        cfg_path = self.root / "autoscaling.yaml"
        cfg_path.write_text(yaml.safe_dump(self.autoscaling_config()))
        ports = {"--dashboard-port": self.dashboard_port, "--ray-client-server-port": _free_port(),
                 "--dashboard-agent-listen-port": _free_port(), "--metrics-export-port": _free_port(),
                 "--runtime-env-agent-port": _free_port()}
        cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={self.port}",
               "--node-ip-address=127.0.0.1", f"--num-cpus={self.config.head_cpus}",
               f"--resources={json.dumps({STABLE_RESOURCE: 100})}", f"--autoscaling-config={cfg_path}",
               f"--temp-dir={self.root / 'ray'}", "--disable-usage-stats",
               *[f"{k}={v}" for k, v in ports.items()]]
        log = open(self.root / "ray-start.log", "w")
        try:
            subprocess.run(cmd, env=self.env(), stdout=log, stderr=subprocess.STDOUT, check=True, timeout=timeout_s)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            self.stop()
            raise RuntimeError(f"ray start failed ({exc}); see {self.root / 'ray-start.log'}") from exc
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.autoscaler_metrics()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the autoscaler never answered; see {self.root}/ray/session_latest/logs/monitor.*") from None
                time.sleep(0.5)

    def __enter__(self) -> LocalAutoscalingCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: those whose command line names its temp dir or its GCS
        port, and all their descendants (workers rename themselves ``ray::...``)."""
        roots = []
        for p in psutil.process_iter(["cmdline"]):
            args = p.info["cmdline"] or []
            if any(str(self.root) in a or a.endswith(f":{self.port}") for a in args):
                roots.append(p)
        found = {p.pid: p for p in roots}
        for r in roots:
            try:
                found.update({c.pid: c for c in r.children(recursive=True)})
            except psutil.Error:
                pass
        return [p for pid, p in found.items() if pid != os.getpid()]

    def stop(self) -> int:
        """Kills this cluster's processes (never ``ray stop``); returns how many there were."""
        procs = self.processes()
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=10)
        return len(procs)

    # -- observation and faults ----------------------------------------------------------------

    @property
    def dashboard_url(self) -> str:
        """Address for Ray's state API (``ray.util.state``): named, since a process that drove an
        earlier cluster would otherwise be answered by that one's."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def autoscaler_metrics(self) -> dict[str, float]:
        """The autoscaler's Prometheus samples, ``name{labels}`` → value (raises OSError if down)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
        return out

    def worker_raylets(self) -> dict[str, psutil.Process]:
        """Node id → raylet process of every live fake worker node."""
        from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

        out = {}
        for p in self.processes():
            try:
                args = p.cmdline()
            except psutil.Error:
                continue
            if not args or not args[0].endswith("/raylet"):
                continue
            node = next((a.split("=", 1)[1] for a in args if a.startswith("--node_id=")), None)
            if node and node != FAKE_HEAD_NODE_ID:
                out[node] = p
        return out

    def kill_worker_node(self, node_id: str | None = None) -> str:
        """Kills one worker node's raylet and everything under it (a machine lost mid-stream).

        Returns:
            The killed node's id.
        """
        raylets = self.worker_raylets()
        if not raylets:
            raise RuntimeError("no worker node is alive")
        node_id = node_id or sorted(raylets)[0]
        raylet = raylets[node_id]
        victims = [raylet, *raylet.children(recursive=True)]
        for p in victims:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(victims, timeout=2)  # the raylet is the monitor's child: a zombie until it reaps it
        return node_id
