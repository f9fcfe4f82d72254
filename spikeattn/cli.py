"""The ``spikeattn`` command: train, pretrain, count, generate, export, lava-run, bench.

Each subcommand is a thin layer over the package (``spikeattn.recipes``, ``spikeattn.opcount``,
``spikeattn.models``); heavy imports happen inside the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def _overrides(pairs: list[str]) -> dict:
    from spikeattn.models import parse_overrides

    try:
        return parse_overrides(pairs)
    except ValueError as e:
        raise SystemExit(f"--set: {e}") from None


def _model(spec: str, overrides: dict | None = None):
    """A model file written by ``spikeattn train`` or a preset name."""
    import spikeattn as sa
    from spikeattn.train.model_file import load_model

    if Path(spec).exists():
        return load_model(spec)
    family = "spikegpt" if spec.startswith("spikegpt") else "spikformer"
    if spec not in sa.models.list_presets(family):
        raise SystemExit(f"{spec!r} is neither a model file nor a preset; presets: {sa.models.list_presets()}")
    build = sa.models.spikegpt if family == "spikegpt" else sa.models.spikformer
    return build(spec, **(overrides or {})).eval(), {}


def _recipes() -> dict:
    """``spikeattn train <family>``: the family's recipe class and the function that runs it."""
    from spikeattn import recipes

    return {"spikformer": (recipes.SpikformerRecipe, recipes.fit_spikformer),
            "spikegpt": (recipes.SpikeGPTRecipe, recipes.fit_spikegpt)}


def _fit(args, recipe_cls, fit, what: str):
    """Build the recipe from the flags and run it; SIGINT/SIGTERM checkpoint and exit (128 + signal)."""
    import torch

    from spikeattn.recipes import from_flags
    from spikeattn.train import Interrupted, stop_on_signals

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = from_flags(recipe_cls, args, **({"overrides": _overrides(args.set)} if args.set else {}))
    try:
        with stop_on_signals() as stop:
            return fit(config, stop=stop)
    except Interrupted as e:
        print(f"{what}: {e}; continue with the same command and --resume", file=sys.stderr)
        raise SystemExit(128 + (e.signum or 0)) from None


def cmd_train(args) -> None:
    recipe_cls, fit = _recipes()[args.family]
    _, result = _fit(args, recipe_cls, fit, f"train {args.family}")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}, indent=1, default=str))
    print(f"model saved to {Path(result['recipe']['out']) / 'model.pt'}")


def cmd_pretrain(args) -> None:
    from spikeattn.recipes import V2PretrainRecipe, pretrain_spikformer_v2

    _, info = _fit(args, V2PretrainRecipe, pretrain_spikformer_v2, "pretrain")
    print(f"pretrained {info['steps']} steps, final masked-patch loss {info['final_loss']:.4f}; encoder saved to "
          f"{info['file']} (fine-tune: spikeattn train spikformer --preset {info['recipe']['preset']} "
          f"--init-from {info['file']})")


def _input_shape(args, model, batch: int, fallback=None) -> tuple[int, ...]:
    """``--input-shape``, else one image batch ``[batch, C, H, W]`` for an image model, else ``fallback``."""
    if args.input_shape:
        return tuple(args.input_shape)
    if hasattr(model.config, "img_size"):
        c = model.config
        return (batch, c.in_channels, c.img_size, c.img_size)
    if fallback is None:
        raise SystemExit("--input-shape T B ... is needed for this model")
    return fallback


def cmd_count(args) -> None:
    import torch

    import spikeattn as sa

    model, _ = _model(args.model, _overrides(args.set))
    shape = _input_shape(args, model, args.batch, fallback=(args.batch, 64))
    g = torch.Generator().manual_seed(0)
    if hasattr(model.config, "vocab_size"):
        x = torch.randint(0, model.config.vocab_size, shape, generator=g)
    else:
        x = torch.rand(shape, generator=g)
    report = sa.opcount.count(model, x)
    print(report.table())
    for profile in args.profile:
        print(f"energy ({profile}): {report.energy(profile)['total']['total_j']:.4g} J")
    if args.json:
        print(f"wrote {report.to_json(args.json)}")
    if args.plot:
        print(f"wrote {report.plot(args.plot)}")


def cmd_generate(args) -> None:
    import torch

    model, extra = _model(args.model)
    chars = extra.get("chars")
    if chars is None or not hasattr(model, "generate"):
        raise SystemExit(f"{args.model}: generate needs a SpikeGPT model file written by `spikeattn train spikegpt`")
    index = {ch: i for i, ch in enumerate(chars)}
    prompt = [index[ch] for ch in args.prompt if ch in index] or [0]
    out = model.generate(torch.tensor([prompt]), args.tokens, temperature=args.temperature, top_k=args.top_k,
                         seed=args.seed)
    print("".join(chars[i] for i in out[0].tolist()))


def cmd_export(args) -> None:
    import torch

    from spikeattn import export

    model, _ = _model(args.model, _overrides(args.set))
    if args.input_shape:
        shape = tuple(args.input_shape)
    elif hasattr(model.config, "img_size") and hasattr(model.config, "T"):
        c = model.config
        shape = (c.T, 1, c.in_channels, c.img_size, c.img_size)
    else:
        raise SystemExit("--input-shape T B ... is needed for this model")
    try:
        artifact = export.to_lava(model, args.out, torch.zeros(shape))
    except export.NotExportable as e:
        raise SystemExit(f"{args.model}: {e}") from None
    print(f"wrote Lava artifact {artifact.path} (input per sample {artifact.input_shape})")


def cmd_lava_run(args) -> None:
    import numpy as np

    from spikeattn import export

    if not Path(args.artifact).is_dir():
        raise SystemExit(f"artifact folder not found: {args.artifact}")
    if not Path(args.input).is_file():
        raise SystemExit(f"input file not found: {args.input} (a [T, B, ...] .npy array)")
    try:
        output = export.run_lava(args.artifact, np.load(args.input), fixed_point=args.fixed_point,
                                 timeout=args.timeout, library=args.library, plan=args.plan,
                                 weight_synapses=args.weight_synapses)
    except (export.LavaError, ValueError) as e:
        raise SystemExit(f"lava-run: {e}") from None
    np.save(args.out, output)
    print(f"output {tuple(output.shape)}, {int((output != 0).sum())} non-zero values; saved to {args.out}")


def cmd_loihi_report(args) -> None:
    import torch

    from spikeattn import export

    model, _ = _model(args.model, _overrides(args.set))
    x = torch.rand(_input_shape(args, model, 1), generator=torch.Generator().manual_seed(0))
    try:
        report = export.loihi_report(model, x, profile=args.profile, weight_synapses=args.weight_synapses)
    except (export.NotExportable, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"loihi-report: {e}") from None
    print(report.table())
    if args.json:
        print(f"wrote {report.to_json(args.json)}")


def cmd_bench(args) -> None:
    from spikeattn._paths import benchmarks_dir

    folder = benchmarks_dir()
    script = folder / f"bench_{args.op}.py"
    rest = list(args.rest)
    if folder.name == "_benchmarks" and "--out" not in rest:
        # An installed copy: write the JSON here, not into site-packages.
        rest += ["--out", f"bench_{args.op}.json"]
    raise SystemExit(subprocess.call([sys.executable, str(script), *rest]))


def cmd_lava_env(args) -> None:
    """Build the Python 3.10 Lava env with the script `make lava-env` runs (shipped in the wheel)."""
    import shutil

    from spikeattn._paths import hardware_dir
    from spikeattn.export.lava import lava_env_dir

    target = Path(args.path).resolve() if args.path else lava_env_dir()
    bash = shutil.which("bash")
    if bash is None:
        raise SystemExit("spikeattn lava-env needs bash to run its build script")
    status = subprocess.call([bash, str(hardware_dir() / "lava" / "make_env.sh"), str(target)])
    if status != 0:
        raise SystemExit(f"spikeattn lava-env: building {target} failed (exit status {status}); see the lines above")
    if args.path and target != lava_env_dir():
        print(f"run_lava finds it with: export SPIKEATTN_LAVA_PYTHON={target / 'bin' / 'python'}")
    else:
        print(f"run_lava and `spikeattn lava-run` find {target} by themselves")


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", nargs="*", default=None, metavar="KEY=VALUE",
                   help="model config overrides, Python literals (e.g. T=4 dim=96)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default: torch's choice); runs are bit-reproducible per thread count")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spikeattn", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    from spikeattn.recipes import V2PretrainRecipe, add_flags

    t = sub.add_parser("train", help="train a model with its family's recipe and save it as OUT/model.pt")
    families = t.add_subparsers(dest="family", required=True, metavar="{spikformer,spikegpt}")
    for family, (recipe_cls, _) in _recipes().items():
        f = families.add_parser(family, help=f"{recipe_cls.__name__}: its fields as flags, its defaults the measured ones")
        add_flags(f, recipe_cls)
        _run_flags(f)
        f.set_defaults(func=cmd_train)

    pre = sub.add_parser("pretrain", help="masked-image pretraining of a Spikformer V2 encoder (writes OUT/pretrained.pt)")
    add_flags(pre, V2PretrainRecipe)
    _run_flags(pre)
    pre.set_defaults(func=cmd_pretrain)

    c = sub.add_parser("count", help="count operations and energy of a model file or preset")
    c.add_argument("model", help="a model file or a preset name")
    c.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="preset overrides")
    c.add_argument("--input-shape", type=int, nargs="+", help="default: a batch of the model's input")
    c.add_argument("--batch", type=int, default=2)
    c.add_argument("--profile", nargs="*", default=["45nm", "loihi"])
    c.add_argument("--json", help="write the report as JSON here")
    c.add_argument("--plot", help="write a PNG plot here")
    c.set_defaults(func=cmd_count)

    g = sub.add_parser("generate", help="sample text from a SpikeGPT model file (recurrent mode)")
    g.add_argument("model")
    g.add_argument("--prompt", default="\n")
    g.add_argument("--tokens", type=int, default=200)
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--top-k", type=int, default=20)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("export", help="export a model file or preset to a Lava artifact folder (spikeattn.export)")
    e.add_argument("model", help="a model file or a preset name")
    e.add_argument("--out", default="runs/lava", help="artifact folder")
    e.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="preset overrides")
    e.add_argument("--input-shape", type=int, nargs="+", help="example input [T, B, ...] (default: from the config)")
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("lava-run", help="run a Lava artifact on a [T, B, ...] .npy input in .venv-lava")
    r.add_argument("artifact", help="folder written by `spikeattn export`")
    r.add_argument("--input", required=True, help=".npy array [T, B, *input_shape]")
    r.add_argument("--out", default="lava_output.npy")
    r.add_argument("--fixed-point", action="store_true", help="Loihi-style integer models")
    r.add_argument("--library", action="store_true",
                   help="fixed point: Lava's own bit-accurate Dense/Conv/LIF processes where they exist (same spikes)")
    r.add_argument("--plan", default="library",
                   help="fixed point: 'library' (Lava-expressible, the default) or 'per_channel' (more accurate, "
                        "custom processes only)")
    r.add_argument("--weight-synapses", type=int, choices=(1, 2), default=None,
                   help="fixed point: 8-bit synapses per connection off the library (default: the plan's, 1 or 2)")
    r.add_argument("--timeout", type=float, default=120)
    r.set_defaults(func=cmd_lava_run)

    lr = sub.add_parser("loihi-report", help="cores, chips and binding limits of a model file or preset on Loihi")
    lr.add_argument("model", help="a model file or a preset name")
    lr.add_argument("--profile", default="loihi2", help="loihi1, loihi2 or a profile .toml path")
    lr.add_argument("--weight-synapses", type=int, choices=(1, 2), default=1,
                    help="8-bit synapses per connection (1: the default fixed-point plan; 2: plan='per_channel')")
    lr.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="preset overrides")
    lr.add_argument("--input-shape", type=int, nargs="+", help="example input (default: one image of the config)")
    lr.add_argument("--json", help="write the report as JSON here")
    lr.set_defaults(func=cmd_loihi_report)

    le = sub.add_parser("lava-env", help="build the Python 3.10 Lava environment that run_lava uses (~1 min, PyPI)")
    le.add_argument("path", nargs="?", default=None,
                    help="where to build it (default: the user cache, ~/.cache/spikeattn/venv-lava, which run_lava finds; "
                         "elsewhere, point SPIKEATTN_LAVA_PYTHON at PATH/bin/python)")
    le.set_defaults(func=cmd_lava_env)

    b = sub.add_parser("bench", help="run a benchmark (benchmarks/bench_<op>.py, shipped in the wheel)")
    b.add_argument("op", choices=("lif", "attention", "wkv", "opcount"))
    b.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    b.set_defaults(func=cmd_bench)
    return p


def _add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """``--debug`` before or after the subcommand: show the traceback instead of a one-line error."""
    parser.add_argument("--debug", action="store_true", help="on an error, print the Python traceback")

    def add(p: argparse.ArgumentParser) -> None:  # every subcommand, and `train`'s families below it
        for action in getattr(p._subparsers, "_group_actions", ()):
            for sub in action.choices.values():
                sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                add(sub)

    add(parser)


# Errors a user can cause and fix (bad arguments, files, missing extras): their message is the whole story.
_USER_ERRORS = (ValueError, TypeError, OSError, ImportError, RuntimeError)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    _add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.debug:
        return args.func(args)
    try:
        args.func(args)
    except _USER_ERRORS as e:
        kind = "" if isinstance(e, (ValueError, OSError, ImportError)) else f"{type(e).__name__}: "
        raise SystemExit(f"spikeattn {args.command}: error: {kind}{_one_line(e)} (--debug shows the traceback)") from e


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    first, _, rest = text.partition("\n")
    return first if not rest else f"{first} [...]"


if __name__ == "__main__":
    main()
