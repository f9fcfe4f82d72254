"""The ``spikeattn`` command: train, count, generate, export, lava-run, bench.

Each subcommand is a thin layer over the package (``spikeattn.train``, ``spikeattn.opcount``,
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


def cmd_train(args) -> None:
    import torch
    import torch.nn.functional as F

    import spikeattn as sa
    from spikeattn.train.model_file import save_model

    torch.manual_seed(args.seed)
    config = sa.train.TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=min(50, args.steps // 10),
        out_dir=args.out, max_minutes=args.max_minutes, seed=args.seed, progress=not args.no_progress,
    )
    if args.family != "spikformer" and (args.pretrain or args.init_from):
        raise SystemExit("--pretrain and --init-from are for `spikeattn train spikformer`")
    if args.family == "spikformer":
        model = sa.models.spikformer(args.preset, **_overrides(args.set or []))
        if (model.config.img_size, model.config.in_channels) != (28, 1):
            raise SystemExit("`spikeattn train spikformer` trains on Fashion-MNIST: use a 28x28 grey preset "
                             "(spikformer-mini-fmnist) or --set img_size=28 in_channels=1")
        train_set = sa.data.fashion_mnist("train", root=args.data, limit=args.limit)
        test_set = sa.data.fashion_mnist("test", root=args.data, limit=args.limit)
        if args.pretrain:
            if model.config.stem != "scs":
                raise SystemExit(f"--pretrain needs a Spikformer V2 (SCS stem: its masking survives the convolutions); "
                                 f"{args.preset} has stem={model.config.stem!r}: use spikformer-v2-mini-fmnist")
            _, summary = sa.train.pretrain(model, train_set, config, mask_ratio=args.mask_ratio)
            print(f"pretrained {summary['steps']} steps, final masked-patch loss {summary['final_train_loss']:.4f}; "
                  f"encoder saved to {summary['pretrained']} (fine-tune with --init-from)")
            return
        if args.init_from:
            try:
                sa.train.init_from(model, args.init_from)
            except (FileNotFoundError, ValueError) as e:
                raise SystemExit(f"--init-from: {e}") from None
        summary = sa.train.train(model, train_set, config, eval_set=test_set)
        from spikeattn.train.bn import recalibrate_bn

        recalibrate_bn(model, train_set, batches=min(40, -(-len(train_set) // 256)))
        summary["test_acc"] = sa.train.accuracy(model, test_set)
        extra = {"test_acc": summary["test_acc"], "preset": args.preset, "overrides": _overrides(args.set or [])}
    else:
        from spikeattn.data.text import CharCorpus, TextWindows, shakespeare_text

        corpus = CharCorpus(Path(args.data).read_text(encoding="utf-8") if args.data else shakespeare_text(), 0.05)
        model = sa.models.spikegpt(args.preset, vocab_size=corpus.vocab_size, **_overrides(args.set or []))
        block = model.config.context
        train_set = TextWindows(corpus.train, block, n_windows=args.steps * args.batch_size, seed=args.seed)
        eval_set = TextWindows(corpus.val[: 256 * block + 1], block)
        loss = lambda logits, y: F.cross_entropy(logits.flatten(0, 1), y.flatten())  # noqa: E731
        summary = sa.train.train(model, train_set, config, eval_set=eval_set, loss_fn=loss)
        extra = {"chars": corpus.chars, "preset": args.preset, "overrides": _overrides(args.set or [])}
    path = save_model(model, Path(args.out) / "model.pt", **extra)
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, (list, dict))}, indent=1, default=str))
    print(f"model saved to {path}")


def cmd_count(args) -> None:
    import torch

    import spikeattn as sa

    model, _ = _model(args.model, _overrides(args.set))
    if args.input_shape:
        shape = tuple(args.input_shape)
    elif hasattr(model.config, "img_size"):
        c = model.config
        shape = (args.batch, c.in_channels, c.img_size, c.img_size)
    else:
        shape = (args.batch, 64)
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


def _export_module():
    """``spikeattn.export`` or a clear exit: it is an optional part of the package."""
    import importlib.util

    if importlib.util.find_spec("spikeattn.export") is None:
        raise SystemExit("spikeattn.export is not available in this installation: Lava export is not built")
    import spikeattn.export as export

    return export


def cmd_export(args) -> None:
    import torch

    export = _export_module()
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

    export = _export_module()
    if not Path(args.artifact).is_dir():
        raise SystemExit(f"artifact folder not found: {args.artifact}")
    if not Path(args.input).is_file():
        raise SystemExit(f"input file not found: {args.input} (a [T, B, ...] .npy array)")
    try:
        output = export.run_lava(args.artifact, np.load(args.input), fixed_point=args.fixed_point,
                                 timeout=args.timeout)
    except (export.LavaError, ValueError) as e:
        raise SystemExit(f"lava-run: {e}") from None
    np.save(args.out, output)
    print(f"output {tuple(output.shape)}, {int((output != 0).sum())} non-zero values; saved to {args.out}")


def cmd_loihi_report(args) -> None:
    import torch

    export = _export_module()
    model, _ = _model(args.model, _overrides(args.set))
    if args.input_shape:
        shape = tuple(args.input_shape)
    elif hasattr(model.config, "img_size"):
        c = model.config
        shape = (1, c.in_channels, c.img_size, c.img_size)
    else:
        raise SystemExit("--input-shape T B ... is needed for this model")
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    try:
        report = export.loihi_report(model, x, profile=args.profile, weight_synapses=args.weight_synapses)
    except (export.NotExportable, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"loihi-report: {e}") from None
    print(report.table())
    if args.json:
        print(f"wrote {report.to_json(args.json)}")


def cmd_bench(args) -> None:
    script = Path(__file__).resolve().parent.parent / "benchmarks" / f"bench_{args.op}.py"
    if not script.is_file():
        raise SystemExit(f"benchmarks live in the source tree; {script} not found (run from a git checkout)")
    raise SystemExit(subprocess.call([sys.executable, str(script), *args.rest]))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spikeattn", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model preset and save it as one file")
    t.add_argument("family", choices=("spikformer", "spikegpt"))
    t.add_argument("--preset", help="preset name (default: the family's small demo preset)")
    t.add_argument("--data", help="Fashion-MNIST folder (spikformer) or a UTF-8 text file (spikegpt)")
    t.add_argument("--set", nargs="*", default=None, metavar="KEY=VALUE",
                   help="preset config overrides, Python literals (e.g. T=4 dim=96)")
    t.add_argument("--steps", type=int, default=500)
    t.add_argument("--limit", type=int, default=None, help="use only the first N images of each split (spikformer)")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--max-minutes", type=float, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="runs/cli")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--pretrain", action="store_true",
                   help="spikformer: masked-image pretraining without labels (writes OUT/pretrained.pt)")
    t.add_argument("--mask-ratio", type=float, default=0.75, help="with --pretrain: fraction of patches masked")
    t.add_argument("--init-from", help="spikformer: start from a pretrained encoder (pretrained.pt or ckpt.pt)")
    t.set_defaults(func=cmd_train)

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
    r.add_argument("--fixed-point", action="store_true", help="Loihi-style integer models (experimental)")
    r.add_argument("--timeout", type=float, default=120)
    r.set_defaults(func=cmd_lava_run)

    lr = sub.add_parser("loihi-report", help="cores, chips and binding limits of a model file or preset on Loihi")
    lr.add_argument("model", help="a model file or a preset name")
    lr.add_argument("--profile", default="loihi2", help="loihi1, loihi2 or a profile .toml path")
    lr.add_argument("--weight-synapses", type=int, choices=(1, 2), default=2,
                    help="8-bit synapses per connection (2: sign + 16-bit weights, the fixed-point default)")
    lr.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="preset overrides")
    lr.add_argument("--input-shape", type=int, nargs="+", help="example input (default: one image of the config)")
    lr.add_argument("--json", help="write the report as JSON here")
    lr.set_defaults(func=cmd_loihi_report)

    b = sub.add_parser("bench", help="run benchmarks/bench_<op>.py from the source tree")
    b.add_argument("op", choices=("lif", "attention", "wkv", "opcount"))
    b.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    b.set_defaults(func=cmd_bench)
    return p


def _add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """``--debug`` before or after the subcommand: show the traceback instead of a one-line error."""
    parser.add_argument("--debug", action="store_true", help="on an error, print the Python traceback")
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


# Errors a user can cause and fix (bad arguments, files, missing extras): their message is the whole story.
_USER_ERRORS = (ValueError, TypeError, OSError, ImportError, RuntimeError)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    _add_debug_flag(parser)
    args = parser.parse_args(argv)
    if getattr(args, "preset", "unset") is None:
        args.preset = "spikformer-mini-fmnist" if args.family == "spikformer" else "spikegpt-demo"
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
