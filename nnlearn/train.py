"""Training loops small enough to read in one sitting.

- :func:`fit`: full-batch or mini-batch training of one model, with a loss/accuracy history.
- :func:`per_sample_sgd`: plain SGD on one example at a time that tallies, per parameter,
  the summed absolute update caused by each group of labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from nnlearn.checks import check_choice, finite_float, positive_int
from nnlearn.progress import progress_bar
from nnlearn.seeding import make_generator

LOSSES = ("ce", "bce", "mse")
OPTIMIZERS = ("sgd", "adam")


def as_tensor(a, dtype=None) -> torch.Tensor:
    """NumPy arrays and tensors alike as a torch tensor (no copy when possible)."""
    if isinstance(a, torch.Tensor):
        return a if dtype is None else a.to(dtype)
    if isinstance(a, np.ndarray):
        return torch.as_tensor(a, dtype=dtype)
    raise TypeError(f"expected a numpy array or torch tensor, got {type(a).__name__}")


def _data(name: str, a, dtype=None) -> torch.Tensor:
    """``as_tensor`` with an error naming the argument."""
    if not isinstance(a, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(a).__name__}")
    return as_tensor(a, dtype)


def compute_loss(outputs: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean loss over the examples of the last-but-one axis.

    outputs : (..., N, C) logits ("ce"), (..., N, 1) or (..., N) logits ("bce"), or (..., N, C)
        outputs compared with targets ("mse"; integer targets are one-hot encoded first).
    y : (..., N) integer classes, or float targets matching ``outputs`` for "bce"/"mse".
    """
    check_choice("loss", loss, LOSSES)
    if loss == "ce":
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), y.reshape(-1).long())
    if loss == "bce":
        logits = (
            outputs.squeeze(-1)
            if outputs.shape[-1] == 1 and outputs.ndim == y.ndim + 1
            else outputs
        )
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))
    target = y
    if not y.is_floating_point():
        target = F.one_hot(y.long(), outputs.shape[-1]).to(outputs.dtype)
    return F.mse_loss(outputs, target.reshape(outputs.shape))


def predict_labels(outputs: torch.Tensor, loss: str) -> torch.Tensor:
    """Class predictions: argmax for multi-output nets, threshold 0 on the logit for "bce".

    Non-finite outputs have no class: they are an error, not class 0.
    """
    check_choice("loss", loss, LOSSES)
    if not isinstance(outputs, torch.Tensor):
        raise TypeError(f"outputs must be a torch.Tensor, got {type(outputs).__name__}")
    if outputs.ndim == 0 or outputs.numel() == 0:
        raise ValueError(
            f"outputs must be a non-empty tensor (..., N, C), got shape {tuple(outputs.shape)}"
        )
    if not torch.isfinite(outputs).all():
        raise ValueError("outputs contain NaN or infinite values; they have no predicted class")
    if loss == "bce":
        logits = outputs.squeeze(-1) if outputs.shape[-1] == 1 else outputs
        return (logits > 0).long()
    return outputs.argmax(-1)


def make_optimizer(
    params, optimizer: str, lr: float, momentum: float = 0.0, weight_decay: float = 0.0
):
    check_choice("optimizer", optimizer, OPTIMIZERS)
    lr = finite_float("lr", lr, low=0.0, strict=True)
    momentum = finite_float("momentum", momentum, low=0.0)
    weight_decay = finite_float("weight_decay", weight_decay, low=0.0)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@dataclass
class History:
    """Per-epoch training record: ``loss[e]`` and ``acc[e]`` after epoch e (on the training set)."""

    loss: list = field(default_factory=list)
    acc: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.loss)


def _labels_or_wrong(outputs: torch.Tensor, loss: str) -> torch.Tensor:
    """Predicted labels, with -1 (never correct) where an output is not finite (a diverged
    run counts as wrong, not as class 0)."""
    finite = torch.isfinite(outputs).reshape(*outputs.shape[:-1], -1).all(-1)
    if loss == "bce":
        logits = outputs.squeeze(-1) if outputs.shape[-1] == 1 else outputs
        labels = (logits > 0).long()
    else:
        labels = outputs.argmax(-1)
    return torch.where(finite, labels, torch.full_like(labels, -1))


def epoch_batches(n: int, batch_size: int | None, generator: torch.Generator | None, shuffle: bool):
    """Index tensors for one epoch: one full batch, or shuffled (or ordered) mini-batches."""
    n = positive_int("n", n)
    if batch_size is not None:
        batch_size = positive_int("batch_size", batch_size)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__}")
    if batch_size is None or batch_size >= n:
        return [torch.arange(n)]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return list(order.split(batch_size))


def fit(
    model: torch.nn.Module,
    X,
    y,
    *,
    loss: str = "ce",
    optimizer: str = "adam",
    lr: float = 1e-2,
    epochs: int = 10,
    batch_size: int | None = None,
    shuffle: bool = True,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    seed: int = 0,
    masks=None,
    callback=None,
    progress: bool | None = None,
) -> History:
    """Train ``model`` in place and return its per-epoch history.

    Parameters
    ----------
    X : array or Tensor, shape (N, n_in)
    y : array or Tensor, shape (N,) integer classes (or float targets for "bce"/"mse")
    loss : {"ce", "bce", "mse"}
    optimizer : {"sgd", "adam"}
    batch_size : int, optional
        None trains full-batch; otherwise mini-batches in an order drawn from ``seed``.
    masks : optional
        Node masks passed to ``model`` on every step (see :class:`nnlearn.models.MLP`).
    callback : callable(epoch, model), optional
        Called after every epoch (e.g. to record snapshots).
    """
    X, y = _data("X", X, torch.float32), _data("y", y)
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X and y must be non-empty with equal lengths, got {len(X)} and {len(y)}")
    epochs = positive_int("epochs", epochs)
    if batch_size is not None:
        batch_size = positive_int("batch_size", batch_size)
    check_choice("loss", loss, LOSSES)
    if not torch.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values")
    opt = make_optimizer(model.parameters(), optimizer, lr, momentum, weight_decay)
    g = make_generator(seed)
    kwargs = {} if masks is None else {"masks": masks}
    history = History()
    for epoch in progress_bar(range(epochs), desc="epochs", progress=progress):
        for idx in epoch_batches(len(X), batch_size, g, shuffle):
            opt.zero_grad()
            compute_loss(model(X[idx], **kwargs), y[idx], loss).backward()
            opt.step()
        with torch.no_grad():
            out = model(X, **kwargs)
            history.loss.append(compute_loss(out, y, loss).item())
            history.acc.append((_labels_or_wrong(out, loss) == y.long()).float().mean().item())
        if callback is not None:
            callback(epoch, model)
    return history


def per_sample_sgd(
    model: torch.nn.Module,
    X,
    y,
    *,
    labels,
    groups: Mapping[str, Sequence[int]],
    lr: float,
    loss: str = "mse",
    tally_from: int = 0,
    progress: bool | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """Plain SGD on one example at a time, in the given order, tallying absolute updates.

    For every step ``t >= tally_from`` whose example's label belongs to group ``k``, the
    absolute update ``|lr * grad|`` of every parameter is added to ``tallies[k][name]``.

    Parameters
    ----------
    X : shape (N, n_in); y : shape (N,) training targets (see :func:`compute_loss`)
    labels : shape (N,), the label each example is grouped by (e.g. the digit)
    groups : mapping of group name to the labels it holds, e.g. ``{"17": [1, 7], "68": [6, 8]}``
    tally_from : int
        First step that is tallied (e.g. ``N // 2`` for the second half of training).

    Returns
    -------
    dict
        ``tallies[group][param_name]``: tensor shaped like the parameter.
    """
    X, y = _data("X", X, torch.float32), _data("y", y)
    labels = np.asarray(labels)
    if not (len(X) == len(y) == len(labels)) or len(X) == 0:
        raise ValueError(
            f"X, y and labels must be non-empty with equal lengths, got {len(X)}, {len(y)}, "
            f"{len(labels)}"
        )
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must be a non-empty mapping of name -> labels")
    group_of = np.full(len(labels), -1)
    for k, (name, members) in enumerate(groups.items()):
        members = list(np.atleast_1d(members))
        hit = np.isin(labels, members)
        if not members or not hit.any():
            raise ValueError(
                f"groups[{name!r}] is empty: none of the labels {members} occurs in labels"
            )
        if (group_of[hit] >= 0).any():
            raise ValueError(f"groups overlap: group {name!r} shares labels with another group")
        group_of[hit] = k
    if isinstance(tally_from, bool) or not isinstance(tally_from, (int, np.integer)):
        raise TypeError(f"tally_from must be an int, got {type(tally_from).__name__}")
    if not 0 <= tally_from <= len(X):
        raise ValueError(f"tally_from must be in 0..{len(X)}, got {tally_from}")
    check_choice("loss", loss, LOSSES)
    lr = finite_float("lr", lr, low=0.0, strict=True)
    names = list(groups)
    params = dict(model.named_parameters())
    tallies = {g: {n: torch.zeros_like(p) for n, p in params.items()} for g in names}
    for t in progress_bar(range(len(X)), desc="per-sample SGD", progress=progress):
        model.zero_grad()
        compute_loss(model(X[t : t + 1]), y[t : t + 1], loss).backward()
        with torch.no_grad():
            for n, p in params.items():
                step = lr * p.grad
                p -= step
                if t >= tally_from and group_of[t] >= 0:
                    tallies[names[group_of[t]]][n] += step.abs()
    return tallies
