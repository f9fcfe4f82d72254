"""The shared training loop (DDP, AMP, exact resume, metrics) and its pieces."""

from spikeattn.train.accuracy import accuracy
from spikeattn.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from spikeattn.train.config import TrainConfig
from spikeattn.train.interrupt import Interrupted, StopRequest, stop_on_signals
from spikeattn.train.loop import CHECKPOINT_NAME, train
from spikeattn.train.pretrain import init_from, pretrain
from spikeattn.train.probe import fit_head
from spikeattn.train.schedule import cosine_with_warmup, make_scheduler

__all__ = ["train", "accuracy", "pretrain", "init_from", "fit_head", "TrainConfig", "CHECKPOINT_NAME", "save_checkpoint", "load_checkpoint", "CheckpointError",
           "cosine_with_warmup", "make_scheduler", "Interrupted", "StopRequest", "stop_on_signals"]
