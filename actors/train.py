"""Stage 1 of the alignment training on Ray Train.

The driver builds a ``TorchTrainer`` the way Ray Train's users do: ``ScalingConfig`` (one worker
of one CPU on a 2-core machine, so Ray Data keeps a core to stream the pairs; N workers or GPUs
on a cluster), ``RunConfig(name, storage_path)`` with a ``CheckpointConfig`` ranked by the
validation recall and a ``FailureConfig``, and the pairs table as a Ray Data dataset read from
LanceDB. The worker loop checkpoints with ``ray.train.report``; a worker that dies is restarted
from its last checkpoint, and running the same ``name`` again resumes a run that was stopped.
The training itself is :mod:`engine.train.loop`, plain torch.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.errors import InvalidInputError
from engine.train.config import AnchorLossConfig, HeadConfig, Stage1Config

STATE_FILE = "state.pt"
PROGRESS_FILE = "progress.json"


@dataclass(frozen=True)
class TrainRunConfig:
    """Where and how a training run runs on Ray.

    Args:
        name: Run name; running it again with the same ``storage_path`` resumes it.
        storage_path: Folder (or cloud URI) of Ray Train's run state and checkpoints.
        num_workers: Train workers (data parallel; DDP when more than one).
        cpus_per_worker: CPUs each worker reserves.
        use_gpu: One GPU per worker.
        max_failures: Worker failures to recover from (restart from the last checkpoint).
        num_to_keep: Checkpoints kept, best by validation recall.
        checkpoint_every_epochs: Epochs between checkpoints (the last epoch always gets one).
    """

    name: str
    storage_path: str
    num_workers: int = 1
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    max_failures: int = 2
    num_to_keep: int = 2
    checkpoint_every_epochs: int = 2

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise InvalidInputError("name", f"must be a non-empty name without '/', got {self.name!r}")
        if self.num_workers < 1:
            raise InvalidInputError("num_workers", f"must be >= 1, got {self.num_workers}")
        if self.cpus_per_worker <= 0:
            raise InvalidInputError("cpus_per_worker", f"must be positive, got {self.cpus_per_worker}")
        if self.max_failures < -1:
            raise InvalidInputError("max_failures", f"must be >= -1 (-1: unlimited), got {self.max_failures}")
        for name in ("num_to_keep", "checkpoint_every_epochs"):
            if getattr(self, name) < 1:
                raise InvalidInputError(name, f"must be >= 1, got {getattr(self, name)}")


@dataclass
class Stage1Result:
    """What a finished stage 1 left.

    Attributes:
        adapter_dir: The adapter folder written from the best checkpoint.
        adapter_hash: Its content hash.
        metrics: The last reported metrics.
        best: Metrics of the checkpoint the adapter came from.
        wall_s: Wall time of ``fit()`` (worker start included).
        history: Metrics of every epoch of this ``fit()``.
        restored_epoch: Epoch the run resumed from (0: started fresh).
    """

    adapter_dir: str
    adapter_hash: str
    metrics: dict
    best: dict
    wall_s: float
    history: list[dict] = field(default_factory=list)
    restored_epoch: int = 0


def _stage1_loop(cfg: dict) -> None:
    """Ray Train worker loop (runs in every Train worker)."""
    import ray.train
    import torch
    from ray.train import Checkpoint

    from engine.train.loop import Stage1State, anchor_recall, train_epoch

    head_cfg = HeadConfig(**cfg["head"])
    s1 = Stage1Config(**{**cfg["stage1"], "loss": AnchorLossConfig(**cfg["stage1"]["loss"])})
    torch.set_num_threads(max(1, int(cfg["threads"])))
    state = Stage1State.create(head_cfg, s1)
    restored = 0
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state.load_state_dict(torch.load(Path(d) / STATE_FILE, weights_only=False))
        restored = state.epoch
    model = ray.train.torch.prepare_model(state.head)  # DDP when there are several workers
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()

    # The validation pairs are few: held in memory, scored after every epoch.
    val = {"feature": [], "anchor": []}
    for b in ray.train.get_dataset_shard("val").iter_torch_batches(batch_size=4096):
        val["feature"].append(b["feature"])
        val["anchor"].append(b["anchor"])
    vf, va = (torch.cat(val[k]).numpy() if val[k] else None for k in ("feature", "anchor"))

    shard = ray.train.get_dataset_shard("train")
    while state.epoch < s1.epochs:
        batches = shard.iter_torch_batches(batch_size=s1.batch_size, local_shuffle_buffer_size=4 * s1.batch_size,
                                           local_shuffle_seed=s1.seed * 1000 + state.epoch)
        m = train_epoch(state, batches, model)
        m["val_recall_at_5"] = anchor_recall(state.head, vf, va, k=5) if vf is not None else float("nan")
        m["restored_epoch"] = restored
        last = state.epoch >= s1.epochs
        if rank == 0 and cfg.get("progress_file"):
            # Read by the fault test (which worker process to kill, and when).
            Path(cfg["progress_file"]).write_text(json.dumps({"epoch": state.epoch, "pid": os.getpid()}))
        if state.epoch % cfg["checkpoint_every_epochs"] == 0 or last:
            with tempfile.TemporaryDirectory() as d:
                if rank == 0:
                    torch.save(state.state_dict(), Path(d) / STATE_FILE)
                ray.train.report(m, checkpoint=Checkpoint.from_directory(d) if rank == 0 else None)
        else:
            ray.train.report(m)
        if cfg.get("epoch_sleep_s"):
            time.sleep(cfg["epoch_sleep_s"])  # tests only: leaves time to kill a worker mid-run
    if restored >= s1.epochs:
        # A finished run started again under its name: report where it ended (Ray Train's
        # result then carries that checkpoint) instead of training past its epochs.
        m = {"epoch": state.epoch, "loss": float("nan"), "temperature": state.loss.temperature,
             "val_recall_at_5": anchor_recall(state.head, vf, va, k=5) if vf is not None else float("nan"),
             "restored_epoch": restored}
        with tempfile.TemporaryDirectory() as d:
            if rank == 0:
                torch.save(state.state_dict(), Path(d) / STATE_FILE)
            ray.train.report(m, checkpoint=Checkpoint.from_directory(d) if rank == 0 else None)


def fit_stage1(pairs_db: str | Path, head: HeadConfig, stage1: Stage1Config, run: TrainRunConfig,
               adapter_dir: str | Path, *, progress_file: str | None = None,
               epoch_sleep_s: float = 0.0) -> Stage1Result:
    """Trains one modality's adapter against the anchor on Ray Train; writes it to
    ``adapter_dir`` from the checkpoint with the best validation recall.

    Args:
        pairs_db: LanceDB folder holding the modality's pairs table (:mod:`engine.train.pairs`).
        head: The adapter's shape (its ``modality`` picks the table).
        stage1: Optimisation settings.
        run: Ray Train run settings.
        adapter_dir: Output folder of the adapter.
        progress_file: Where rank 0 writes its epoch and PID after each epoch (tests).
        epoch_sleep_s: Pause after each epoch (tests).

    Raises:
        InvalidInputError: The pairs table is missing, empty, or of another width.
        RuntimeError: Training failed more often than ``run.max_failures``.
    """
    import ray
    import ray.data
    import torch
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from engine.train.adapter import save_adapter
    from engine.train.heads import ProjectionHead
    from engine.train.pairs import pairs_uri, read_pairs

    uri = pairs_uri(pairs_db, head.modality)
    stored = read_pairs(pairs_db, head.modality)  # validates presence, encoder and width up front
    if stored.encoder != head.encoder:
        raise InvalidInputError(uri, f"pairs come from {stored.encoder}, the adapter is for {head.encoder}")
    if stored.features.shape[1] != head.in_dim:
        raise InvalidInputError(uri, f"features are {stored.features.shape[1]}-d, the head takes {head.in_dim}")
    n_train = sum(s == "train" for s in stored.splits)
    if n_train < 2:
        raise InvalidInputError(uri, f"needs at least 2 training pairs, has {n_train}")
    cols = ["feature", "anchor", "group"]
    train_ds = ray.data.read_lance(uri, columns=cols, filter="split = 'train'")
    val_ds = ray.data.read_lance(uri, columns=cols, filter="split = 'eval'")
    cfg = {"head": {k: v for k, v in head.to_dict().items() if k != "kind"}, "stage1": asdict(stage1),
           "threads": max(1, int(run.cpus_per_worker)), "checkpoint_every_epochs": run.checkpoint_every_epochs,
           "progress_file": progress_file, "epoch_sleep_s": epoch_sleep_s}
    trainer = TorchTrainer(
        _stage1_loop, train_loop_config=cfg,
        scaling_config=ScalingConfig(num_workers=run.num_workers, use_gpu=run.use_gpu,
                                     resources_per_worker={"CPU": run.cpus_per_worker}),
        run_config=RunConfig(name=run.name, storage_path=str(run.storage_path),
                             checkpoint_config=CheckpointConfig(num_to_keep=run.num_to_keep,
                                                                checkpoint_score_attribute="val_recall_at_5",
                                                                checkpoint_score_order="max"),
                             failure_config=FailureConfig(max_failures=run.max_failures)),
        datasets={"train": train_ds, "val": val_ds},
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]))
    t0 = time.perf_counter()
    result = trainer.fit()
    wall_s = time.perf_counter() - t0
    if result.error is not None:
        raise RuntimeError(f"training run {run.name!r} failed: {result.error}")
    best_ckpt, best = result.checkpoint, dict(result.metrics or {})
    if result.best_checkpoints:
        best_ckpt, best = max(result.best_checkpoints, key=lambda cm: cm[1].get("val_recall_at_5", -1.0))
    with best_ckpt.as_directory() as d:
        state = torch.load(Path(d) / STATE_FILE, weights_only=False)
    model = ProjectionHead(head)
    model.load_state_dict(state["head"])
    history = result.metrics_dataframe.to_dict("records") if result.metrics_dataframe is not None else []
    trained = {"stage": 1, "pairs": uri, "pairs_train": n_train, "run": run.name, "epoch": int(state["epoch"]),
               "best": {k: v for k, v in best.items() if isinstance(v, (int, float))},
               "stage1": asdict(stage1)}
    digest = save_adapter(adapter_dir, model, trained)
    return Stage1Result(adapter_dir=str(adapter_dir), adapter_hash=digest, metrics=dict(result.metrics or {}),
                        best=best, wall_s=wall_s, history=history,
                        restored_epoch=int((result.metrics or {}).get("restored_epoch", 0)))
