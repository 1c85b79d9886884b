"""Networks as chains of linear layers and elementwise activations, optionally with a leading
member axis K on every parameter (an ensemble of networks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from nnlearn.attribution.rules import _check_tensor
from nnlearn.models import MLP, activation_fn
from nnlearn.seeding import make_generator

# ----------------------------------------------------------------------------------------
# Networks as chains of linear layers and elementwise activations
# ----------------------------------------------------------------------------------------


@dataclass
class Chain:
    """``x -> z_0 = x W_0^T + c_0 -> a_1 = f_0(z_0) -> ... -> z_L`` (the output, no activation).

    Attributes
    ----------
    weights : list of Tensor (..., n_out, n_in), one per linear layer (optional leading member axes)
    biases : list of Tensor (..., n_out) or None, one per linear layer
    activations : list of str, one per hidden layer (names in ``nnlearn.models.ACTIVATIONS``)
    passthrough : list of int, one per hidden layer: that many *last* units skip the activation
        (used by :func:`blame_the_bias` to carry the constant ones through the network)
    offsets : list of float, one per hidden layer: subtracted after the activation, so
        ``a = f(z) - offset`` (:func:`centre_activations` uses ``offset = f(0)``)
    """

    weights: list
    biases: list
    activations: list
    passthrough: list = field(default_factory=list)
    offsets: list = field(default_factory=list)

    def __post_init__(self):
        self.weights, self.biases, self.activations = (
            list(self.weights),
            list(self.biases),
            list(self.activations),
        )
        if not self.weights:
            raise ValueError("weights must hold at least one matrix")
        if len(self.biases) != len(self.weights):
            raise ValueError(
                f"biases: expected {len(self.weights)} entries (None for none), got "
                f"{len(self.biases)}"
            )
        if len(self.activations) != len(self.weights) - 1:
            raise ValueError(
                f"activations: expected {len(self.weights) - 1} names, got {len(self.activations)}"
            )
        self.fns = [activation_fn(a) for a in self.activations]
        self.passthrough = list(self.passthrough) or [0] * len(self.activations)
        if len(self.passthrough) != len(self.activations):
            raise ValueError(
                f"passthrough: expected {len(self.activations)} ints, got {len(self.passthrough)}"
            )
        self.offsets = [float(o) for o in self.offsets] or [0.0] * len(self.activations)
        if len(self.offsets) != len(self.activations):
            raise ValueError(
                f"offsets: expected {len(self.activations)} numbers, got {len(self.offsets)}"
            )
        for i, w in enumerate(self.weights):
            _check_tensor(f"weights[{i}]", w, 2)
            if i and w.shape[-1] != self.weights[i - 1].shape[-2]:
                raise ValueError(
                    f"weights[{i}] takes {w.shape[-1]} inputs but weights[{i - 1}] gives "
                    f"{self.weights[i - 1].shape[-2]}"
                )
            b = self.biases[i]
            if b is not None and (not isinstance(b, torch.Tensor) or b.shape[-1] != w.shape[-2]):
                raise ValueError(
                    f"biases[{i}] must be None or a Tensor with last dimension {w.shape[-2]}"
                )

    @classmethod
    def from_mlp(cls, model: MLP) -> Chain:
        """The chain of an :class:`nnlearn.models.MLP` (parameters shared, not copied)."""
        if not isinstance(model, MLP):
            raise TypeError(f"model must be an nnlearn.models.MLP, got {type(model).__name__}")
        if model.out_act is not None:
            raise ValueError("model must output logits (output_activation=None)")
        return cls(
            [l.weight for l in model.layers],
            [l.bias for l in model.layers],
            model.activation_names,
        )

    @classmethod
    def from_params(cls, params: Mapping[str, torch.Tensor], activations: Sequence[str]) -> Chain:
        """From ``layers.{i}.weight`` / ``layers.{i}.bias`` tensors, e.g. ``Ensemble.params`` (K,
        ...).
        """
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping name -> Tensor, got {type(params).__name__}")
        n = len(activations) + 1
        missing = [f"layers.{i}.weight" for i in range(n) if f"layers.{i}.weight" not in params]
        if missing:
            raise ValueError(
                f"params lacks {missing} (expected {n} layers for {len(activations)} activations)"
            )
        return cls(
            [params[f"layers.{i}.weight"] for i in range(n)],
            [params.get(f"layers.{i}.bias") for i in range(n)],
            activations,
        )

    @property
    def n_in(self) -> int:
        return self.weights[0].shape[-1]

    @property
    def has_bias(self) -> bool:
        return any(b is not None for b in self.biases)

    def activate(self, layer: int, pre: torch.Tensor) -> torch.Tensor:
        """Hidden layer ``layer``'s activation of ``pre`` (carried units pass unchanged)."""
        p, off = self.passthrough[layer], self.offsets[layer]
        fn = self.fns[layer] if off == 0 else (lambda z: self.fns[layer](z) - off)
        if p == 0:
            return fn(pre)
        return torch.cat([fn(pre[..., :-p]), pre[..., -p:]], -1)

    def activation(self, layer: int):
        """Elementwise function of hidden layer ``layer`` (offset applied; identity on carried
        units).
        """
        if self.passthrough[layer] == 0 and self.offsets[layer] == 0:
            return self.fns[layer]
        return lambda z: self.activate(layer, z)

    def trace(self, x: torch.Tensor) -> Trace:
        """Forward pass keeping every layer's input and pre-activation.

        Parameters
        ----------
        x : Tensor (N, n_in), or (K, N, n_in) for K members

        Returns
        -------
        Trace with ``inputs[l]`` (…, N, n_in_l) and ``pre[l]`` (…, N, n_out_l)
        """
        x = _check_tensor("x", x)
        if x.shape[-1] != self.n_in:
            raise ValueError(f"x must have last dimension {self.n_in}, got shape {tuple(x.shape)}")
        inputs, pre, h = [], [], x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.matmul(h, w.transpose(-1, -2))
            if b is not None:
                z = z + b.unsqueeze(-2)
            inputs.append(h)
            pre.append(z)
            if i < len(self.fns):
                h = self.activate(i, z)
        return Trace(inputs, pre)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Output (logits), shape (…, N, n_out)."""
        return self.trace(x).pre[-1]


class Trace(NamedTuple):
    """``inputs[l]``: input of linear layer l; ``pre[l]``: its output before the activation."""

    inputs: list
    pre: list


def random_chain(
    widths: Sequence[int],
    *,
    n_members: int = 1,
    seed: int = 0,
    bias: bool = False,
    bias_scale: float = 0.1,
    activation: str = "relu",
) -> Chain:
    """K random networks (He-normal weights) stacked on a leading member axis.

    Parameters
    ----------
    widths : ``[n_in, hidden..., n_out]``; n_members : K; seed : int
    bias : whether layers have biases, drawn N(0, bias_scale^2)

    Returns
    -------
    Chain with weights (K, n_out, n_in) and biases (K, n_out) or None
    """
    widths = list(widths)
    if len(widths) < 2 or not all(isinstance(w, int) and w >= 1 for w in widths):
        raise ValueError(f"widths must be at least two positive ints, got {widths}")
    if not isinstance(n_members, int) or n_members < 1:
        raise ValueError(f"n_members must be a positive int, got {n_members!r}")
    g = make_generator(seed)
    weights, biases = [], []
    for a, b in zip(widths[:-1], widths[1:]):
        weights.append(
            torch.randn(n_members, b, a, generator=g, dtype=torch.float64) * np.sqrt(2.0 / a)
        )
        biases.append(
            torch.randn(n_members, b, generator=g, dtype=torch.float64) * bias_scale
            if bias
            else None
        )
    return Chain(weights, biases, [activation] * (len(widths) - 2))
