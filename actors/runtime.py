"""Ray start-up for every omnialign entry point (CLI, demo, serve, benchmarks).

:func:`init_ray` connects to a cluster or starts a local Ray, applies the Ray Data settings
the pipeline relies on, and keeps a console program's console for omnialign's own output.
Ray's workers already write their logs into the session's log folder (``log_to_driver=False``);
this process's own log lines (Ray, Ray Data, Serve, vLLM, transformers ...), Python
warnings and the native stderr (Ray's C++ core worker logs errors there) go to one file
beside them, whose path is printed once.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

#: The driver's log file, in Ray's session log folder.
LOG_FILE_NAME = "omnialign-driver.log"

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(filename)s:%(lineno)d -- %(message)s"

_log_file: Path | None = None


class _PendingFileHandler(logging.Handler):
    """Keeps records until :meth:`open` names the file (it exists only once Ray has started)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self._pending: list[logging.LogRecord] = []
        self._file: logging.FileHandler | None = None

    def open(self, path: Path) -> None:
        """Starts writing to ``path``, pending records first (under the handler's lock, so a
        record emitted meanwhile by another thread is neither lost nor written out of order)."""
        file = logging.FileHandler(path, encoding="utf-8")
        file.setFormatter(logging.Formatter(_LOG_FORMAT))
        with self.lock:
            pending, self._pending = self._pending, []
            for record in pending:
                file.handle(record)
            self._file = file

    def emit(self, record: logging.LogRecord) -> None:
        if self._file is not None:
            self._file.handle(record)
        elif len(self._pending) < 10_000:
            self._pending.append(record)


def init_ray(address: str | None = None, *, quiet_console: bool = True) -> Path | None:
    """Connects to a Ray cluster, or starts a local Ray, for the ingest pipeline and Serve.

    Ray Data's own progress bars and start-up banners are turned off (progress comes from
    :class:`omnialign.progress.Progress`).

    Args:
        address: Cluster address; ``None`` starts a local Ray (or joins ``RAY_ADDRESS``).
        quiet_console: Send this process's third-party log lines, warnings and native
            stderr to the log file and print its path (one line on stderr). Pass False
            where the caller owns the process's logging.

    Returns:
        The log file; ``None`` with ``quiet_console=False`` or when Ray was already started
        by the caller (whose logging is then left alone).
    """
    import ray

    global _log_file
    if not ray.is_initialized():
        # Routed before ray.init: Ray logs while it starts (e.g. a warning on every new local
        # cluster that token authentication is on by default; RAY_AUTH_MODE cannot be set from
        # here, Ray has cached its config on import).
        handler = _route_logs() if quiet_console else None
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.INFO if quiet_console else logging.WARNING)
        if handler is not None:
            _log_file = _logs_dir() / LOG_FILE_NAME
            handler.open(_log_file)
            _route_logs(handler)  # loggers that Ray configured while starting
            _send_native_stderr_to(_log_file)
            print(f"omnialign: Ray and library logs -> {_log_file}", file=sys.stderr)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # The detectors' periodic checks (and their "high memory" advice for the tokenizer pool,
    # which holds codebooks by design) cost driver CPU and only add log noise to a live ingest.
    ctx.issue_detectors_config.detectors = []
    logging.getLogger("ray.data").setLevel(logging.INFO if _log_file else logging.WARNING)
    return _log_file


def _route_logs(handler: _PendingFileHandler | None = None) -> _PendingFileHandler:
    """Replaces every console handler of the loggers existing now by ``handler`` (a new one by default).

    Records of loggers without handlers reach the root logger, which gets ``handler`` too;
    Python warnings become records of the ``py.warnings`` logger.
    """
    handler = handler or _PendingFileHandler()
    loggers = [logging.getLogger(), logging.getLogger("ray")]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for lg in loggers:
        console = [h for h in lg.handlers if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
        for h in console:
            lg.removeHandler(h)
        if (console or lg is logging.root or not lg.propagate) and handler not in lg.handlers:
            lg.addHandler(handler)
    logging.captureWarnings(True)
    return handler


def _logs_dir() -> Path:
    """Ray's session log folder on this node (a temporary folder for a Ray Client connection)."""
    import ray

    node = ray._private.worker._global_node  # no public accessor; Ray Data reads it the same way
    if node is not None:
        return Path(node.get_logs_dir_path())
    return Path(tempfile.mkdtemp(prefix="omnialign-logs-"))


def _send_native_stderr_to(path: Path) -> None:
    """Points file descriptor 2 at ``path``; ``sys.stderr`` stays on the console.

    Native code (Ray's C++ core worker logs its errors to stderr, and no option moves them)
    then writes to the log file, while Python-level output (omnialign's messages, progress,
    tracebacks) still reaches the console.
    """
    try:
        if sys.stderr is None or sys.stderr.fileno() != 2:
            return  # stderr is already redirected by the embedding process
    except (AttributeError, OSError, ValueError):
        return
    sys.stderr.flush()
    console = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = os.fdopen(console, "w", buffering=1, encoding=sys.stderr.encoding, errors=sys.stderr.errors)
