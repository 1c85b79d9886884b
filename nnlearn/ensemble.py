"""K independent small networks trained as one batched computation (``torch.func``).

The members' parameters are stacked along a new leading axis with
``torch.func.stack_module_state``. Any module's forward pass is ``vmap``-ed over that axis, as
in PyTorch's model-ensembling tutorial; for :class:`nnlearn.models.MLP` a direct batched-matmul
forward (``MLP.forward_stacked``) does the same about four times faster on tiny networks.
:func:`train_ensemble` is a configuration of the batched-training engine
(:func:`nnlearn.engine.train`): the loss is the *sum* of the members' losses and every optimiser
acts elementwise, so each member gets exactly its own gradient and update, and training
together equals training one at a time (up to float rounding).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from nnlearn import engine
from nnlearn.engine import member_losses  # noqa: F401  (re-exported: ensemble.member_losses)
from nnlearn.models import MLP
from nnlearn.train import as_tensor


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
    def from_seeds(cls, make_model: Callable[[int], nn.Module], seeds: Sequence[int]) -> Ensemble:
        """One member per seed, each built by ``make_model(seed)``."""
        seeds = list(seeds)
        if len(seeds) < 1:
            raise ValueError("seeds: expected at least one seed (K >= 1)")
        return cls([make_model(s) for s in seeds])

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]

    @classmethod
    def from_params(cls, model: nn.Module, params: dict) -> Ensemble:
        """An ensemble of ``model``'s architecture holding the stacked ``params`` (K, ...)."""
        K = next(iter(params.values())).shape[0]
        ens = cls([model])
        ens.params = {n: params[n].detach().clone().requires_grad_(True) for n in ens.params}
        ens.buffers = {n: b.expand(K, *b.shape[1:]).clone() for n, b in ens.buffers.items()}
        return ens

    def _call_one(self, params, buffers, x, kwargs):
        return functional_call(self.base, (params, buffers), (x,), kwargs)

    def stacked(
        self, params: dict, x: torch.Tensor, *, per_member: bool = False, masks=None, **kwargs
    ) -> torch.Tensor:
        """The members' forward pass with other stacked ``params``: the engine's model protocol
        (see :mod:`nnlearn.engine`). ``masks`` as in :meth:`__call__`."""
        if masks is not None:
            kwargs["masks"] = masks
        if not self.use_vmap:
            return self.base.forward_stacked(params, x, **kwargs)
        fn = lambda p, b, xx: self._call_one(p, b, xx, kwargs)
        return vmap(fn, in_dims=(0, 0, 0 if per_member else None))(params, self.buffers, x)

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
            raise ValueError(
                f"x: per_member inputs need leading dimension K={len(self)}, got {tuple(x.shape)}"
            )
        return self.stacked(self.params, x, per_member=per_member, **kwargs)

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
    """Train every member of ``ens`` at once, in place (a configuration of
    :func:`nnlearn.engine.train`).

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
    **forward_kwargs : passed to every forward pass (e.g. ``masks``)
    """
    X = as_tensor(X, torch.float32)
    K = len(ens)
    if X.ndim == 3 and (X.shape[0] != K or as_tensor(y).shape[:1] != (K,)):
        raise ValueError(
            f"per-member data needs X of shape (K={K}, N, n_in) and y of shape (K, N), got "
            f"{tuple(X.shape)} and {tuple(as_tensor(y).shape)}"
        )
    if seeds is not None and isinstance(seeds, int):
        raise TypeError("seeds must be a sequence of K ints")
    model = lambda p, x, per_member=False, masks=None: ens.stacked(
        p, x, per_member=per_member, **forward_kwargs
    )
    run = engine.train(
        model,
        ens.params,
        X,
        y,
        loss=loss,
        optimizer=optimizer,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        seeds=seeds,
        shuffle=shuffle,
        momentum=momentum,
        weight_decay=weight_decay,
        snapshot_every=snapshot_every,
        progress=progress,
    )
    with torch.no_grad():
        for n, t in ens.params.items():
            t.copy_(run.params[n])
    return EnsembleHistory(
        loss=run.loss,
        acc=run.acc,
        snapshot_epochs=[e - 1 for e in run.snapshot_at],
        snapshots=run.snapshots,
    )
