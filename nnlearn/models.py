"""A small MLP with a multiplicative node mask on every hidden layer and activation capture.

Layer ``l`` computes ``z_l = h_{l-1} @ W_l.T + b_l`` and, for hidden layers,
``h_l = act_l(z_l) * mask_l``. Masks are 0/1 (node removed / kept) or fractional, may carry a
batch shape that broadcasts against the activations (e.g. (M, 1, width) to evaluate M masks
on the same inputs in one pass), and gradients flow through them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nnlearn.seeding import make_generator

ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "gelu": F.gelu,
    "identity": lambda z: z,
}
INITS = ("default", "he", "xavier")


def activation_fn(name: str):
    """The activation function called ``name`` (one of ``ACTIVATIONS``)."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a str, got {type(name).__name__}")
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class Activations(NamedTuple):
    """Everything a forward pass computed.

    pre : list of Tensor, one per layer (hidden layers, then the output layer), shape (..., width)
    post : list of Tensor, one per hidden layer, after activation and mask, shape (..., width)
    output : Tensor, the network's output (after ``output_activation``), shape (..., out)
    """

    pre: list
    post: list
    output: torch.Tensor


class MLP(nn.Module):
    """Multi-layer perceptron with per-layer widths and activations.

    Parameters
    ----------
    widths : sequence of int
        ``[n_in, hidden_1, ..., hidden_L, n_out]``, at least two entries.
    activation : str or sequence of str
        One name for every hidden layer, or one per hidden layer.
    output_activation : str, optional
        Applied to the output layer (default: none, the output is the logits).
    bias : bool
        Whether the linear layers have biases.
    init : {"default", "he", "xavier"}
        PyTorch's default, He (normal, std sqrt(2/fan_in), biases too) or Xavier (normal
        weights, zero biases).
    seed : int, optional
        Initialise from a private generator with this seed, untouched by global state.
    """

    def __init__(
        self,
        widths: Sequence[int],
        activation="relu",
        *,
        output_activation: str | None = None,
        bias: bool = True,
        init: str = "default",
        seed: int | None = None,
    ):
        super().__init__()
        widths = list(widths)
        if len(widths) < 2 or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
            raise ValueError(f"widths must be at least two positive ints, got {widths}")
        n_hidden = len(widths) - 2
        names = [activation] * n_hidden if isinstance(activation, str) else list(activation)
        if len(names) != n_hidden:
            raise ValueError(f"activation: expected 1 or {n_hidden} names, got {len(names)}")
        self.acts = [activation_fn(a) for a in names]
        self.activation_names = names
        self.output_activation = output_activation
        self.out_act = activation_fn(output_activation) if output_activation else None
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.widths = widths
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(widths[:-1], widths[1:]))
        self.reset_parameters(init=init, seed=seed)

    @property
    def hidden_widths(self) -> list[int]:
        return self.widths[1:-1]

    @torch.no_grad()
    def reset_parameters(self, *, init: str = "default", seed: int | None = None) -> None:
        """(Re)initialise every layer; with ``seed`` the result ignores global RNG state."""
        g = make_generator(seed) if seed is not None else None
        for layer in self.layers:
            fan_in = layer.in_features
            if init == "he":
                std = math.sqrt(2.0 / fan_in)
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * std)
                if layer.bias is not None:
                    layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * std)
            elif init == "xavier":
                std = math.sqrt(2.0 / (fan_in + layer.out_features))
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * std)
                if layer.bias is not None:
                    layer.bias.zero_()
            else:  # PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both
                bound = 1.0 / math.sqrt(fan_in)
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=g) * 2 * bound - bound)
                if layer.bias is not None:
                    layer.bias.copy_(torch.rand(layer.bias.shape, generator=g) * 2 * bound - bound)

    def _masks(self, masks) -> list:
        n_hidden = len(self.hidden_widths)
        if masks is None:
            return [None] * n_hidden
        if isinstance(masks, torch.Tensor):
            masks = [masks]
        if isinstance(masks, Mapping):
            bad = [k for k in masks if not (isinstance(k, int) and 0 <= k < n_hidden)]
            if bad:
                raise ValueError(f"masks: hidden layer indices must be in 0..{n_hidden - 1}, got {bad}")
            masks = [masks.get(i) for i in range(n_hidden)]
        masks = list(masks)
        if len(masks) != n_hidden:
            raise ValueError(f"masks: expected {n_hidden} masks (one per hidden layer), got {len(masks)}")
        for i, (m, w) in enumerate(zip(masks, self.hidden_widths)):
            if m is None:
                continue
            if not isinstance(m, torch.Tensor):
                raise TypeError(f"masks[{i}] must be a torch.Tensor or None, got {type(m).__name__}")
            if m.ndim == 0 or m.shape[-1] != w:
                raise ValueError(f"masks[{i}] must have last dimension {w} (the layer's width), got shape {tuple(m.shape)}")
        return masks

    def forward_with_activations(self, x: torch.Tensor, masks=None) -> Activations:
        """Forward pass that keeps every pre- and post-activation.

        Parameters
        ----------
        x : Tensor, shape (..., n_in)
        masks : None, Tensor, sequence or mapping
            One mask per hidden layer (None = all on); a single Tensor for a one-hidden-layer
            net; or ``{layer_index: mask}``. Each mask has shape (..., width) broadcastable
            against that layer's activations.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.shape[-1] != self.widths[0]:
            raise ValueError(f"x must have last dimension {self.widths[0]}, got shape {tuple(x.shape)}")
        masks = self._masks(masks)
        pre, post, h = [], [], x
        for i, layer in enumerate(self.layers[:-1]):
            z = layer(h)
            h = self.acts[i](z)
            if masks[i] is not None:
                h = h * masks[i]
            pre.append(z)
            post.append(h)
        z = self.layers[-1](h)
        pre.append(z)
        out = self.out_act(z) if self.out_act else z
        return Activations(pre, post, out)

    def forward(self, x: torch.Tensor, masks=None) -> torch.Tensor:
        """Output of shape (..., n_out); see :meth:`forward_with_activations` for ``masks``."""
        return self.forward_with_activations(x, masks).output

    def forward_stacked(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, masks=None) -> torch.Tensor:
        """Forward pass of K stacked copies of this architecture with plain batched matmuls.

        Parameters
        ----------
        params : mapping name -> Tensor of shape (K, *shape), as made by
            ``torch.func.stack_module_state``
        x : Tensor, shape (N, n_in) shared by all members, or (K, N, n_in)
        masks : as in :meth:`forward_with_activations`; each broadcasts against (K, N, width)

        Returns
        -------
        Tensor, shape (K, N, n_out)
        """
        masks = self._masks(masks)
        h = x
        for i in range(len(self.layers)):
            z = torch.matmul(h, params[f"layers.{i}.weight"].transpose(-1, -2))
            bias = params.get(f"layers.{i}.bias")
            if bias is not None:
                z = z + bias.unsqueeze(-2)
            if i == len(self.layers) - 1:
                return self.out_act(z) if self.out_act else z
            h = self.acts[i](z)
            if masks[i] is not None:
                h = h * masks[i]

    def extra_repr(self) -> str:
        return f"widths={self.widths}, activation={self.activation_names}, output_activation={self.output_activation}"
