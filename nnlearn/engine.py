"""One batched-training engine: K small networks of one architecture trained as one computation.

The K members' parameters are stacked along a leading axis (a dict name -> (K, *shape)); a
*stack* (:class:`nnlearn.models.MLPStack`, :class:`nnlearn.models.CNNStack`, an
:class:`nnlearn.ensemble.Ensemble`'s forward, or any callable
``model(params, x, *, per_member, masks) -> (K, N, out)``) runs all members at once. The loss
minimised is the *sum* of the members' mean losses and every optimiser here acts elementwise, so
each member gets exactly its own gradient and update: training together equals training each
member alone (tested against :func:`nnlearn.train.fit`).

- :func:`train`: full-batch or mini-batch training; per-member seeds (data order), data,
  learning rates and node masks; SGD (momentum) or Adam with PyTorch's or Keras' conventions.
- :func:`train_online`: one example per step (online SGD) along given per-member streams.
- Callbacks see a :class:`State` at ``on_start``, ``before_step`` (gradients computed, not yet
  applied), ``on_step``, ``on_epoch`` and ``on_end``: :class:`Snapshots`, :class:`GradMax`
  (never-updated tracking) and :class:`Tallies` (per-group absolute updates) are callbacks, so
  no chapter needs its own copy of the loop.

Everything runs on :func:`nnlearn.config.device` (``NNLEARN_DEVICE``, CPU by default); data
orders are drawn on the CPU from per-member generators, so results do not depend on the device
beyond float rounding. Returned tensors and arrays are on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from nnlearn import config
from nnlearn.checks import check_choice, positive_int
from nnlearn.progress import progress_bar
from nnlearn.seeding import make_generator
from nnlearn.train import LOSSES, as_tensor, epoch_batches

OPTIMIZERS = ("sgd", "adam")
CONVENTIONS = ("torch", "keras")
RECORDS = ("epoch", "step", "none")
DEFAULT_EPS = {"torch": 1e-8, "keras": 1e-7}


# ----------------------------------------------------------------------------- checks
def _check_params(params) -> tuple[dict, int]:
    if not isinstance(params, dict) or not params:
        raise TypeError(
            f"params must be a non-empty dict name -> Tensor (K, ...), got {type(params).__name__}"
        )
    K = None
    for n, t in params.items():
        if not isinstance(t, torch.Tensor) or t.ndim < 1 or not t.is_floating_point():
            raise TypeError(
                f"params[{n!r}] must be a float Tensor with a leading member axis, got "
                f"{type(t).__name__}"
            )
        if K is None:
            K = t.shape[0]
        elif t.shape[0] != K:
            raise ValueError(f"params[{n!r}] has {t.shape[0]} members, the first parameter has {K}")
    return params, K


def member_lr(lr, K: int):
    """``lr`` as a float, or as a (K,) tensor of per-member rates; ValueError naming ``lr``
    otherwise.
    """
    if isinstance(lr, bool):
        raise TypeError("lr must be a number or a sequence of K numbers, got bool")
    if isinstance(lr, (int, float, np.integer, np.floating)):
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        return float(lr)
    try:
        arr = torch.as_tensor(
            np.asarray(lr.cpu() if isinstance(lr, torch.Tensor) else lr, dtype=np.float64)
        )
    except (TypeError, ValueError):
        raise TypeError(
            f"lr must be a number or a sequence of K numbers, got {type(lr).__name__}"
        ) from None
    if arr.ndim != 1 or len(arr) != K:
        raise ValueError(f"lr must be one number or K={K} numbers, got shape {tuple(arr.shape)}")
    if not (torch.isfinite(arr).all() and (arr > 0).all()):
        raise ValueError(f"lr must be finite and > 0 for every member, got {arr.tolist()}")
    return arr


def _check_loss(loss) -> None:
    if not callable(loss):
        check_choice("loss", loss, LOSSES)


def member_losses(outputs: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Each member's mean loss: outputs (K, N, C), targets (K, N) (or (K, N, C) floats) -> (K,).

    Computes what :func:`nnlearn.train.compute_loss` computes for one member, for all at once.
    ``loss`` may also be a callable ``loss(outputs, y) -> (K,)``.
    """
    if callable(loss):
        return loss(outputs, y)
    check_choice("loss", loss, LOSSES)
    if loss == "ce":
        return F.cross_entropy(outputs.transpose(1, 2), y.long(), reduction="none").mean(1)
    if loss == "bce":
        logits = outputs.squeeze(-1) if outputs.ndim == y.ndim + 1 else outputs
        per = F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), reduction="none")
        return per.reshape(per.shape[0], -1).mean(1)
    target = y
    if not y.is_floating_point():
        target = F.one_hot(y.long(), outputs.shape[-1]).to(outputs.dtype)
    per = F.mse_loss(outputs, target.reshape(outputs.shape), reduction="none")
    return per.reshape(per.shape[0], -1).mean(1)


def member_accuracy(outputs: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Share of right predictions per member: (K,). "bce": logit > 0 against target > 0.5 (every
    output counts); otherwise (also for a callable loss) the argmax against the class (or the
    float target's argmax)."""
    if loss == "bce":
        logits = outputs.squeeze(-1) if outputs.ndim == y.ndim + 1 else outputs
        right = ((logits > 0) == (y > 0.5)).float()
    else:
        target = y.argmax(-1) if y.is_floating_point() else y.long()
        right = (outputs.argmax(-1) == target).float()
    return right.reshape(right.shape[0], -1).mean(1)


# ----------------------------------------------------------------------------- optimisers
class Optimizer:
    """SGD (with momentum) or Adam over stacked parameters, with per-member learning rates.

    Parameters
    ----------
    name : {"sgd", "adam"}
    lr : float, or (K,) tensor of per-member rates
    momentum : SGD momentum, PyTorch's convention (``buf = momentum * buf + grad``, no dampening)
    betas, eps : Adam's; ``eps=None`` takes the convention's default (1e-8 torch, 1e-7 keras)
    convention : {"torch", "keras"}, where Adam puts eps and its bias correction:

        - ``"torch"`` (``torch.optim.Adam``): ``p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) +
        eps)``
        - ``"keras"`` (``keras.optimizers.Adam``): ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``,
          ``p -= lr_t * m / (sqrt(v) + eps)``, eps added to the root of the *uncorrected* v.
    weight_decay : L2 penalty added to the gradient (``grad + weight_decay * p``), as PyTorch does
    """

    def __init__(
        self,
        name: str = "adam",
        *,
        lr=1e-2,
        momentum: float = 0.0,
        betas=(0.9, 0.999),
        eps=None,
        convention: str = "torch",
        weight_decay: float = 0.0,
        K: int = 1,
    ):
        check_choice("optimizer", name, OPTIMIZERS)
        check_choice("adam", convention, CONVENTIONS)
        self.name, self.convention, self.lr = name, convention, member_lr(lr, K)
        if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        eps = DEFAULT_EPS[convention] if eps is None else eps
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"eps must be a number > 0, got {eps!r}")
        if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
        self.momentum, self.betas, self.eps, self.weight_decay = (
            float(momentum),
            tuple(betas),
            float(eps),
            float(weight_decay),
        )
        self.t, self.state = 0, {}

    def _rate(self, p: torch.Tensor):
        """The learning rate shaped to broadcast against ``p`` (K, ...)."""
        if isinstance(self.lr, float):
            return self.lr
        if self.lr.shape == p.shape:  # already spread over the entries (the engine's flat layout)
            return self.lr.to(p.device, p.dtype)
        return self.lr.to(p.device, p.dtype).reshape(-1, *[1] * (p.ndim - 1))

    @torch.no_grad()
    def step(self, params: dict, grads: dict, active: torch.Tensor | None = None) -> dict:
        """Apply one update in place; return the updates subtracted, name -> (K, ...).

        ``active`` : optional (K,) bool (or spread like ``lr``), members that take this step (the
        others' updates are 0).
        """
        self.t += 1
        updates = {}
        for n, p in params.items():
            g = grads[n]
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            lr = self._rate(p)
            if self.name == "sgd":
                if self.momentum:
                    buf = self.state.get(n)
                    buf = self.state[n] = (
                        g.clone() if buf is None else buf.mul_(self.momentum).add_(g)
                    )
                    g = buf
                upd = g * lr
                if active is None and isinstance(lr, float):  # exactly torch.optim.SGD's arithmetic
                    p.add_(g, alpha=-lr)
                    updates[n] = upd
                    continue
            else:
                b1, b2 = self.betas
                if n not in self.state:
                    self.state[n] = (torch.zeros_like(p), torch.zeros_like(p))
                m, v = self.state[n]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                if self.convention == "torch":
                    denom = (v.sqrt() / math.sqrt(1 - b2**self.t)).add_(self.eps)
                    upd = m * (lr / (1 - b1**self.t)) / denom
                else:
                    upd = (
                        m
                        * (lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t))
                        / (v.sqrt() + self.eps)
                    )
            if active is not None:
                upd = upd * active.to(upd.dtype).reshape(-1, *[1] * (upd.ndim - 1))
            p.sub_(upd)
            updates[n] = upd
        return updates


# ----------------------------------------------------------------------------- callbacks
@dataclass
class State:
    """What callbacks see.

    params : dict name -> (K, ...) live parameters (do not modify)
    grads, updates : the last step's gradients and the updates subtracted (None before any step)
    loss : (K,) the last step's batch losses, before its update
    x, targets : the last step's inputs ((B, ...) shared or (K, B, ...)) and targets (K, B, ...)
    outputs : (K, B, out) the last step's outputs; batch : its example indices, (K, B) or (1, B), or
    None
    epoch, step : epochs and steps completed so far (``step`` counts every optimiser step)
    """

    params: dict
    K: int
    epoch: int = 0
    step: int = 0
    grads: dict | None = None
    updates: dict | None = None
    loss: torch.Tensor | None = None
    outputs: torch.Tensor | None = None
    batch: torch.Tensor | None = None
    x: torch.Tensor | None = None
    targets: torch.Tensor | None = None


class Callback:
    """Base class: override any of the hooks (each gets the :class:`State`)."""

    def on_start(self, state: State) -> None: ...
    def before_step(self, state: State) -> None: ...
    def on_step(self, state: State) -> None: ...
    def on_epoch(self, state: State) -> None: ...
    def on_end(self, state: State) -> None: ...


class Snapshots(Callback):
    """Copies of the parameters at the start and every ``every`` epochs (or steps), and at the end.

    Attributes
    ----------
    at : list of int, the epoch (or step) count of each snapshot (0 = initialisation)
    params : list of dicts name -> (K_sel, ...) on the CPU (members ``members`` only)
    """

    def __init__(self, every: int, *, unit: str = "epoch", members=None, at_end: bool = True):
        self.every = positive_int("every", every)
        check_choice("unit", unit, ("epoch", "step"))
        self.unit, self.members, self.at_end = (
            unit,
            slice(None) if members is None else members,
            at_end,
        )
        self.at, self.params = [], []

    def _take(self, state: State, count: int) -> None:
        self.at.append(count)
        self.params.append(
            {n: t.detach()[self.members].cpu().clone() for n, t in state.params.items()}
        )

    def on_start(self, state):
        self._take(state, 0)

    def on_step(self, state):
        if self.unit == "step" and state.step % self.every == 0:
            self._take(state, state.step)

    def on_epoch(self, state):
        if self.unit == "epoch" and state.epoch % self.every == 0:
            self._take(state, state.epoch)

    def on_end(self, state):
        count = state.step if self.unit == "step" else state.epoch
        if self.at_end and self.at[-1] != count:
            self._take(state, count)

    def flat(self) -> np.ndarray:
        """Snapshots as flat rows: (S, K_sel, P), in parameter order."""
        return np.stack(
            [
                torch.cat([t.reshape(t.shape[0], -1) for t in s.values()], 1).numpy()
                for s in self.params
            ]
        )


class GradMax(Callback):
    """Largest absolute gradient every parameter entry received (0: never a nonzero gradient).

    ``value``: dict name -> (K, ...) on the CPU, after training. Under Adam or plain SGD an entry
    whose gradient was always exactly 0 is never updated.
    """

    def __init__(self):
        self.value = None

    def before_step(self, state):
        if self.value is None:
            self.value = {n: torch.zeros_like(g) for n, g in state.grads.items()}
        for n, g in state.grads.items():
            torch.maximum(self.value[n], g.abs(), out=self.value[n])

    def on_end(self, state):
        if self.value is not None:
            self.value = {n: v.cpu() for n, v in self.value.items()}


class Tallies(Callback):
    """Per-group summed absolute updates (for :func:`train_online`).

    Parameters
    ----------
    groups : integer array (K, T) or (T,): the tally group of step t (-1: not tallied)
    n_groups : G >= 1

    ``value``: dict name -> (G, K, ...), the summed ``|update|`` of the steps of each group.
    """

    def __init__(self, groups, n_groups: int):
        self.groups = torch.as_tensor(np.asarray(groups)).long()
        self.n_groups = positive_int("n_groups", n_groups)
        if self.groups.ndim not in (1, 2) or self.groups.numel() == 0:
            raise ValueError(
                f"groups must have shape (K, T) or (T,), got {tuple(self.groups.shape)}"
            )
        if self.groups.max() >= n_groups or self.groups.min() < -1:
            raise ValueError(f"groups entries must be -1 or in 0..{n_groups - 1}")
        self.value = None

    def on_start(self, state):
        if self.groups.ndim == 1:
            self.groups = self.groups.expand(state.K, -1)
        if self.groups.shape[0] != state.K:
            raise ValueError(f"groups must have K={state.K} rows, got {self.groups.shape[0]}")
        self.value = {
            n: torch.zeros((self.n_groups, *t.shape), dtype=t.dtype, device=t.device)
            for n, t in state.params.items()
        }
        self.groups = self.groups.to(next(iter(state.params.values())).device)
        self._members = torch.arange(state.K, device=self.groups.device)

    def on_step(self, state):
        g = self.groups[:, state.step - 1]
        hit = g >= 0
        if not hit.any():
            return
        for n, upd in state.updates.items():
            self.value[n][g[hit], self._members[hit]] += upd[hit].abs()

    def on_end(self, state):
        self.value = {n: v.cpu() for n, v in self.value.items()}


# ----------------------------------------------------------------------------- training
@dataclass
class Run:
    """What :func:`train` and :func:`train_online` return.

    params : dict name -> (K, ...), the trained parameters (CPU)
    loss, acc : ndarray (R, K); with ``record="epoch"`` R = epochs, measured on all the training
        data after each epoch; with ``record="step"`` R = steps, the batch's before its update
    snapshots : ndarray (S, K, P) flat parameters at ``snapshot_at`` (0 = initialisation), or None
    """

    params: dict
    loss: np.ndarray
    acc: np.ndarray
    snapshots: np.ndarray | None = None
    snapshot_at: list = field(default_factory=list)


def _callbacks(callbacks, snapshot_every, unit):
    cbs = list(callbacks or [])
    for c in cbs:
        if not isinstance(c, Callback):
            raise TypeError(
                f"callbacks must be nnlearn.engine.Callback instances, got {type(c).__name__}"
            )
    snap = (
        Snapshots(snapshot_every, unit=unit, at_end=False) if snapshot_every is not None else None
    )
    return cbs + ([snap] if snap else []), snap


def _emit(cbs, hook, state):
    for c in cbs:
        getattr(c, hook)(state)


class _Flat:
    """All members' parameters in one flat leaf tensor ``theta`` of K * P numbers, parameter by
    parameter, each a contiguous (K, *shape) block; :meth:`views` splits any such flat tensor
    into named views. One optimiser update then touches one tensor, which matters for tiny
    networks, where the per-tensor overhead dominates; the forward pass sees ordinary
    contiguous tensors (the same arithmetic as separate parameters)."""

    def __init__(self, params: dict, dev):
        params, K = _check_params(params)
        dtypes = {t.dtype for t in params.values()}
        if len(dtypes) != 1:
            raise TypeError(f"params must share one dtype, got {sorted(map(str, dtypes))}")
        self.names = list(params)
        self.shapes = [t.shape[1:] for t in params.values()]
        self.sizes = [K * math.prod(shape) for shape in self.shapes]
        self.K, self.dtype = K, dtypes.pop()
        self.theta = torch.cat(
            [t.detach().to(dev).reshape(-1) for t in params.values()]
        ).requires_grad_(True)

    def views(self, flat: torch.Tensor) -> dict:
        parts = flat.split(self.sizes)
        return {
            n: part.view(self.K, *shape) for n, part, shape in zip(self.names, parts, self.shapes)
        }

    def spread(self, per_member: torch.Tensor) -> torch.Tensor:
        """A (K,) per-member value repeated over every entry of that member: (K * P,)."""
        v = per_member.to(self.theta.device)
        return torch.cat([v.repeat_interleave(size // self.K) for size in self.sizes])


def _prepare(params, X, y, dev):
    flat = _Flat(params, dev)
    X, y = as_tensor(X), as_tensor(y)
    X = X.to(dev, flat.dtype)
    y = y.to(dev, flat.dtype) if y.is_floating_point() else y.to(dev)
    return flat, flat.K, X, y


def _step(model, flat, opt, cbs, state, xb, yb, per_member, masks, loss, active=None):
    state.params = flat.views(flat.theta)
    out = model(state.params, xb, per_member=per_member, masks=masks)
    per = member_losses(out, yb, loss)
    (grad,) = torch.autograd.grad(per.sum(), flat.theta)
    state.grads, state.loss, state.outputs = flat.views(grad), per.detach(), out.detach()
    state.x, state.targets = xb, yb
    _emit(cbs, "before_step", state)
    active = None if active is None else flat.spread(active)
    state.updates = flat.views(opt.step({"theta": flat.theta}, {"theta": grad}, active)["theta"])
    state.step += 1
    _emit(cbs, "on_step", state)


def train(
    model,
    params: dict,
    X,
    y,
    *,
    loss: str = "ce",
    optimizer: str = "adam",
    lr=1e-2,
    epochs: int = 10,
    batch_size: int | None = None,
    seeds=None,
    shuffle: bool = True,
    momentum: float = 0.0,
    betas=(0.9, 0.999),
    eps: float | None = None,
    adam: str = "torch",
    weight_decay: float = 0.0,
    masks=None,
    record: str = "epoch",
    snapshot_every: int | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool | None = None,
) -> Run:
    """Train K stacked networks at once (full-batch or mini-batch); ``params`` is not modified.

    Member k sees exactly what :func:`nnlearn.train.fit` with ``seed=seeds[k]`` would: the same
    data, the same mini-batch order (a fresh shuffle every epoch from its own generator), the
    same optimiser.

    Parameters
    ----------
    model : a stack, ``model(params, x, *, per_member, masks) -> (K, B, out)``
        (:class:`nnlearn.models.MLPStack`, :class:`nnlearn.models.CNNStack`, ...)
    params : dict name -> Tensor (K, ...), e.g. ``model.init(seeds)``; its dtype is used throughout
    X : (N, ...) shared by all members, or (K, N, n_in) per member (3-d means per member)
    y : (N,) or (K, N) integer classes (or float targets for "bce"/"mse", (N, C) or (K, N, C))
    loss : {"ce", "bce", "mse"}, or a callable ``loss(outputs, y) -> (K,)`` of per-member losses;
        for "bce" the output is a logit (an output activation "sigmoid" gives the double-sigmoid
        variant: BCE on logits sigmoid(z))
    optimizer : {"sgd", "adam"}; ``adam`` : {"torch", "keras"} (see :class:`Optimizer`)
    lr : float or K floats (per-member learning rates)
    batch_size : None (full batch) or B: mini-batches in a per-member order drawn from ``seeds``
    seeds : K ints (default 0..K-1), each member's data-order seed; one int: one order for all
        (then shared data stays shared, which is cheaper)
    masks : per hidden layer None, (width,) or (K, width) node masks (see :class:`MLPStack`)
    record : "epoch" (loss and accuracy on all the training data after every epoch), "step"
        (each step's batch, before its update, at no extra cost) or "none"
    snapshot_every : keep flat parameters at the start and every this many epochs
    callbacks : :class:`Callback` instances (e.g. :class:`GradMax`, :class:`Snapshots`)

    Returns
    -------
    Run
    """
    dev = config.device()
    p, K, X, y = _prepare(params, X, y, dev)
    per_member = X.ndim == 3
    if per_member and (X.shape[0] != K or y.shape[0] != K):
        raise ValueError(
            f"per-member data needs X of shape (K={K}, N, n_in) and y with leading dimension K, "
            f"got {tuple(X.shape)} and {tuple(y.shape)}"
        )
    n = X.shape[1] if per_member else X.shape[0]
    if n == 0 or y.shape[int(per_member)] != n:
        raise ValueError(
            f"X and y must be non-empty with equal numbers of examples, got {n} and "
            f"{y.shape[int(per_member)]}"
        )
    epochs = positive_int("epochs", epochs)
    batch_size = None if batch_size is None else positive_int("batch_size", batch_size)
    _check_loss(loss)
    check_choice("record", record, RECORDS)
    if seeds is None:
        seeds = list(range(K))
    shared_order = isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool)
    gens = [make_generator(int(seeds))] if shared_order else [make_generator(s) for s in seeds]
    if not shared_order and len(gens) != K:
        raise ValueError(f"seeds: expected {K} seeds (one per member) or one int, got {len(gens)}")
    opt = Optimizer(
        optimizer,
        lr=lr,
        momentum=momentum,
        betas=betas,
        eps=eps,
        convention=adam,
        weight_decay=weight_decay,
        K=K,
    )
    if not isinstance(opt.lr, float):
        opt.lr = p.spread(opt.lr)
    cbs, snap = _callbacks(callbacks, snapshot_every, "epoch")
    yk = y if per_member else y.expand(K, *y.shape)
    rows = torch.arange(K, device=dev)[:, None]
    full = batch_size is None or batch_size >= n
    state = State(params=p.views(p.theta), K=K)
    losses, accs = [], []
    _emit(cbs, "on_start", state)
    for _ in progress_bar(range(epochs), desc="epochs", progress=progress):
        if full:
            batches = [None]
        else:
            orders = [epoch_batches(n, batch_size, g, shuffle) for g in gens]
            batches = [torch.stack(parts).to(dev) for parts in zip(*orders)]
        for idx in batches:
            state.batch = idx
            if idx is None:
                xb, yb, pm = X, yk, per_member
            elif shared_order:
                xb, yb, pm = (
                    (X[:, idx[0]], yk[:, idx[0]], True)
                    if per_member
                    else (X[idx[0]], yk[:, idx[0]], False)
                )
            else:
                xb, yb, pm = (X[rows, idx] if per_member else X[idx]), yk[rows, idx], True
            _step(model, p, opt, cbs, state, xb, yb, pm, masks, loss)
            if record == "step":
                losses.append(state.loss)
                accs.append(member_accuracy(state.outputs, yb, loss))
        state.epoch += 1
        if record == "epoch":
            with torch.no_grad():
                out = model(p.views(p.theta), X, per_member=per_member, masks=masks)
                losses.append(member_losses(out, yk, loss))
                accs.append(member_accuracy(out, yk, loss))
        _emit(cbs, "on_epoch", state)
    _emit(cbs, "on_end", state)
    return _result(p, losses, accs, snap)


def _result(flat, losses, accs, snap) -> Run:
    stack = lambda rows: torch.stack(rows).cpu().numpy() if rows else np.zeros((0, 0), np.float32)
    return Run(
        params={n: t.detach().cpu().clone() for n, t in flat.views(flat.theta).items()},
        loss=stack(losses),
        acc=stack(accs),
        snapshots=snap.flat() if snap else None,
        snapshot_at=snap.at if snap else [],
    )


def train_online(
    model,
    params: dict,
    X,
    order,
    targets,
    *,
    lr,
    loss: str = "mse",
    optimizer: str = "sgd",
    momentum: float = 0.0,
    adam: str = "torch",
    masks=None,
    record: str = "step",
    callbacks: Sequence[Callback] = (),
    progress: bool | None = None,
) -> Run:
    """Online training: at step t member k takes one step on example ``X[order[k, t]]``.

    Plain SGD here is exactly :func:`nnlearn.train.per_sample_sgd` run on each member alone
    (tested). Pass a :class:`Tallies` callback for per-group summed absolute updates.

    Parameters
    ----------
    model, params : as in :func:`train`
    X : (N, ...) the pool of inputs, shared by all members
    order : integer array (K, T), indices into X; -1 means no update for that member at that
        step (to pad shorter streams; momentum or Adam state still advances)
    targets : (K, T) class (or float target) of every step, or (N,) labels looked up by ``order``
    lr : float or K floats

    Returns
    -------
    Run, with ``loss`` and ``acc`` (T, K) of each step's example before its update
    """
    dev = config.device()
    p, K, X, _ = _prepare(params, X, torch.zeros(1), dev)
    order = torch.as_tensor(np.asarray(order))
    if order.ndim != 2 or order.shape[0] != K or order.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"order must be an integer array of shape (K={K}, T), got {tuple(order.shape)} "
            f"{order.dtype}"
        )
    if order.numel() == 0 or order.max() >= len(X) or order.min() < -1:
        raise ValueError(f"order must be non-empty with entries -1 or in 0..{len(X) - 1}")
    targets = as_tensor(targets)
    if targets.shape[:2] == order.shape:
        tk = targets
    elif targets.ndim >= 1 and targets.shape[0] == len(X):
        tk = targets[order.clamp(min=0)]
    else:
        raise ValueError(
            f"targets must have shape {tuple(order.shape)} (one per step) or ({len(X)},) (one per "
            f"example), got {tuple(targets.shape)}"
        )
    _check_loss(loss)
    check_choice("record", record, ("step", "none"))
    opt = Optimizer(optimizer, lr=lr, momentum=momentum, convention=adam, K=K)
    if not isinstance(opt.lr, float):
        opt.lr = p.spread(opt.lr)
    cbs, _ = _callbacks(callbacks, None, "step")
    tk = tk.to(dev, p.dtype) if tk.is_floating_point() else tk.to(dev)
    valid = (order >= 0).to(dev)
    order = order.clamp(min=0).to(dev)
    state = State(params=p.views(p.theta), K=K)
    some_missing = not bool(valid.all())
    losses, accs = [], []
    _emit(cbs, "on_start", state)
    for t in progress_bar(range(order.shape[1]), desc="online steps", progress=progress):
        state.batch = order[:, t : t + 1]
        xb, yb = X[state.batch], tk[:, t : t + 1]
        _step(
            model,
            p,
            opt,
            cbs,
            state,
            xb,
            yb,
            True,
            masks,
            loss,
            valid[:, t] if some_missing else None,
        )
        if record == "step":
            losses.append(state.loss)
            accs.append(member_accuracy(state.outputs, yb, loss))
    state.epoch = 1
    _emit(cbs, "on_end", state)
    return _result(p, losses, accs, None)
