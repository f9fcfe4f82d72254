"""Linear probe: fit a classifier's head to its frozen features (the first stage of LP-FT).

    fit_head(model, labelled)     # head = logistic regression on the pooled features, then fine-tune

Fine-tuning a pretrained encoder under a randomly initialised head sends the head's noise back into
the encoder for the first steps and distorts the features it came for (Kumar et al., ICLR 2022,
"Fine-Tuning can Distort Pretrained Features"). Fitting the head first, to convergence, on the
frozen features avoids that. The fit is a full-batch L-BFGS logistic regression on features computed
once, so it costs one forward pass over the labelled set, not training steps.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

__all__ = ["head_features", "fit_head"]


@torch.no_grad()
def head_features(model: nn.Module, dataset: Dataset, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [N, C], labels [N])``: what ``model.head`` receives, averaged over any leading time axis.

    Computed in train mode (BN normalises with the statistics of each batch, as the fine-tuning steps
    that follow will), then every buffer (BN running statistics...) is put back as it was.
    """
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"fit_head needs a model whose .head is an nn.Linear, got {type(head).__name__}")
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    was_training, device = model.training, head.weight.device
    seen: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0]))
    feats, labels = [], []
    try:
        model.train()
        for x, y in DataLoader(dataset, batch_size=batch_size):
            seen.clear()
            model(x.to(device))
            f = seen[-1]
            feats.append(f.reshape(-1, x.shape[0], f.shape[-1]).mean(0))   # [T, B, C] (or [B, C]) -> [B, C]
            labels.append(torch.as_tensor(y))
    finally:
        hook.remove()
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
        model.train(was_training)
    return torch.cat(feats).float(), torch.cat(labels).long().to(device)


def fit_head(model: nn.Module, dataset: Dataset, weight_decay: float = 1e-3, max_iter: int = 200) -> float:
    """Set ``model.head`` to the L2-regularised logistic regression of the labels on ``head_features``.

    Only the head changes. Returns the fitted head's accuracy on ``dataset`` (its own training set).
    """
    x, y = head_features(model, dataset)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std                      # standardised: one weight_decay suits every channel scale
    w = torch.zeros(model.head.out_features, x.shape[1], device=x.device, requires_grad=True)
    b = torch.zeros(model.head.out_features, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, y) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():                     # fold the standardisation into the head: W z + b = (W/s) x + b'
        model.head.weight.copy_(w / std)
        model.head.bias.copy_(b - (w * mean / std).sum(1))
        return ((z @ w.T + b).argmax(1) == y).float().mean().item()
