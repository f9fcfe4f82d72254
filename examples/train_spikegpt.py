"""Train SpikeGPT's demo preset on Shakespeare (character level) on the CPU, report validation bits per
character, save the model, and print a sample generated with the recurrent mode.

    python examples/train_spikegpt.py --max-minutes 5          # a few CPU minutes (the default)
    python examples/train_spikegpt.py --data my.txt --steps 2000 --max-minutes none
    python examples/train_spikegpt.py --quick                  # CI: tiny model, a few steps

Every field of ``spikeattn.recipes.SpikeGPTRecipe`` is a flag; `spikeattn train spikegpt` takes the same
flags. The model goes to runs/spikegpt/model.pt: `spikeattn generate runs/spikegpt/model.pt --prompt ROMEO:`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from spikeattn.models import parse_overrides
from spikeattn.recipes import SpikeGPTRecipe, add_flags, fit_spikegpt, from_flags
from spikeattn.recipes.spikegpt import QUICK
from spikeattn.train.metrics import write_json
from spikeattn.train.model_file import load_model as load  # noqa: F401  (the reader of model.pt)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p, SpikeGPTRecipe)
    p.add_argument("--set", nargs="*", default=None, metavar="KEY=VALUE", help="model config overrides (e.g. dim=256)")
    p.add_argument("--prompt", default="ROMEO:\n")
    p.add_argument("--sample-len", type=int, default=400)
    p.add_argument("--quick", action="store_true", help="tiny model and data, a few steps (CI)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    # defaults (the measured recipe) < --quick < flags given on the command line
    config = from_flags(SpikeGPTRecipe, args, **(QUICK if args.quick else {}),
                        **({"overrides": parse_overrides(args.set)} if args.set else {}))

    model, result = fit_spikegpt(config)
    print(f"{config.preset}: {result['parameters'] / 1e6:.2f}M parameters, vocabulary {result['vocab_size']}; "
          f"validation bits per character {result['val_bpc']:.3f} after {result['steps']} steps "
          f"({result['wall_time_s'] / 60:.1f} min)")

    _, extra = load(Path(config.out) / "model.pt")  # the vocabulary travels inside the model file
    chars = extra["chars"]
    index = {ch: i for i, ch in enumerate(chars)}
    prompt = torch.tensor([[index[ch] for ch in args.prompt if ch in index] or [0]])
    start = time.perf_counter()
    out = model.generate(prompt, args.sample_len, temperature=0.8, top_k=20, seed=0)
    per_token = (time.perf_counter() - start) / (prompt.shape[1] + args.sample_len)
    result["sample"] = "".join(chars[i] for i in out[0].tolist())
    result["generation_ms_per_token"] = 1e3 * per_token
    print(f"--- sample (recurrent mode, {1e3 * per_token:.1f} ms/token), model {config.out}/model.pt ---\n{result['sample']}")
    write_json(Path(config.out) / "result.json", result)
    return result


if __name__ == "__main__":
    main()
