"""Command-line flags from a recipe dataclass, so that the CLI and the examples spell a recipe the same way.

    add_flags(parser, SpikformerRecipe)                       # --steps, --lr, --augment/--no-augment, ...
    recipe = from_flags(SpikformerRecipe, args, **QUICK)      # defaults < QUICK < flags given on the line

Every flag defaults to "not given" (argparse.SUPPRESS): the dataclass holds the one default, and a
caller's overrides (``--quick``) apply only to what the command line left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing

__all__ = ["add_flags", "from_flags"]


def _scalar(kind):
    """``(int, False)`` for ``int``, ``(int, True)`` for ``int | None``; ``(None, _)`` for other types."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 and rest[0] in (int, float, str) else None), True
    return (kind if kind in (int, float, str, bool) else None), False


def _none_or(base):
    def parse(text: str):
        return None if text.lower() == "none" else base(text)

    parse.__name__ = base.__name__  # argparse names the type in its error message
    return parse


def _comments(recipe_cls) -> dict[str, str]:
    """Each field's trailing ``# comment`` in the class source: the dataclass documents its own flags."""
    try:
        lines = inspect.getsource(recipe_cls).splitlines()
    except (OSError, TypeError):  # no source to read (a frozen application): help shows the defaults only
        return {}
    return {m[1]: m[2] for m in (re.match(r"\s+(\w+):[^#]*#\s*(.+)", line) for line in lines) if m}


def add_flags(parser: argparse.ArgumentParser, recipe_cls, skip: tuple[str, ...] = ()) -> None:
    """One ``--field-name`` per int/float/str/bool field of ``recipe_cls`` (``none`` for optional ones);
    tuple fields take several numbers; dict fields (model overrides) are left to ``--set``."""
    hints, comments = typing.get_type_hints(recipe_cls), _comments(recipe_cls)
    for f in dataclasses.fields(recipe_cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        help_ = f"{comments[f.name]} (default: {default})" if f.name in comments else f"default: {default}"
        help_ = help_.replace("%", "%%")  # argparse formats help with %
        base, optional = _scalar(hints[f.name])
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_)
        elif base is not None:
            parser.add_argument(flag, type=_none_or(base) if optional else base, default=argparse.SUPPRESS,
                                metavar=base.__name__.upper(), help=help_)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=float, nargs=len(default), default=argparse.SUPPRESS, help=help_)


def from_flags(recipe_cls, args: argparse.Namespace, **base):
    """``recipe_cls(**base)`` with every field given on the command line replacing it."""
    names = {f.name for f in dataclasses.fields(recipe_cls)}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in names}
    return recipe_cls(**{**base, **given})
