"""The recipes' defaults are the recorded runs' settings (benchmarks/results/*.json), so the records reproduce."""

from __future__ import annotations

import json
from pathlib import Path

from spikeattn.recipes import SpikformerRecipe, V2PretrainRecipe, v2_finetune_recipe
from spikeattn.recipes.spikformer import DEFAULT_STEPS, QUICK, warmup

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def record(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def test_spikformer_defaults_are_the_demo_run():
    demo, config = record("spikformer_fmnist_cpu.json"), SpikformerRecipe()
    assert (config.preset, config.overrides) == (demo["preset"], demo["overrides"])
    assert DEFAULT_STEPS == demo["steps"] and config.steps is None  # no length given: the recorded 6000 steps
    # what examples/train_spikformer.py and the demo ran with when the record was made
    assert (config.batch_size, config.lr, config.weight_decay, config.grad_clip) == (64, 3e-3, 0.01, 1.0)
    assert config.recalibrate_batches == 40
    # the demo's budget sizes its run to 500..6000 steps: each gets the recorded 100 warm-up steps
    assert {warmup(config.warmup_steps, steps) for steps in range(500, 6001)} == {100}
    assert config.seed == 0 and config.checkpoint_every == 300 and not config.augment


def test_the_long_run_command_still_means_24_epochs():
    long = record("spikformer_fmnist_long_cpu.json")
    config = SpikformerRecipe(overrides=long["overrides"], epochs=24)
    assert config.steps is None and warmup(config.warmup_steps, None) == 100
    assert long["epochs"] == 24.0 and long["steps"] == 24 * (60000 // config.batch_size)


def test_v2_defaults_are_the_recorded_comparison():
    v2 = record("spikformer_v2_pretrain_cpu.json")
    pre, tune = V2PretrainRecipe(), v2_finetune_recipe()
    assert (pre.preset, pre.mask_ratio, pre.norm_pix) == (v2["preset"], v2["mask_ratio"], v2["norm_pix"])
    assert (pre.decoder_dim, pre.decoder_depth) == (v2["decoder"]["dim"], v2["decoder"]["depth"])
    assert (pre.steps, pre.batch_size, pre.lr) == (v2["pretrain"]["steps"], v2["pretrain"]["batch_size"], v2["pretrain"]["lr"])
    assert (tune.steps, tune.lr) == (v2["finetune_budget"]["steps"], v2["finetune_budget"]["lr"])
    assert tune.preset == v2["preset"] and tune.head_init == v2["finetune_budget"]["head_init"]


def test_quick_is_one_overrides_dict():
    assert set(QUICK) <= set(SpikformerRecipe.__dataclass_fields__)
    assert SpikformerRecipe(**QUICK).steps == 60
