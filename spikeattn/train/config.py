"""The training configuration: one dataclass, saved inside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from spikeattn._validate import check_ints

__all__ = ["TrainConfig", "RESUMABLE_CHANGES"]


@dataclass
class TrainConfig:
    # length: `steps` optimizer steps if given, else `epochs` passes over the training set
    steps: int | None = None
    epochs: int = 1
    batch_size: int = 64              # GLOBAL batch: split evenly over the processes under torchrun
    eval_batch_size: int = 256        # per process
    # optimizer: AdamW, decay only on weights with >= 2 dims (not biases, norms, PLIF taus)
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0             # linear warm-up from lr/warmup_steps to lr
    min_lr_ratio: float = 0.0         # cosine decays to lr * min_lr_ratio at the last step
    grad_clip: float | None = 1.0     # max global grad norm; None or 0 disables
    amp: str | None = None            # "bf16" or "fp16" autocast; fp16 needs CUDA (it uses a GradScaler)
    # bookkeeping
    log_every: int = 10               # steps between train-metric lines
    eval_every: int = 0               # steps between evaluations; 0 = only at the end
    checkpoint_every: int = 0         # steps between checkpoints; 0 = only at the end
    out_dir: str = "runs/train"       # metrics.jsonl, summary.json, curves.png, ckpt.pt (rank 0 only)
    seed: int = 0                     # data order and RNG (process r uses seed + r)
    resume: bool = False              # continue from out_dir/ckpt.pt (error if it is missing)
    max_minutes: float | None = None  # stop early (with eval + checkpoint) after this much wall time
    device: str = "auto"              # "auto": cuda:<LOCAL_RANK> when available, else cpu
    num_workers: int = 0              # DataLoader workers per process
    progress: bool = True             # tqdm bar on rank 0

    def __post_init__(self):
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
                    "log_every": self.log_every}
        if self.steps is not None:
            positive["steps"] = self.steps
        check_ints(**positive)
        check_ints(0, **{name: getattr(self, name) for name in ("warmup_steps", "eval_every", "checkpoint_every",
                                                                 "num_workers")})
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {self.amp!r}")
        self.betas = tuple(self.betas)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**d)


# Fields that may differ between a checkpoint and the run resuming it: they change where things go
# or how often they are reported, not the trajectory of the parameters.
RESUMABLE_CHANGES = frozenset({"out_dir", "resume", "log_every", "eval_every", "checkpoint_every",
                               "max_minutes", "device", "num_workers", "progress", "eval_batch_size"})
