"""Recipe fields as command-line flags: types, `none`, tuples, and defaults < base < given flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from spikeattn.recipes import SpikeGPTRecipe, SpikformerRecipe, add_flags, from_flags


@dataclass
class Toy:
    steps: int = 10  # optimizer steps (100% of them)
    minutes: float | None = 5.0
    name: str = "a"
    augment: bool = False
    betas: tuple[float, float] = (0.9, 0.99)
    overrides: dict = field(default_factory=dict)


def parse(*argv, **base):
    p = argparse.ArgumentParser()
    add_flags(p, Toy)
    return from_flags(Toy, p.parse_args(list(argv)), **base)


def test_types_and_defaults():
    assert parse() == Toy()
    got = parse("--steps", "3", "--minutes", "none", "--name", "b", "--augment", "--betas", "0.5", "0.6")
    assert got == Toy(steps=3, minutes=None, name="b", augment=True, betas=(0.5, 0.6))
    assert parse("--minutes", "2.5").minutes == 2.5 and parse("--no-augment").augment is False


def test_base_applies_only_where_no_flag_was_given():
    assert parse(steps=60, name="quick") == Toy(steps=60, name="quick")
    assert parse("--steps", "7", steps=60, name="quick") == Toy(steps=7, name="quick")


def test_help_is_the_field_comment(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    out = capsys.readouterr().out
    assert "optimizer steps (100% of them) (default: 10)" in out and "default: (0.9, 0.99)" in out


def test_bad_values_are_argparse_errors(capsys):
    with pytest.raises(SystemExit):
        parse("--steps", "many")
    assert "invalid int value: 'many'" in capsys.readouterr().err


@pytest.mark.parametrize("recipe_cls", [SpikformerRecipe, SpikeGPTRecipe])
def test_every_scalar_field_of_the_real_recipes_is_a_flag(recipe_cls):
    p = argparse.ArgumentParser()
    add_flags(p, recipe_cls)
    dests = {a.dest for a in p._actions}
    assert {f for f in recipe_cls.__dataclass_fields__ if f != "overrides"} <= dests
