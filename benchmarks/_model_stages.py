"""bench_models.py's Spikformer stage breakdown, output comparison and table.

A stage (stem, every block's attention, every block's MLP, head) is timed alone on the input it gets
inside the model (captured by forward pre-hooks), for spikeattn and spikingjelly alike; attention and
MLP sum over the blocks. Residual additions between stages are not in any stage.
"""

from __future__ import annotations

import statistics
import time

import torch

import spikeattn as sa

STAGES = ("stem", "attention", "mlp", "head")


def _stage_calls(model, is_sj: bool, x: torch.Tensor):
    """[(stage, module_to_reset, fn(input), input)] for one model, inputs captured from a forward."""
    captured = []
    hooks = [b.attn.register_forward_pre_hook(lambda m, a: captured.append(("attention", m, a[0].detach().clone())))
             for b in model.blocks]
    hooks += [b.mlp.register_forward_pre_hook(lambda m, a: captured.append(("mlp", m, a[0].detach().clone())))
              for b in model.blocks]
    with torch.no_grad():
        model.eval()
        x_seq = model._to_sequence(x)
        stem = model.patch_embed if is_sj else model.embed
        t = stem(x_seq)
        for block in model.blocks:
            t = block(t)
    for h in hooks:
        h.remove()
    last = t.detach().clone()
    head = ((lambda z: model.head(z.flatten(3).mean(dim=-1)).mean(0)) if is_sj
            else (lambda z: model.head(z.mean(dim=2)).mean(0)))
    calls = [("stem", stem, stem, x_seq)]
    calls += [(s, m, m, inp) for s, m, inp in captured]
    calls.append(("head", model.head, head, last))
    return calls


def _time_stage(fn, module, reset, inp, train: bool, needs_grad: bool) -> tuple[float, float]:
    """(wall ms, CPU ms of all threads) of the stage's forward (+ backward of the output's sum)."""
    reset(module)
    if train:
        module.train()
        inp = inp.detach().requires_grad_(needs_grad)  # the stem's image input needs none
        t0, c0 = time.perf_counter(), time.process_time()
        fn(inp).sum().backward()
    else:
        module.eval()
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            fn(inp)
    return 1e3 * (time.perf_counter() - t0), 1e3 * (time.process_time() - c0)


def breakdown(ours, theirs, reset_sj, x, warmup: int, repeats: int) -> dict:
    """{stage: {lib: {train_ms, train_cpu_ms, inference_ms, inference_cpu_ms}}} medians; blocks summed per stage.

    Wall and CPU time (all threads) both: on a shared CPU the CPU time is the steadier of the two.
    """
    libs = {"spikeattn": (_stage_calls(ours, False, x), sa.reset),
            "spikingjelly": (_stage_calls(theirs, True, x), reset_sj)}
    keys = ("train_ms", "train_cpu_ms", "inference_ms", "inference_cpu_ms")
    samples = {s: {lib: {k: [] for k in keys} for lib in libs} for s in STAGES}
    for i in range(warmup + repeats):
        for lib, (calls, reset) in libs.items():
            sums = {s: dict.fromkeys(keys, 0.0) for s in STAGES}
            for stage, module, fn, inp in calls:
                times = (*_time_stage(fn, module, reset, inp, True, stage != "stem"),
                         *_time_stage(fn, module, reset, inp, False, False))
                for k, v in zip(keys, times):
                    sums[stage][k] += v
            if i >= warmup:
                for s in STAGES:
                    for k, v in sums[s].items():
                        samples[s][lib][k].append(v)
    out = {}
    for s in STAGES:
        row = {lib: {k: statistics.median(v) for k, v in d.items()} for lib, d in samples[s].items()}
        for k in keys:
            row[f"speedup_{k.removesuffix('_ms')}"] = row["spikingjelly"][k] / row["spikeattn"][k]
        out[s] = row
    return out


def agreement(ours, theirs, reset_sj, x) -> dict:
    """Same weights: stems compared (they differ: pool before/after LIF), then the encoder and head on the same tokens.

    In training mode (BN on batch statistics, under no_grad): in eval mode BN's affine is rounded
    differently for [M, C] (ours) and [B, C, N] (spikingjelly's Conv1d layout) inputs, and single
    flipped spikes then spread through the blocks.
    """
    with torch.no_grad():
        ours.train(), theirs.train()
        sa.reset(ours), reset_sj(theirs)
        logits_ours, logits_sj = ours(x), theirs(x).mean(0)
        sa.reset(ours), reset_sj(theirs)
        x_seq = theirs._to_sequence(x)
        sj_tokens = theirs.patch_embed(x_seq)                       # (T, B, C, H, W)
        our_tokens = ours.embed(x_seq)                              # (T, B, N, C)
        as_ours = sj_tokens.flatten(3).transpose(2, 3)              # (T, B, N, C)
        stem_equal = (our_tokens == as_ours).float().mean().item()
        a, b = as_ours.contiguous(), sj_tokens
        per_block = []
        for ob, tb in zip(ours.blocks, theirs.blocks):
            b_in = b.flatten(3).transpose(2, 3).contiguous()          # spikingjelly's block input, our layout
            a, b = ob(a), tb(b)
            # each block on the same input: fp32 rounding (BN statistics, GEMM order) flips a few spikes,
            # which the end-to-end comparison then carries through every later block
            sa.reset(ob)  # its neurons start from rest again for the second input
            per_block.append((ob(b_in) == b.flatten(3).transpose(2, 3)).float().mean().item())
        blocks_equal = (a == b.flatten(3).transpose(2, 3)).float().mean().item()
        head_ours = ours.head(a.mean(dim=2)).mean(0)
        head_sj = theirs.head(b.flatten(3).mean(dim=-1)).mean(0)
    return {
        "stem_equal_fraction": stem_equal,
        "stem_note": "spikingjelly 2.0 max-pools before the LIF, Spikformer's code and spikeattn after it",
        "encoder_equal_fraction_same_tokens": blocks_equal,
        "block_equal_fraction_same_input": per_block,
        "encoder_output_mean": a.mean().item(),
        "head_logits_max_abs_diff_same_tokens": (head_ours - head_sj).abs().max().item(),
        "whole_model_logits_max_abs_diff": (logits_ours - logits_sj).abs().max().item(),
    }


def table(report: dict) -> str:
    lines = []
    for threads, r in report["spikformer"].items():
        lines.append(f"Spikformer, {threads} thread(s)  (median ms wall / CPU ms of all threads)")
        for case in ("train_step", "inference"):
            row = r[case]
            cells = "  ".join(f"{lib} {row[lib]['median_ms']:.1f} / {row[lib]['cpu_ms_median']:.1f}"
                              for lib in ("spikeattn", "spikingjelly"))
            lines.append(f"  {case:10} {cells}  speedup x{row['speedup']:.2f} (CPU time x{row['speedup_cpu_time']:.2f})")
        mem = r["train_step"]
        lines.append(f"  activation memory (train, saved MiB): {mem['spikeattn']['saved_mib']:.1f} vs "
                     f"{mem['spikingjelly']['saved_mib']:.1f}; inference peak live MiB: "
                     f"{r['inference']['spikeattn']['peak_live_mib']:.1f} vs {r['inference']['spikingjelly']['peak_live_mib']:.1f}")
        for s, row in r["stages"].items():
            lines.append(f"  stage {s:9} train CPU ms {row['spikeattn']['train_cpu_ms']:8.1f} vs "
                         f"{row['spikingjelly']['train_cpu_ms']:8.1f} (x{row['speedup_train_cpu']:.2f})  inference CPU ms "
                         f"{row['spikeattn']['inference_cpu_ms']:7.1f} vs {row['spikingjelly']['inference_cpu_ms']:7.1f} "
                         f"(x{row['speedup_inference_cpu']:.2f})")
        for case, row in r.get("op_time", {}).items():
            cells = "  ".join(f"{lib} dense {row[lib]['dense']:.0f} / BN {row[lib]['batch_norm']:.0f} / other "
                              f"{row[lib]['other']:.0f}" for lib in ("spikeattn", "spikingjelly"))
            lines.append(f"  {case:10} profiled ms: {cells}; speed-up bound with only our dense time left "
                         f"x{row['speedup_bound_if_only_dense_remained']:.2f}")
        lines.append(f"  agreement: {r['agreement']}")
    for threads, r in report["spikegpt"].items():
        for preset, row in r.items():
            tr, gen = row["train"], row["generate"]
            lines.append(f"SpikeGPT {preset}, {threads} thread(s): train {tr['as_built']['tokens_per_s']:.0f} vs "
                         f"{tr['linear_autograd']['tokens_per_s']:.0f} tokens/s (as built vs ops.linear Linear swapped in, "
                         f"{row['linear_autograd_backend']}, unfused: x{tr['speedup']:.2f}); "
                         f"generate {gen['as_built']['median_ms']:.2f} vs {gen['linear_autograd']['median_ms']:.2f} ms/token")
    return "\n".join(lines)
