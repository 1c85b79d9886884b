"""K independent small networks trained as one batched computation (``torch.func``).

The members' parameters are stacked along a new leading axis with
``torch.func.stack_module_state``. Any module's forward pass is ``vmap``-ed over that axis, as
in PyTorch's model-ensembling tutorial; for :class:`nnlearn.models.MLP` a direct batched-matmul
forward (``MLP.forward_stacked``) does the same about four times faster on tiny networks. Because every optimiser here acts elementwise and the
ensemble's loss is the *sum* of the members' losses, each member gets exactly its own
gradient and update: training together equals training one at a time (up to float rounding).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from nnlearn.models import MLP
from nnlearn.progress import progress_bar
from nnlearn.seeding import make_generator
from nnlearn.checks import check_choice
from nnlearn.train import LOSSES, as_tensor, epoch_batches, make_optimizer, predict_labels


class Ensemble:
    """A stack of K models of one architecture.

    Parameters
    ----------
    models : sequence of nn.Module
        K >= 1 models with identical parameter names and shapes.

    Attributes
    ----------
    params : dict of name -> Tensor of shape (K, *param_shape), leaf tensors that require grad
    buffers : dict of name -> Tensor of shape (K, *buffer_shape)
    """

    def __init__(self, models: Sequence[nn.Module], *, use_vmap: bool = False):
        models = list(models)
        if len(models) < 1:
            raise ValueError(f"models: expected K >= 1 models, got {len(models)}")
        shapes = {n: p.shape for n, p in models[0].named_parameters()}
        for i, m in enumerate(models[1:], 1):
            if {n: p.shape for n, p in m.named_parameters()} != shapes:
                raise ValueError(f"models[{i}] has other parameter names or shapes than models[0]")
        self.params, self.buffers = stack_module_state(models)
        self.base = copy.deepcopy(models[0]).to("meta")
        self.use_vmap = use_vmap or not isinstance(self.base, MLP)

    @classmethod
    def from_seeds(cls, make_model: Callable[[int], nn.Module], seeds: Sequence[int]) -> "Ensemble":
        """One member per seed, each built by ``make_model(seed)``."""
        seeds = list(seeds)
        if len(seeds) < 1:
            raise ValueError("seeds: expected at least one seed (K >= 1)")
        return cls([make_model(s) for s in seeds])

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def _call_one(self, params, buffers, x, kwargs):
        return functional_call(self.base, (params, buffers), (x,), kwargs)

    def __call__(self, x: torch.Tensor, *, per_member: bool = False, **kwargs) -> torch.Tensor:
        """Outputs of every member.

        Parameters
        ----------
        x : Tensor, shape (N, n_in) shared by all members, or (K, N, n_in) if ``per_member``
        **kwargs : passed to every member's forward (e.g. ``masks``); on the MLP path masks
            broadcast against (K, N, width), so (K, 1, width) gives each member its own

        Returns
        -------
        Tensor of shape (K, N, n_out)
        """
        if per_member and x.shape[0] != len(self):
            raise ValueError(f"x: per_member inputs need leading dimension K={len(self)}, got {tuple(x.shape)}")
        if not self.use_vmap:
            return self.base.forward_stacked(self.params, x, **kwargs)
        fn = lambda p, b, xx: self._call_one(p, b, xx, kwargs)  # noqa: E731
        return vmap(fn, in_dims=(0, 0, 0 if per_member else None))(self.params, self.buffers, x)

    def member(self, k: int) -> nn.Module:
        """An ordinary copy of member ``k`` (detached from the ensemble)."""
        if not -len(self) <= k < len(self):
            raise IndexError(f"member index {k} out of range for K={len(self)}")
        model = copy.deepcopy(self.base).to_empty(device="cpu")
        state = {n: t[k].detach().clone() for n, t in {**self.params, **self.buffers}.items()}
        model.load_state_dict(state)
        return model

    def flat_params(self) -> torch.Tensor:
        """All parameters of each member as one row: shape (K, P), in ``named_parameters`` order."""
        return torch.cat([p.detach().reshape(len(self), -1) for p in self.params.values()], 1)


def member_losses(outputs: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Each member's mean loss: outputs (K, N, C), targets (K, N) -> shape (K,).

    Computes what :func:`nnlearn.train.compute_loss` computes for one member, for all at once.
    """
    check_choice("loss", loss, LOSSES)
    if loss == "ce":
        return F.cross_entropy(outputs.transpose(1, 2), y.long(), reduction="none").mean(1)
    if loss == "bce":
        logits = outputs.squeeze(-1) if outputs.ndim == y.ndim + 1 else outputs
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), reduction="none").mean(1)
    target = y
    if not y.is_floating_point():
        target = F.one_hot(y.long(), outputs.shape[-1]).to(outputs.dtype)
    per = F.mse_loss(outputs, target.reshape(outputs.shape), reduction="none")
    return per.reshape(per.shape[0], -1).mean(1)


@dataclass
class EnsembleHistory:
    """``loss`` and ``acc``: arrays of shape (epochs, K); ``snapshots``: (n_snapshots, K, P)
    flat parameters at the epochs in ``snapshot_epochs`` (-1 is the initialisation)."""

    loss: np.ndarray
    acc: np.ndarray
    snapshot_epochs: list = field(default_factory=list)
    snapshots: np.ndarray | None = None


def train_ensemble(
    ens: Ensemble,
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
    seeds: Sequence[int] | None = None,
    snapshot_every: int | None = None,
    progress: bool | None = None,
    **forward_kwargs,
) -> EnsembleHistory:
    """Train every member of ``ens`` at once, in place.

    Member ``k`` sees exactly what :func:`nnlearn.train.fit` with ``seed=seeds[k]`` would:
    the same data, the same mini-batch order, the same optimiser.

    Parameters
    ----------
    X : shape (N, n_in) shared by all members, or (K, N, n_in): each member its own data
    y : shape (N,), or (K, N) with per-member X
    seeds : sequence of K ints, optional
        Mini-batch order seed of each member (default 0..K-1); unused for full-batch training.
    snapshot_every : int, optional
        Keep flat parameters at the start and every this many epochs (for trajectories).
    """
    X, y = as_tensor(X, torch.float32), as_tensor(y)
    K = len(ens)
    per_member = X.ndim == 3
    if per_member and (X.shape[0] != K or y.shape[:1] != (K,)):
        raise ValueError(f"per-member data needs X of shape (K={K}, N, n_in) and y of shape (K, N), got {tuple(X.shape)} and {tuple(y.shape)}")
    n = X.shape[-2]
    if y.shape[-1] != n or n == 0:
        raise ValueError(f"X and y must be non-empty with equal lengths, got {n} and {y.shape[-1]}")
    rows = torch.arange(K).unsqueeze(1)
    yk = y if per_member else y.expand(K, *y.shape)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    check_choice("loss", loss, LOSSES)
    seeds = list(range(K)) if seeds is None else list(seeds)
    if len(seeds) != K:
        raise ValueError(f"seeds: expected {K} seeds (one per member), got {len(seeds)}")
    opt = make_optimizer(list(ens.params.values()), optimizer, lr, momentum, weight_decay)
    gens = [make_generator(s) for s in seeds]
    full_batch = batch_size is None or batch_size >= n
    per_loss = lambda out, yy: member_losses(out, yy, loss)  # noqa: E731  (K, N, .) -> (K,)
    losses, accs, snaps, snap_epochs = [], [], [], []
    if snapshot_every:
        snaps.append(ens.flat_params().numpy().copy())
        snap_epochs.append(-1)
    for epoch in progress_bar(range(epochs), desc="epochs", progress=progress):
        if full_batch:
            batches = [None]
        else:  # each member draws its own order, exactly as fit() would with its seed
            orders = [epoch_batches(n, batch_size, g, shuffle) for g in gens]
            batches = [torch.stack(parts) for parts in zip(*orders)]
        for idx in batches:
            opt.zero_grad()
            if idx is None:
                out = ens(X, per_member=per_member, **forward_kwargs)
                total = per_loss(out, yk).sum()
            else:
                xb = X[rows, idx] if per_member else X[idx]
                out = ens(xb, per_member=True, **forward_kwargs)
                total = per_loss(out, yk[rows, idx]).sum()
            total.backward()
            opt.step()
        with torch.no_grad():
            out = ens(X, per_member=per_member, **forward_kwargs)
            losses.append(per_loss(out, yk).numpy().copy())
            accs.append((predict_labels(out, loss) == yk.long()).float().mean(-1).numpy().copy())
        if snapshot_every and (epoch + 1) % snapshot_every == 0:
            snaps.append(ens.flat_params().numpy().copy())
            snap_epochs.append(epoch)
    return EnsembleHistory(
        loss=np.array(losses),
        acc=np.array(accs),
        snapshot_epochs=snap_epochs,
        snapshots=np.array(snaps) if snapshot_every else None,
    )
