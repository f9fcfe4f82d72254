"""Datasets and encoders: Fashion-MNIST/MNIST idx files, CIFAR-10 pickles, event streams -> frames."""

from spikeattn.data.augment import RandomShiftFlip
from spikeattn.data.cifar import CIFAR10_CLASSES, load_cifar10
from spikeattn.data.datasets import ImageDataset, fashion_mnist
from spikeattn.data.encoding import direct_encode, poisson_encode
from spikeattn.data.events import EventFrames, event_folder, events_to_frames, load_events
from spikeattn.data.idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist, load_mnist, read_idx

__all__ = [
    "read_idx", "load_fashion_mnist", "load_mnist", "FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES",
    "ImageDataset", "fashion_mnist", "load_cifar10", "CIFAR10_CLASSES",
    "load_events", "RandomShiftFlip", "events_to_frames", "EventFrames", "event_folder", "direct_encode", "poisson_encode",
]
