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
        if len(widths) < 2 or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths
        ):
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
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=bias) for a, b in zip(widths[:-1], widths[1:])
        )
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
                raise ValueError(
                    f"masks: hidden layer indices must be in 0..{n_hidden - 1}, got {bad}"
                )
            masks = [masks.get(i) for i in range(n_hidden)]
        masks = list(masks)
        if len(masks) != n_hidden:
            raise ValueError(
                f"masks: expected {n_hidden} masks (one per hidden layer), got {len(masks)}"
            )
        for i, (m, w) in enumerate(zip(masks, self.hidden_widths)):
            if m is None:
                continue
            if not isinstance(m, torch.Tensor):
                raise TypeError(
                    f"masks[{i}] must be a torch.Tensor or None, got {type(m).__name__}"
                )
            if m.ndim == 0 or m.shape[-1] != w:
                raise ValueError(
                    f"masks[{i}] must have last dimension {w} (the layer's width), got shape "
                    f"{tuple(m.shape)}"
                )
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
            raise ValueError(
                f"x must have last dimension {self.widths[0]}, got shape {tuple(x.shape)}"
            )
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

    def forward_stacked(
        self, params: Mapping[str, torch.Tensor], x: torch.Tensor, masks=None
    ) -> torch.Tensor:
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
        return (
            f"widths={self.widths}, activation={self.activation_names}, "
            f"output_activation={self.output_activation}"
        )


# ------------------------------------------------------------------ stacked architectures
# The engine (:mod:`nnlearn.engine`) trains K networks of one architecture as one computation.
# An architecture is a *stack*: it owns no parameters; ``stack.init(seeds)`` makes a dict of
# tensors with a leading member axis K and ``stack(params, x, per_member=..., masks=...)`` runs
# all K members at once. Any object with these two methods can be trained by the engine.

STACK_INITS = ("torch", "glorot", "he", "xavier")


def _seed_list(seeds) -> list[int]:
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed (K >= 1)")
    return seeds


class MLPStack:
    """K MLPs of one architecture, evaluated with batched matmuls (no Python loop over members).

    Parameter names and layouts are those of :class:`MLP` with a leading member axis:
    ``layers.{i}.weight`` (K, out, in) and ``layers.{i}.bias`` (K, out), so member k of a stack
    is ``MLP(...).load_state_dict({n: t[k] for n, t in params.items()})``.

    Parameters
    ----------
    widths, activation, output_activation, bias : as in :class:`MLP`
    """

    def __init__(
        self,
        widths: Sequence[int],
        activation="relu",
        *,
        output_activation: str | None = None,
        bias: bool = True,
    ):
        with torch.random.fork_rng(devices=[]):  # building the template leaves the global RNG alone
            self.net = MLP(
                widths, activation, output_activation=output_activation, bias=bias, seed=0
            ).to("meta")
        self.widths, self.bias = self.net.widths, bias

    @classmethod
    def like(cls, model: MLP) -> MLPStack:
        """The stack of ``model``'s architecture."""
        if not isinstance(model, MLP):
            raise TypeError(f"model must be an nnlearn.models.MLP, got {type(model).__name__}")
        return cls(
            model.widths,
            model.activation_names,
            output_activation=model.output_activation,
            bias=model.layers[0].bias is not None,
        )

    @property
    def hidden_widths(self) -> list[int]:
        return self.widths[1:-1]

    def init(self, seeds, init: str = "torch") -> dict[str, torch.Tensor]:
        """Initial parameters, member k drawn from its own generator seeded with ``seeds[k]``.

        ``"torch"``, ``"he"``, ``"xavier"``: member k equals ``MLP(widths, init=...,
        seed=seeds[k])``
        (``"torch"`` is the MLP's ``"default"``). ``"glorot"``: Keras' ``Dense`` default, weights
        ``U(-l, l)`` with ``l = sqrt(6 / (fan_in + fan_out))`` drawn layer by layer, zero biases.

        Returns
        -------
        dict name -> Tensor (K, *shape)
        """
        check = init if isinstance(init, str) else repr(init)
        if init not in STACK_INITS:
            raise ValueError(f"init must be one of {STACK_INITS}, got {check}")
        members = []
        for s in _seed_list(seeds):
            if init == "glorot":
                g, state = make_generator(s), {}
                for i, (a, b) in enumerate(zip(self.widths[:-1], self.widths[1:])):
                    limit = math.sqrt(6.0 / (a + b))
                    state[f"layers.{i}.weight"] = (torch.rand((b, a), generator=g) * 2 - 1) * limit
                    if self.bias:
                        state[f"layers.{i}.bias"] = torch.zeros(b)
            else:
                net = MLP(
                    self.widths,
                    self.net.activation_names,
                    bias=self.bias,
                    init="default" if init == "torch" else init,
                    seed=s,
                )
                state = {n: p.detach() for n, p in net.named_parameters()}
            members.append(state)
        return {n: torch.stack([m[n] for m in members]) for n in members[0]}

    def _masks(self, masks, K: int) -> list:
        """Masks: None, or one entry per hidden layer: None, (width,) or (K, width)."""
        n_hidden = len(self.hidden_widths)
        if masks is None:
            return [None] * n_hidden
        if isinstance(masks, torch.Tensor):
            masks = [masks]
        masks = list(masks)
        if len(masks) != n_hidden:
            raise ValueError(
                f"masks: expected {n_hidden} entries (one per hidden layer), got {len(masks)}"
            )
        out = []
        for i, (m, w) in enumerate(zip(masks, self.hidden_widths)):
            if m is not None:
                if not isinstance(m, torch.Tensor):
                    raise TypeError(
                        f"masks[{i}] must be a torch.Tensor or None, got {type(m).__name__}"
                    )
                if m.shape not in ((w,), (K, w)):
                    raise ValueError(
                        f"masks[{i}] must have shape ({w},) or ({K}, {w}), got {tuple(m.shape)}"
                    )
                m = m.unsqueeze(-2) if m.ndim == 2 else m
            out.append(m)
        return out

    def forward_with_hidden(self, params, x, *, per_member: bool = False, masks=None):
        """Hidden post-activations (list of (K, N, width)) and outputs (K, N, n_out).

        ``x`` is (N, n_in) shared by all members or, with ``per_member``, (K, N, n_in).
        """
        K = params["layers.0.weight"].shape[0]
        if (
            x.shape[-1] != self.widths[0]
            or x.ndim != (3 if per_member else 2)
            or (per_member and x.shape[0] != K)
        ):
            want = f"({K}, N, {self.widths[0]})" if per_member else f"(N, {self.widths[0]})"
            raise ValueError(f"x must have shape {want}, got {tuple(x.shape)}")
        masks, h, hidden = self._masks(masks, K), x, []
        L = len(self.widths) - 1
        for i in range(L):
            z = torch.matmul(h, params[f"layers.{i}.weight"].transpose(-1, -2))
            if self.bias:
                z = z + params[f"layers.{i}.bias"].unsqueeze(-2)
            if i == L - 1:
                return hidden, (self.net.out_act(z) if self.net.out_act else z)
            h = self.net.acts[i](z)
            if masks[i] is not None:
                h = h * masks[i]
            hidden.append(h)

    def __call__(self, params, x, *, per_member: bool = False, masks=None) -> torch.Tensor:
        """Outputs (K, N, n_out); see :meth:`forward_with_hidden`."""
        return self.forward_with_hidden(params, x, per_member=per_member, masks=masks)[1]


class CNNStack:
    """K small CNNs, Conv(1 -> F, k x k) - ReLU - 2x2 max-pool - Linear(F * s * s -> C), as one.

    Every member's filters form one convolution with K*F channels (``groups=K`` when each
    member has its own inputs); the read-outs are one batched matmul. Parameters:
    ``conv_weight`` (K, F, 1, k, k), ``conv_bias`` (K, F), ``fc_weight`` (K, C, F*s*s),
    ``fc_bias`` (K, C), with ``s = (side - k + 1) // 2``.
    """

    def __init__(self, n_filters: int = 8, n_classes: int = 10, *, side: int = 28, kernel: int = 5):
        for name, v, low in (
            ("n_filters", n_filters, 1),
            ("n_classes", n_classes, 2),
            ("side", side, 2),
            ("kernel", kernel, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
        if kernel > side - 1:
            raise ValueError(
                f"kernel must be smaller than side - 1, got kernel={kernel}, side={side}"
            )
        self.F, self.C, self.side, self.kernel = n_filters, n_classes, side, kernel
        self.pooled = (side - kernel + 1) // 2

    def init(self, seeds, init: str = "torch") -> dict[str, torch.Tensor]:
        """PyTorch's default weight bounds (``U(+-1/sqrt(fan_in))``), zero biases, one generator per
        seed.
        """
        if init != "torch":
            raise ValueError(f"init must be 'torch' for a CNNStack, got {init!r}")
        seeds = _seed_list(seeds)
        n_fc = self.F * self.pooled**2
        convs, fcs = [], []
        for s in seeds:
            g = make_generator(s)
            convs.append(
                (torch.rand(self.F, 1, self.kernel, self.kernel, generator=g) * 2 - 1)
                * (1 / self.kernel)
            )
            fcs.append((torch.rand(self.C, n_fc, generator=g) * 2 - 1) * (1 / math.sqrt(n_fc)))
        K = len(seeds)
        return {
            "conv_weight": torch.stack(convs),
            "conv_bias": torch.zeros(K, self.F),
            "fc_weight": torch.stack(fcs),
            "fc_bias": torch.zeros(K, self.C),
        }

    def __call__(self, params, x, *, per_member: bool = False, masks=None) -> torch.Tensor:
        """x (N, side*side) shared, or (K, N, side*side) with ``per_member`` -> logits (K, N, C)."""
        if masks is not None:
            raise ValueError("masks: a CNNStack takes no node masks")
        K, F_, s = params["conv_weight"].shape[0], self.F, self.side
        N = x.shape[-2]
        if x.shape[-1] != s * s or x.ndim != (3 if per_member else 2):
            raise ValueError(
                f"x must have shape {'(K, N, ' if per_member else '(N, '}{s * s}), got "
                f"{tuple(x.shape)}"
            )
        images = x.transpose(0, 1).reshape(N, K, s, s) if per_member else x.reshape(N, 1, s, s)
        weight = params["conv_weight"].reshape(K * F_, 1, self.kernel, self.kernel)
        h = torch.relu(
            F.conv2d(images, weight, params["conv_bias"].reshape(-1), groups=K if per_member else 1)
        )
        h = F.max_pool2d(h, 2).reshape(N, K, -1).transpose(0, 1)  # (K, N, F * pooled**2)
        return torch.matmul(h, params["fc_weight"].transpose(-1, -2)) + params["fc_bias"].unsqueeze(
            1
        )
