"""A stand-in for ``torch`` in the netx environment (``.venv-netx``), never in the main one.

lava-dl 0.6.0 declares torch (a ~2.8 GB download for Python 3.10), and ``import lava.lib.dl.netx``
imports the ``slayer`` training package, which imports torch and defines torch modules at import
time. netx's loading and Lava simulation path (``netx.hdf5.Network``: h5py, numpy, Lava processes)
never calls torch. This stub satisfies those imports: every ``torch.*`` module and attribute is a
placeholder class that can be subclassed, decorated with and called at import time; using one for
real raises ``RuntimeError`` at the first arithmetic, so a netx path that did touch torch would fail
loudly instead of computing with a stub.
"""

import importlib.abc
import importlib.machinery
import sys
import types


_CLASSES = {}


def _named(name: str):
    """One placeholder class per name (``torch.nn.Module`` is always the same class), each its own
    subclass of Stub, so that classes deriving from several of them have a consistent MRO."""
    if name not in _CLASSES:
        _CLASSES[name] = _Meta(name, (Stub,), {})
    return _CLASSES[name]


class _Meta(type):
    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _named(name)

    def __call__(cls, *args, **kwargs):
        # a decorator (``@torch.jit.script``) returns the function it decorates
        if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], type):
            return args[0]
        return super().__call__()

    def __getitem__(cls, item):
        return Stub

    def __or__(cls, other):
        return Stub

    __ror__ = __or__


class Stub(metaclass=_Meta):
    """Placeholder for any torch object."""

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _named(name)

    def _fail(self, *args, **kwargs):
        raise RuntimeError("torch is a stub in the netx environment: this lava-dl path needs the real torch")

    __add__ = __radd__ = __mul__ = __rmul__ = __sub__ = __truediv__ = __matmul__ = __float__ = __int__ = _fail
    __iter__ = __len__ = _fail

    def __bool__(self):   # ``if torch.cuda.is_available():`` at import time: no
        return False


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _named(name)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes every ``torch.<sub>`` (and torchvision) importable as a stub module."""

    ROOTS = ("torch.", "torchvision")

    def find_spec(self, fullname, path, target=None):
        if fullname.startswith(self.ROOTS):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        mod = _StubModule(spec.name)
        mod.__path__ = []
        return mod

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())
__version__ = "0.0.0+stub"


def __getattr__(name):
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)
    return _named(name)
