"""``omnialign serve`` as a process (real Ray, Serve and vLLM): API keys end to end, the CLI's safe
ingest defaults, and SIGTERM as a clean shutdown."""

from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shm() -> set[str]:
    # Python's multiprocessing.shared_memory (psm_*, vLLM's message queues) and Ray's plasma files.
    return set(glob.glob("/dev/shm/psm_*")) | set(glob.glob("/dev/shm/plasma*"))


USER_KEY, ADMIN_KEY = "user-key-" + "u" * 24, "admin-key-" + "a" * 24


def _probe_running_server(url: str) -> None:
    """API keys through Serve's proxy, and the CLI's ingest policy defaults."""
    assert requests.get(f"{url}/healthz", timeout=30).status_code == 200  # open path
    r = requests.get(f"{url}/v1/models", timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and set(r.json()) == {"error"}
    user, admin = ({"Authorization": f"Bearer {k}"} for k in (USER_KEY, ADMIN_KEY))
    assert requests.get(f"{url}/v1/models", headers=user, timeout=30).status_code == 200
    r = requests.post(f"{url}/v1/ingest", json={"url": "rtsp://cam/x"}, headers=user, timeout=30)
    assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
    # With the CLI's defaults: no raw tcp (port scans), no private or loopback hosts (SSRF).
    r = requests.post(f"{url}/v1/ingest", json={"url": "tcp://127.0.0.1:6379"}, headers=admin, timeout=30)
    assert r.status_code == 400 and "tcp" in r.json()["error"]["message"], r.text
    r = requests.post(f"{url}/v1/ingest", json={"url": "http://127.0.0.1:9/c.mp4"}, headers=admin, timeout=30)
    assert r.status_code == 403, r.text


def test_sigterm_drains_and_leaves_no_process_or_shared_memory(tiny_model_dir, tmp_path):
    port = _free_port()
    keys = tmp_path / "keys"
    keys.write_text(f"{USER_KEY} user\n{ADMIN_KEY} admin\n")
    shm_before = _shm()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)  # its own local Ray, not the tests' one
    cli = "import sys; from omnialign.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", cli, "serve", "--model", str(tiny_model_dir),
                             "--db", str(tmp_path / "db"), "--port", str(port), "--api-keys-file", str(keys),
                             "--host", "0.0.0.0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or the app not deployed yet
                pass
            time.sleep(2)
        else:
            raise AssertionError("the server never became healthy")
        _probe_running_server(f"http://127.0.0.1:{port}")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # Ray's processes, Serve's replicas, the engine
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "stopping" in out and "Traceback" not in out, out
    _, alive = psutil.wait_procs(children, timeout=60)
    assert not alive, [p.info if hasattr(p, "info") else p.pid for p in alive]
    assert _shm() - shm_before == set()


def test_without_api_keys_the_cli_binds_to_loopback_and_says_so(tmp_path, capsys, monkeypatch):
    from omnialign.commands.serve import bind_host

    monkeypatch.delenv("OMNIALIGN_API_KEYS", raising=False)
    assert bind_host("0.0.0.0", {"keys_file": ""}) == "127.0.0.1"
    assert "no API key configured" in capsys.readouterr().out
    assert bind_host("::1", {"keys_file": ""}) == "::1" and bind_host("localhost", {"keys_file": ""}) == "localhost"
    keys = tmp_path / "keys"
    keys.write_text(f"{USER_KEY} user\n")
    assert bind_host("0.0.0.0", {"keys_file": str(keys)}) == "0.0.0.0"
    monkeypatch.setenv("OMNIALIGN_API_KEYS", f"{ADMIN_KEY}:admin")
    assert bind_host("10.1.2.3", {"keys_file": ""}) == "10.1.2.3"
