"""The learning-xor study: tiny sigmoid networks read as logic gates, their runs embedded and drawn.

Used only by ``book/learning-xor.md`` (merged from the former ``nnlearn.gates``,
``nnlearn.embedding`` and ``nnlearn.widgets_xor``).

Everything here works on *flat parameter rows*: a network ``widths = (n_in, h, n_out)`` with one
sigmoid hidden layer is stored as one row of ``P = h*n_in + h + n_out*h + n_out`` numbers in
the order of :meth:`nnlearn.ensemble.Ensemble.flat_params` (``layers.0.weight`` (h, n_in),
``layers.0.bias`` (h,), ``layers.1.weight`` (n_out, h), ``layers.1.bias`` (n_out,)), and K
networks are a (K, P) tensor. The output layer has no activation: it gives logits, read as
probabilities through a sigmoid and trained with binary cross-entropy.

Sections
--------
training    :func:`init_params` (exactly ``MLP(widths, "sigmoid", seed=s)``'s initialisation) and
            :func:`train_sigmoid_nets`, full-batch SGD/Adam of K networks as one computation
            with hand-written gradients (tested against :func:`nnlearn.ensemble.train_ensemble`).
gates       :func:`gate_name`, :func:`hidden_gates`, :func:`output_gates`: each unit's truth table
            over binary inputs, named when it has two inputs.
removal     :func:`removal_accuracy` (many unit masks at once), :func:`split_pairs`,
            :func:`merge_units` (drop one unit, add its outgoing weight to its twin).
splicing    :func:`splice_xor_nets`, :func:`extract_xor_net` for the 4-6-3 network of three XORs.
embedding   t-SNE, PCA and K-Means of runs as rows of a (K, P) array, and how they agree.
drawing     :func:`draw_run`, :func:`run_cards` (static) and :func:`explorer` (ipywidgets, live
only).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from scipy.linalg import subspace_angles
from scipy.spatial.distance import pdist
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.metrics import adjusted_rand_score, homogeneity_score, silhouette_score

from nnlearn import engine
from nnlearn.models import MLPStack
from nnlearn.plotting import decision_map
from nnlearn.seeding import make_generator

OPTIMIZERS = ("sgd", "adam")

# Truth tables of two-input gates, rows (a, b) = 00, 01, 10, 11 read as a 4-bit number, MSB first.
GATE_NAMES = {
    0: "false",
    1: "and",
    2: "a and not b",
    3: "a",
    4: "b and not a",
    5: "b",
    6: "xor",
    7: "or",
    8: "nor",
    9: "xnor",
    10: "not b",
    11: "b implies a",
    12: "not a",
    13: "a implies b",
    14: "nand",
    15: "true",
}


# ----------------------------------------------------------------------------------------- layout
def _check_widths(widths) -> tuple[int, int, int]:
    widths = tuple(widths) if isinstance(widths, (list, tuple)) else widths
    if not (
        isinstance(widths, tuple)
        and len(widths) == 3
        and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)
    ):
        raise ValueError(
            f"widths must be three positive ints (n_in, hidden, n_out), got {widths!r}"
        )
    return widths


def n_params(widths) -> int:
    """Number of parameters P of a (n_in, h, n_out) network."""
    n, h, o = _check_widths(widths)
    return h * n + h + o * h + o


def _check_params(params, widths) -> torch.Tensor:
    if isinstance(params, np.ndarray):
        params = torch.as_tensor(params)
    if not isinstance(params, torch.Tensor):
        raise TypeError(
            "params must be a torch.Tensor or numpy array of shape (K, P), got "
            f"{type(params).__name__}"
        )
    P = n_params(widths)
    if params.ndim != 2 or params.shape[1] != P or params.shape[0] < 1:
        raise ValueError(
            f"params must have shape (K, {P}) with K >= 1 for widths {tuple(widths)}, got "
            f"{tuple(params.shape)}"
        )
    if params.is_complex() or params.dtype == torch.bool:
        raise TypeError(f"params must hold real numbers, got dtype {params.dtype}")
    params = params.float()
    if not torch.isfinite(params).all():
        raise ValueError("params contains NaN or infinite values")
    return params


def _check_X(X, n_in: int) -> torch.Tensor:
    if isinstance(X, np.ndarray):
        X = torch.as_tensor(X)
    if not isinstance(X, torch.Tensor) or X.ndim != 2 or X.shape[1] != n_in or X.shape[0] < 1:
        raise ValueError(
            f"X must be a tensor of shape (N, {n_in}) with N >= 1, got "
            f"{getattr(X, 'shape', type(X).__name__)}"
        )
    X = X.float()
    if not torch.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values")
    return X


def unflatten(params, widths) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split flat rows into ``(W1 (K, h, n_in), b1 (K, h), W2 (K, n_out, h), b2 (K, n_out))``
    (views).
    """
    params = _check_params(params, widths)
    n, h, o = widths
    K, out, i = params.shape[0], [], 0
    for shape in ((h, n), (h,), (o, h), (o,)):
        size = math.prod(shape)
        out.append(params[:, i : i + size].reshape(K, *shape))
        i += size
    return tuple(out)


def flatten(W1, b1, W2, b2) -> torch.Tensor:
    """Inverse of :func:`unflatten`: shapes (K, h, n), (K, h), (K, o, h), (K, o) -> (K, P)."""
    K = W1.shape[0]
    return torch.cat([t.reshape(K, -1) for t in (W1, b1, W2, b2)], 1)


# --------------------------------------------------------------------------------------- training
INIT_SCHEMES = ("default", "normal")


def init_params(widths, seeds: Sequence[int], scheme: str = "default") -> torch.Tensor:
    """Initial flat parameters, row k equal to ``MLP(widths, "sigmoid", seed=seeds[k])``'s.

    ``scheme="default"``: PyTorch's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for weights and biases, drawn in the same order from the same private generator, without
    building K models. ``scheme="normal"``: every parameter drawn from N(0, 1), the choice of
    many hand-written tutorials (``np.random.randn``), for the initialisation ambiguity.

    Returns
    -------
    Tensor, shape (K, P)
    """
    n, h, o = _check_widths(widths)
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    if scheme == "normal":
        return torch.stack(
            [torch.randn(n_params(widths), generator=make_generator(s)) for s in seeds]
        )
    rows = []
    for s in seeds:
        g, parts = make_generator(s), []
        for fan_in, fan_out in ((n, h), (h, o)):
            bound = 1.0 / math.sqrt(fan_in)
            parts.append(torch.rand((fan_out, fan_in), generator=g).reshape(-1) * 2 * bound - bound)
            parts.append(torch.rand((fan_out,), generator=g) * 2 * bound - bound)
        rows.append(torch.cat(parts))
    return torch.stack(rows)


def perturb_params(params, radius: float, seed: int) -> torch.Tensor:
    """Each row moved by ``radius`` in a random direction (uniform on the sphere), seeded.

    Parameters
    ----------
    params : Tensor (K, P); radius : float >= 0 (Euclidean length of every move)

    Returns
    -------
    Tensor (K, P)
    """
    if not isinstance(params, torch.Tensor) or params.ndim != 2:
        raise ValueError(
            "params must be a tensor of shape (K, P), got "
            f"{getattr(params, 'shape', type(params).__name__)}"
        )
    if (
        isinstance(radius, bool)
        or not isinstance(radius, (int, float))
        or not 0 <= radius < math.inf
    ):
        raise ValueError(f"radius must be a non-negative number, got {radius!r}")
    direction = torch.randn(params.shape, generator=make_generator(seed))
    return params.float() + radius * direction / direction.norm(dim=1, keepdim=True)


@dataclass
class SigmoidRuns:
    """Result of :func:`train_sigmoid_nets`.

    params : Tensor (K, P), final parameters
    loss, acc : ndarray (R, K), mean BCE and accuracy at the epochs in ``record_epochs``
    snapshots : ndarray (S, K, P) or None, parameters at ``snapshot_epochs`` (0 = initialisation)
    """

    params: torch.Tensor
    loss: np.ndarray
    acc: np.ndarray
    record_epochs: np.ndarray
    snapshots: np.ndarray | None
    snapshot_epochs: np.ndarray | None


def _k_last_views(theta, widths):
    n, h, o = widths
    K, out, i = theta.shape[1], [], 0
    for shape in ((h, n), (h,), (o, h), (o,)):
        size = math.prod(shape)
        out.append(theta[i : i + size].view(*shape, K))
        i += size
    return out


def _forward_k_last(X, W1, b1, W2, b2):
    """X (N, n); W1 (h, n, K) ... -> H (h, N, K), Z2 (o, N, K)."""
    H = torch.sigmoid(torch.matmul(X, W1) + b1[:, None, :])
    Z2 = (W2[:, :, None, :] * H[None]).sum(1) + b2[:, None, :]
    return H, Z2


def _bce_and_acc(Z2, Yk, double_sigmoid):
    logits = torch.sigmoid(Z2) if double_sigmoid else Z2
    loss = (F.softplus(logits) - Yk * logits).mean((0, 1))
    acc = ((Z2 > 0) == (Yk > 0.5)).float().mean((0, 1))
    return loss, acc


def _check_training_args(X, Y, widths, optimizer, lr, epochs):
    n, h, o = _check_widths(widths)
    if not isinstance(X, torch.Tensor) or X.ndim != 2 or X.shape[1] != n:
        raise ValueError(
            f"X must be a float tensor of shape (N, {n}), got "
            f"{getattr(X, 'shape', type(X).__name__)}"
        )
    if not torch.isfinite(X.float()).all():
        raise ValueError("X contains NaN or infinite values")
    if (
        not isinstance(Y, torch.Tensor)
        or Y.shape != (X.shape[0], o)
        or not bool(((Y == 0) | (Y == 1)).all())
    ):
        raise ValueError(
            f"Y must be a tensor of 0/1 targets of shape ({X.shape[0]}, {o}), got "
            f"{getattr(Y, 'shape', type(Y).__name__)}"
        )
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    lrs = (
        np.atleast_1d(np.asarray(lr, dtype=float))
        if isinstance(lr, (int, float, list, tuple, np.ndarray)) and not isinstance(lr, bool)
        else None
    )
    if lrs is None or lrs.ndim != 1 or lrs.size == 0 or not (np.isfinite(lrs) & (lrs > 0)).all():
        raise ValueError(
            f"lr must be a positive number or a sequence of K positive numbers, got {lr!r}"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")


def train_sigmoid_nets(
    params,
    widths,
    X,
    Y,
    *,
    optimizer: str = "adam",
    lr: float = 0.01,
    epochs: int = 1000,
    record_every: int = 1,
    snapshot_every: int | None = None,
    double_sigmoid: bool = False,
    use_engine: bool = False,
) -> SigmoidRuns:
    """Full-batch training of K one-hidden-layer sigmoid networks as one computation.

    Each network minimises its own mean binary cross-entropy (over examples and outputs) with
    plain SGD or Adam (PyTorch's defaults: betas (0.9, 0.999), eps 1e-8), exactly as
    ``train_ensemble(..., loss="bce", batch_size=None)`` would, but with hand-written
    gradients in a K-last memory layout (several times faster for tiny networks).

    Parameters
    ----------
    params : Tensor (K, P), initial parameters (see :func:`init_params`); not modified
    widths : (n_in, h, n_out)
    X : Tensor (N, n_in); Y : Tensor (N, n_out) of 0/1 targets
    lr : learning rate, one for all or one per network (shape (K,)), e.g. for a sweep
    record_every : record loss and accuracy every this many epochs (and after the last)
    snapshot_every : keep parameters at initialisation and every this many epochs
    double_sigmoid : reproduce a common bug: apply a sigmoid to the output and then a
        logits-based BCE (so the loss sees sigmoid(sigmoid(z))); for the stalled-loss question
    use_engine : train with the general engine (:func:`nnlearn.engine.train`) instead of this
        K-last fast path: the same numbers to float rounding, a few times slower (``make bench``)

    Returns
    -------
    SigmoidRuns
    """
    widths = _check_widths(widths)
    params = _check_params(params, widths)
    _check_training_args(X, Y, widths, optimizer, lr, epochs)
    if np.size(lr) not in (1, params.shape[0]):
        raise ValueError(f"lr must be one number or K={params.shape[0]} numbers, got {np.size(lr)}")
    lr = torch.as_tensor(
        np.broadcast_to(np.asarray(lr, dtype=np.float32), (params.shape[0],)).copy()
    )
    for name, val in (("record_every", record_every), ("snapshot_every", snapshot_every)):
        if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < 1):
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if use_engine:  # the general engine: a sigmoid MLPStack, BCE on the logits (or on sigmoid(z))
        W1, b1, W2, b2 = unflatten(params, widths)
        p = {"layers.0.weight": W1, "layers.0.bias": b1, "layers.1.weight": W2, "layers.1.bias": b2}
        stack = MLPStack(
            list(widths), "sigmoid", output_activation="sigmoid" if double_sigmoid else None
        )
        cut = 0.5 if double_sigmoid else 0.0  # the output is sigmoid(z) with the double sigmoid
        Yf, rec = Y.float(), {"loss": [], "acc": [], "at": []}

        def record(loss, out, at):
            rec["loss"].append(loss.cpu())
            rec["acc"].append(((out > cut) == (Yf.to(out.device) > 0.5)).float().mean((1, 2)).cpu())
            rec["at"].append(at)

        class Record(engine.Callback):
            def before_step(self, state):  # the full-batch loss before epoch state.step
                if state.step % record_every == 0:
                    record(state.loss, state.outputs, state.step)

            def on_end(self, state):
                with torch.no_grad():
                    out = stack(state.params, state.x)
                    record(engine.member_losses(out, state.targets, "bce"), out, state.step)

        snaps = (
            engine.Snapshots(snapshot_every, unit="step", at_end=False) if snapshot_every else None
        )
        run = engine.train(
            stack,
            p,
            X.float(),
            Yf,
            loss="bce",
            optimizer=optimizer,
            lr=lr,
            epochs=epochs,
            record="none",
            callbacks=[Record()] + ([snaps] if snaps else []),
            progress=False,
        )
        return SigmoidRuns(
            params=flatten(*(run.params[n] for n in p)),
            loss=torch.stack(rec["loss"]).numpy(),
            acc=torch.stack(rec["acc"]).numpy(),
            record_epochs=np.array(rec["at"]),
            snapshots=snaps.flat() if snaps else None,
            snapshot_epochs=np.array(snaps.at) if snaps else None,
        )
    n, h, o = widths
    N = X.shape[0]
    X = X.float()
    theta = params.detach().T.contiguous()
    grad = torch.zeros_like(theta)
    W1, b1, W2, b2 = _k_last_views(theta, widths)
    gW1, gb1, gW2, gb2 = _k_last_views(grad, widths)
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    Yk = Y.float().T.reshape(o, N, 1)
    scale = 1.0 / (N * o)
    losses, accs, rec_epochs = [], [], []
    snaps, snap_epochs = ([theta.T.clone()], [0]) if snapshot_every else ([], [])
    for t in range(1, epochs + 1):
        H, Z2 = _forward_k_last(X, W1, b1, W2, b2)
        if (t - 1) % record_every == 0:
            loss, acc = _bce_and_acc(Z2, Yk, double_sigmoid)
            losses.append(loss)
            accs.append(acc)
            rec_epochs.append(t - 1)
        if double_sigmoid:
            S = torch.sigmoid(Z2)
            dZ2 = (torch.sigmoid(S) - Yk) * S * (1 - S) * scale
        else:
            dZ2 = (torch.sigmoid(Z2) - Yk) * scale
        gW2.copy_((dZ2[:, None] * H[None]).sum(2))
        gb2.copy_(dZ2.sum(1))
        dZ1 = (W2[:, :, None, :] * dZ2[:, None]).sum(0) * H * (1 - H)
        gW1.copy_(torch.matmul(X.T, dZ1))
        gb1.copy_(dZ1.sum(1))
        if optimizer == "sgd":
            theta.sub_(grad * lr)
        else:
            m.lerp_(grad, 0.1)
            v.mul_(0.999).addcmul_(grad, grad, value=0.001)
            denom = (v / (1 - 0.999**t)).sqrt_().add_(1e-8)
            theta.sub_(m * (lr / (1 - 0.9**t)) / denom)
        if snapshot_every and t % snapshot_every == 0:
            snaps.append(theta.T.clone())
            snap_epochs.append(t)
    H, Z2 = _forward_k_last(X, W1, b1, W2, b2)
    loss, acc = _bce_and_acc(Z2, Yk, double_sigmoid)
    losses.append(loss)
    accs.append(acc)
    rec_epochs.append(epochs)
    return SigmoidRuns(
        params=theta.T.contiguous(),
        loss=torch.stack(losses).numpy(),
        acc=torch.stack(accs).numpy(),
        record_epochs=np.array(rec_epochs),
        snapshots=torch.stack(snaps).numpy() if snapshot_every else None,
        snapshot_epochs=np.array(snap_epochs) if snapshot_every else None,
    )


def loss_gradient_norm(params, widths, X, Y) -> np.ndarray:
    """Euclidean norm of each network's BCE gradient with respect to all its parameters.

    Returns
    -------
    ndarray (K,)
    """
    params = _check_params(params, widths).detach().clone().requires_grad_(True)
    logits = forward(params, widths, X)[1]
    Yk = Y.float().expand_as(logits)
    loss = F.binary_cross_entropy_with_logits(logits, Yk, reduction="none").mean((1, 2)).sum()
    (g,) = torch.autograd.grad(loss, params)
    return g.norm(dim=1).numpy()


# ------------------------------------------------------------------------------------------ forward
ABLATIONS = ("zero", "mean")


def forward(
    params, widths, X, masks=None, ablation: str = "zero"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden activations and output logits of K networks.

    Parameters
    ----------
    params : (K, P); X : (N, n_in)
    masks : optional tensor broadcastable to (..., K, 1, h): multiplies the hidden activations,
        e.g. shape (M, 1, 1, h) evaluates M unit-removal masks on every network at once
    ablation : what a masked-off unit is replaced by: ``"zero"`` (its activation set to 0,
        which also deletes its constant contribution to the next layer) or ``"mean"`` (its mean
        activation over the rows of ``X``, the same as folding that mean into the next bias)

    Returns
    -------
    hidden : Tensor (..., K, N, h); logits : Tensor (..., K, N, n_out)
    """
    W1, b1, W2, b2 = unflatten(params, widths)
    X = _check_X(X, widths[0])
    hidden = torch.sigmoid(torch.matmul(X, W1.transpose(1, 2)) + b1[:, None, :])
    if masks is not None:
        if not isinstance(masks, torch.Tensor) or masks.shape[-1] != widths[1]:
            raise ValueError(
                f"masks must be a tensor whose last dimension is h={widths[1]}, got "
                f"{getattr(masks, 'shape', type(masks).__name__)}"
            )
        if ablation not in ABLATIONS:
            raise ValueError(f"ablation must be one of {ABLATIONS}, got {ablation!r}")
        if ablation == "zero":
            hidden = hidden * masks
        else:
            hidden = hidden * masks + (1 - masks) * hidden.mean(-2, keepdim=True)
    logits = torch.matmul(hidden, W2.transpose(1, 2)) + b2[:, None, :]
    return hidden, logits


def accuracy(params, widths, X, y, masks=None, ablation: str = "zero") -> np.ndarray:
    """Fraction of examples classified right (logit > 0 means 1), shape (..., K).

    ``y`` : (N,) or (N, n_out) 0/1 targets; with several outputs every output counts.
    """
    _, logits = forward(params, widths, X, masks, ablation)
    y = _check_labels(y, X.shape[0], widths[2])
    if not torch.isfinite(logits).all():
        raise ValueError("params: the networks give NaN or infinite outputs")
    return ((logits > 0) == (y > 0.5)).float().mean((-1, -2)).numpy()


def _check_labels(y, n: int, n_out: int) -> torch.Tensor:
    """0/1 targets of shape (n,) (one output) or (n, n_out), as a float (n, n_out) tensor."""
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if not isinstance(y, (np.ndarray, torch.Tensor)):
        raise TypeError(f"y must be an array of 0/1 targets, got {type(y).__name__}")
    y = torch.as_tensor(y)
    ok = tuple(y.shape) == (n, n_out) or (n_out == 1 and tuple(y.shape) == (n,))
    if not ok:
        raise ValueError(
            f"y must have shape ({n},) or ({n}, {n_out}), one target per input, got "
            f"{tuple(y.shape)}"
        )
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("y must hold 0/1 targets only")
    return y.reshape(n, n_out).float()


# -------------------------------------------------------------------------------------------- gates
def binary_inputs(n: int) -> torch.Tensor:
    """All 2**n binary input rows in counting order (first input most significant), (2**n, n)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 16:
        raise ValueError(f"n must be an int in 1..16, got {n!r}")
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)))


def truth_code(bits) -> np.ndarray:
    """Truth tables (..., R) of 0/1 values read as integers, first row most significant."""
    bits = np.asarray(bits)
    if bits.ndim < 1 or bits.shape[-1] < 1 or not np.isin(bits, (0, 1)).all():
        raise ValueError(
            f"bits must be a 0/1 array of shape (..., R) with R >= 1, got {bits.shape}"
        )
    weights = 2 ** np.arange(bits.shape[-1] - 1, -1, -1)
    return (bits.astype(np.int64) * weights).sum(-1)


def gate_name(code: int, n_inputs: int = 2) -> str:
    """Name of a gate from its truth-table code; gates of other than two inputs get their bits."""
    if (
        isinstance(n_inputs, bool)
        or not isinstance(n_inputs, (int, np.integer))
        or not 1 <= n_inputs <= 4
    ):
        raise ValueError(f"n_inputs must be an int in 1..4, got {n_inputs!r}")
    if (
        isinstance(code, bool)
        or not isinstance(code, (int, np.integer))
        or not 0 <= code < 2 ** (2**n_inputs)
    ):
        raise ValueError(
            f"code must be an int in 0..{2 ** (2**n_inputs) - 1} for {n_inputs} inputs, got "
            f"{code!r}"
        )
    if n_inputs == 2:
        return GATE_NAMES[int(code)]
    return format(int(code), f"0{2**n_inputs}b")


def hidden_gates(params, widths) -> np.ndarray:
    """Truth-table code of every hidden unit over the binary inputs (activation > 0.5 is 1).

    Returns
    -------
    ndarray int (K, h); name them with :func:`gate_name` (``n_inputs = n_in``)
    """
    hidden, _ = forward(params, widths, binary_inputs(widths[0]))
    return truth_code((hidden > 0.5).int().numpy().transpose(0, 2, 1))


def output_gates(params, widths) -> np.ndarray:
    """Truth-table code of every output unit over *binarised* hidden units.

    The output unit is evaluated with its hidden inputs set to every 0/1 pattern (the ideal
    gates), including patterns the hidden layer never produces on binary inputs.

    Returns
    -------
    ndarray int (K, n_out)
    """
    _, _, W2, b2 = unflatten(params, widths)
    patterns = binary_inputs(widths[1])  # (2**h, h)
    logits = torch.matmul(patterns, W2.transpose(1, 2)) + b2[:, None, :]  # (K, 2**h, o)
    return truth_code((logits > 0).int().numpy().transpose(0, 2, 1))


def reachable_patterns(params, widths) -> np.ndarray:
    """Which 0/1 hidden patterns occur on the binary inputs: bool (K, 2**h)."""
    hidden, _ = forward(params, widths, binary_inputs(widths[0]))
    codes = truth_code((hidden > 0.5).int().numpy())  # (K, 2**n_in)
    seen = np.zeros((hidden.shape[0], 2 ** widths[1]), bool)
    np.put_along_axis(seen, codes, True, axis=1)
    return seen


def gate_structure(params, widths) -> list[str]:
    """One readable string per network: hidden gates, then output gate, e.g. ``"nand, nor -> a and
    not b"``.
    """
    hid, out = hidden_gates(params, widths), output_gates(params, widths)
    n, h, _ = widths
    return [
        ", ".join(gate_name(int(c), n) for c in hid[k])
        + " -> "
        + ", ".join(gate_name(int(c), h) for c in out[k])
        for k in range(len(hid))
    ]


def canonical_order(params, widths) -> torch.Tensor:
    """Permute each network's hidden units into a canonical order (the function is unchanged).

    Units are sorted by their gate's truth-table code, ties by outgoing weight to output 0.

    Returns
    -------
    Tensor (K, P)
    """
    W1, b1, W2, b2 = unflatten(params, widths)
    codes = torch.as_tensor(hidden_gates(params, widths), dtype=torch.float64)
    key = codes * 1e6 + torch.tanh(W2[:, 0, :].double())  # code first, outgoing weight breaks ties
    order = key.argsort(dim=1)
    W1p = torch.take_along_dim(W1, order[:, :, None], 1)
    b1p = torch.take_along_dim(b1, order, 1)
    W2p = torch.take_along_dim(W2, order[:, None, :], 2)
    return flatten(W1p, b1p, W2p, b2)


def canonical_structure(params, widths) -> list[str]:
    """:func:`gate_structure` after :func:`canonical_order`: twins under a swap read the same."""
    return gate_structure(canonical_order(params, widths), widths)


# ------------------------------------------------------------------------------------------ removal
def single_removal_masks(h: int) -> torch.Tensor:
    """The h masks that each switch off one hidden unit, shape (h, 1, 1, h)."""
    if isinstance(h, bool) or not isinstance(h, int) or h < 1:
        raise ValueError(f"h must be a positive int, got {h!r}")
    return (1 - torch.eye(h)).reshape(h, 1, 1, h)


def keep_masks(h: int, keep: int) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """Masks keeping each subset of ``keep`` hidden units: (M, 1, 1, h) and the subsets."""
    if (
        isinstance(h, bool)
        or not isinstance(h, int)
        or h < 1
        or not (isinstance(keep, int) and 1 <= keep <= h)
    ):
        raise ValueError(f"need ints h >= 1 and 1 <= keep <= h, got h={h!r}, keep={keep!r}")
    subsets = list(itertools.combinations(range(h), keep))
    masks = torch.zeros(len(subsets), h)
    for i, s in enumerate(subsets):
        masks[i, list(s)] = 1
    return masks.reshape(-1, 1, 1, h), subsets


def removal_accuracy(params, widths, X, y, masks, ablation: str = "zero") -> np.ndarray:
    """Accuracy of every network under every mask in one pass: masks (M, 1, 1, h) -> (M, K).

    ``ablation``: ``"zero"`` or ``"mean"`` (see :func:`forward`)."""
    if not isinstance(masks, torch.Tensor) or masks.ndim != 4 or masks.shape[1:3] != (1, 1):
        raise ValueError(
            "masks must have shape (M, 1, 1, h), got "
            f"{getattr(masks, 'shape', type(masks).__name__)}"
        )
    return accuracy(params, widths, X, y, masks, ablation)


def split_pairs(params, widths, *, tol: float = 0.5) -> list[list[tuple[int, int]]]:
    """Pairs of hidden units that compute the same gate with nearly equal incoming weights.

    Two units of one network form a pair when their truth tables agree and their incoming
    weight vectors (weights and bias) differ by at most ``tol`` times the larger norm.

    Returns
    -------
    list (length K) of lists of (i, j) with i < j
    """
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < math.inf:
        raise ValueError(f"tol must be a non-negative finite number, got {tol!r}")
    W1, b1, _, _ = unflatten(params, widths)
    codes = hidden_gates(params, widths)
    incoming = torch.cat([W1, b1[:, :, None]], 2)  # (K, h, n+1)
    found = []
    for k in range(len(codes)):
        pairs = []
        for i, j in itertools.combinations(range(widths[1]), 2):
            if codes[k, i] != codes[k, j]:
                continue
            diff = (incoming[k, i] - incoming[k, j]).norm()
            if diff <= tol * max(incoming[k, i].norm(), incoming[k, j].norm()):
                pairs.append((i, j))
        found.append(pairs)
    return found


def merge_units(
    params, widths, k: int, drop: int, keep: int, *, factor: float | None = None
) -> torch.Tensor:
    """Network ``k`` with hidden unit ``drop`` removed and unit ``keep``'s outgoing weights
    rescaled.

    With ``factor=None`` unit ``keep`` takes over ``drop``'s outgoing weight (``w_keep +=
    w_drop``); a number multiplies ``w_keep`` by it instead (e.g. 2 doubles it). The dropped
    unit's incoming and outgoing weights are zeroed, so the shape stays (1, P).
    """
    params = _check_params(params, widths)
    h = widths[1]
    for name, v in (("k", k), ("drop", drop), ("keep", keep)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if not (0 <= k < len(params)):
        raise ValueError(f"k must index one of the {len(params)} networks, got {k}")
    if not (0 <= drop < h and 0 <= keep < h and drop != keep):
        raise ValueError(
            f"drop and keep must be two different hidden units in 0..{h - 1}, got {drop}, {keep}"
        )
    W1, b1, W2, b2 = (t[k : k + 1].clone() for t in unflatten(params, widths))
    if factor is None:
        W2[:, :, keep] += W2[:, :, drop]
    else:
        W2[:, :, keep] *= factor
    W2[:, :, drop] = 0
    W1[:, drop] = 0
    b1[:, drop] = 0
    return flatten(W1, b1, W2, b2)


def smallest_sufficient_subset(params, widths, X, y, ablation: str = "zero") -> np.ndarray:
    """Per network, the fewest hidden units that still classify every example when all others are
    off.

    Every subset of every size is tried, each size as one batch of masks (so keep h small).

    Returns
    -------
    int ndarray (K,), in 1..h (h when no smaller subset works)
    """
    h = _check_widths(widths)[1]
    params = _check_params(params, widths)
    best = np.full(len(params), h)
    for keep in range(h - 1, 0, -1):
        masks, _ = keep_masks(h, keep)
        works = (removal_accuracy(params, widths, X, y, masks, ablation) == 1).any(0)
        best[works] = keep
    return best


# ----------------------------------------------------------------------------------------- splicing
XOR_SPLICE_INPUTS = ((0, 1), (1, 2), (2, 3))
SPLICE_LAYOUTS = {"chain": XOR_SPLICE_INPUTS, "star": ((0, 1), (0, 2), (0, 3))}


def _layout(layout) -> tuple:
    if layout not in SPLICE_LAYOUTS:
        raise ValueError(f"layout must be one of {tuple(SPLICE_LAYOUTS)}, got {layout!r}")
    return SPLICE_LAYOUTS[layout]


def splice_xor_nets(small, layout: str = "chain") -> torch.Tensor:
    """Copy three 2-2-1 networks into one 4-6-3 network computing three XORs of input pairs.

    Network ``m`` reads inputs ``XOR_SPLICE_INPUTS[m]`` ((x1,x2), (x2,x3), (x3,x4)) with hidden
    units 2m, 2m+1 and writes output m; every other weight is zero.

    Parameters
    ----------
    small : Tensor (B, 3, 9), B triples of flat 2-2-1 parameter rows

    Returns
    -------
    Tensor (B, 51), flat 4-6-3 parameters
    """
    pairs = _layout(layout)
    if not isinstance(small, (torch.Tensor, np.ndarray)):
        raise TypeError(f"small must be a tensor of shape (B, 3, 9), got {type(small).__name__}")
    small = torch.as_tensor(small).float()
    if small.ndim != 3 or small.shape[1:] != (3, n_params((2, 2, 1))) or small.shape[0] < 1:
        raise ValueError(f"small must have shape (B, 3, 9), got {tuple(small.shape)}")
    if not torch.isfinite(small).all():
        raise ValueError("small contains NaN or infinite values")
    B = small.shape[0]
    W1, b1, W2, b2 = (
        torch.zeros(B, 6, 4),
        torch.zeros(B, 6),
        torch.zeros(B, 3, 6),
        torch.zeros(B, 3),
    )
    for m, ins in enumerate(pairs):
        w1, c1, w2, c2 = unflatten(small[:, m], (2, 2, 1))
        units = [2 * m, 2 * m + 1]
        for j, i in enumerate(ins):
            W1[:, units[0] : units[1] + 1, i] = w1[:, :, j]
        b1[:, units] = c1
        W2[:, m, units] = w2[:, 0]
        b2[:, m] = c2[:, 0]
    return flatten(W1, b1, W2, b2)


def extract_xor_net(big, m: int, layout: str = "chain") -> torch.Tensor:
    """The 2-2-1 network at position ``m`` of spliced 4-6-3 networks: (B, 51) -> (B, 9).

    Weights from other inputs or hidden units are dropped (see :func:`off_block_weight`).
    """
    if isinstance(m, bool) or m not in (0, 1, 2):
        raise ValueError(f"m must be 0, 1 or 2, got {m!r}")
    W1, b1, W2, b2 = unflatten(big, (4, 6, 3))
    ins, units = list(_layout(layout)[m]), [2 * m, 2 * m + 1]
    return flatten(W1[:, units][:, :, ins], b1[:, units], W2[:, m : m + 1, units], b2[:, m : m + 1])


def off_block_weight(big, layout: str = "chain") -> np.ndarray:
    """Largest absolute weight outside the three spliced blocks, per network: (B, 51) -> (B,)."""
    W1, _, W2, _ = unflatten(big, (4, 6, 3))
    in_mask, out_mask = torch.ones(6, 4, dtype=torch.bool), torch.ones(3, 6, dtype=torch.bool)
    for m, (a, b) in enumerate(_layout(layout)):
        in_mask[2 * m : 2 * m + 2, [a, b]] = False
        out_mask[m, 2 * m : 2 * m + 2] = False
    return torch.maximum(W1[:, in_mask].abs().amax(1), W2[:, out_mask].abs().amax(1)).numpy()


def three_xor_data(layout: str = "chain") -> tuple[torch.Tensor, torch.Tensor]:
    """All 16 binary 4-bit inputs (16, 4) and targets (16, 3), the XOR of each input pair of
    ``layout``: ``"chain"`` (x1,x2), (x2,x3), (x3,x4); ``"star"`` (x1,x2), (x1,x3), (x1,x4)."""
    X = binary_inputs(4)
    Y = torch.stack([(X[:, a] != X[:, b]) for a, b in _layout(layout)], 1).float()
    return X, Y


def activation_matrix(params, widths, X) -> np.ndarray:
    """Every unit's activation on every input: hidden sigmoids then output sigmoids, (K, N, h +
    n_out).
    """
    hidden, logits = forward(params, widths, X)
    return torch.cat([hidden, torch.sigmoid(logits)], -1).detach().numpy()


def _check_acts(acts) -> np.ndarray:
    try:
        acts = np.asarray(acts, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"acts must be a numeric array of shape (16, 9), got {type(acts).__name__}"
        ) from None
    if acts.shape != (16, 9):
        raise ValueError(f"acts must have shape (16, 9), got {acts.shape}")
    if not np.isfinite(acts).all():
        raise ValueError("acts contains NaN or infinite values")
    return acts


def within_module_fit(acts: np.ndarray) -> np.ndarray:
    """How well each output of a spliced 4-6-3 net is a *linear* function of its own two hidden
    units.

    Parameters
    ----------
    acts : (16, 9) activations (6 hidden, 3 outputs) of one network over the 16 inputs

    Returns
    -------
    ndarray (3,), R^2 of the least-squares fit out_m ~ h_2m + h_2m+1 + 1
    """
    acts = _check_acts(acts)
    r2 = []
    for m in range(3):
        A = np.column_stack([acts[:, 2 * m], acts[:, 2 * m + 1], np.ones(16)])
        target = acts[:, 6 + m]
        coef, *_ = np.linalg.lstsq(A, target, rcond=None)
        resid = target - A @ coef
        total = ((target - target.mean()) ** 2).sum()
        r2.append(1 - (resid**2).sum() / total if total > 0 else 1.0)
    return np.array(r2)


def block_null_vectors(acts: np.ndarray) -> np.ndarray:
    """The three within-block linear relations of a spliced 4-6-3 net, as unit vectors over the 9
    units.

    For block m the least-squares fit ``out_m ~ c0 h_2m + c1 h_2m+1 + const`` gives the vector
    with ``-c0, -c1`` on the block's hidden units and 1 on its output (zero elsewhere); when the
    fit is exact the vector is in the null space of the activations' covariance.

    Parameters
    ----------
    acts : (16, 9) activations (6 hidden, 3 outputs) of one network over the 16 inputs

    Returns
    -------
    ndarray (9, 3), one unit-norm column per block
    """
    acts = _check_acts(acts)
    vectors = np.zeros((9, 3))
    for m in range(3):
        A = np.column_stack([acts[:, 2 * m], acts[:, 2 * m + 1], np.ones(16)])
        coef, *_ = np.linalg.lstsq(A, acts[:, 6 + m], rcond=None)
        vectors[[2 * m, 2 * m + 1, 6 + m], m] = -coef[0], -coef[1], 1.0
    return vectors / np.linalg.norm(vectors, axis=0)


def count_before_largest_gap(values) -> np.ndarray:
    """Number of values above the largest ratio between consecutive sorted values (a threshold-free
    "large").

    Parameters
    ----------
    values : (..., R) positive values sorted in decreasing order along the last axis (e.g. singular
    values)

    Returns
    -------
    int ndarray (...)
    """
    v = np.asarray(values, dtype=float)
    if v.ndim >= 1 and not np.isfinite(v).all():
        raise ValueError("values contains NaN or infinite values")
    if v.ndim < 1 or v.shape[-1] < 2 or (v <= 0).any() or (np.diff(v, axis=-1) > 0).any():
        raise ValueError(
            "values must be positive, sorted decreasingly, with at least 2 along the last axis, "
            f"got shape {v.shape}"
        )
    return np.argmax(-np.diff(np.log(v), axis=-1), axis=-1) + 1


def hidden_collision(params, widths, y) -> np.ndarray:
    """Whether two binary inputs with different targets get the same 0/1 hidden pattern.

    If they do, no output layer can tell them apart: with thresholded hidden units the network
    cannot classify all inputs. ``y`` : (2**n_in,) targets in binary counting order.

    Returns
    -------
    bool ndarray (K,)
    """
    y = np.asarray(y).ravel()
    if y.shape != (2 ** _check_widths(widths)[0],):
        raise ValueError(
            f"y must hold one target per binary input ({2 ** widths[0]}), got shape {y.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must hold 0/1 targets only")
    hidden, _ = forward(params, widths, binary_inputs(widths[0]))
    pattern = truth_code((hidden > 0.5).int().numpy())  # (K, N): each input's hidden pattern
    same = pattern[:, :, None] == pattern[:, None, :]
    differ = y[:, None] != y[None, :]
    return (same & differ).any((1, 2))


# ---------------------------------------------------------------------------------------- embedding
def _points(name: str, points, min_rows: int = 2) -> np.ndarray:
    a = np.asarray(points, dtype=float)
    if a.ndim != 2 or a.shape[0] < min_rows or a.shape[1] < 1:
        raise ValueError(
            f"{name} must be a 2-D array (K, P) with K >= {min_rows} rows, got shape {a.shape}"
        )
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def tsne_embed(points, *, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of the rows (PCA initialisation; perplexity capped below K/3 for small K).

    Parameters
    ----------
    points : array (K, P)

    Returns
    -------
    ndarray (K, 2)
    """
    a = _points("points", points, min_rows=5)
    if (
        isinstance(perplexity, bool)
        or not isinstance(perplexity, (int, float))
        or not 0 < perplexity < math.inf
    ):
        raise ValueError(f"perplexity must be a positive finite number, got {perplexity!r}")
    perplexity = float(min(perplexity, (len(a) - 1) / 3))
    return TSNE(
        2, perplexity=perplexity, init="pca", random_state=_seed(seed), max_iter=500
    ).fit_transform(a)


def pca_embed(points, n_components: int = 2, *, fit_on=None) -> tuple[np.ndarray, np.ndarray]:
    """Linear projection onto the top principal components (distances along them are kept).

    Parameters
    ----------
    points : array (K, P), projected
    fit_on : array (M, P), optional; the axes are fitted on these rows (default ``points``)

    Returns
    -------
    coords : ndarray (K, n_components); explained : ndarray (n_components,) variance ratios
    """
    a = _points("points", points)
    b = a if fit_on is None else _points("fit_on", fit_on)
    if b.shape[1] != a.shape[1]:
        raise ValueError(f"fit_on must have {a.shape[1]} columns like points, got {b.shape[1]}")
    pca = PCA(n_components).fit(b)
    return pca.transform(a), pca.explained_variance_ratio_


def kmeans_labels(points, n_clusters: int, *, seed: int) -> np.ndarray:
    """K-Means cluster of every row (10 restarts), int array (K,)."""
    a = _points("points", points)
    if (
        isinstance(n_clusters, bool)
        or not isinstance(n_clusters, (int, np.integer))
        or not 1 <= n_clusters <= len(a)
    ):
        raise ValueError(f"n_clusters must be an int in 1..{len(a)}, got {n_clusters!r}")
    return KMeans(int(n_clusters), n_init=10, random_state=_seed(seed)).fit_predict(a)


def best_k(points, k_range=range(2, 9), *, seed: int) -> tuple[int, dict[int, float]]:
    """Number of K-Means clusters with the highest silhouette score, and every score."""
    a = _points("points", points, min_rows=3)
    ks = [k for k in k_range if 2 <= k < len(a)]
    if not ks:
        raise ValueError(f"k_range must hold a k with 2 <= k < {len(a)}, got {list(k_range)}")
    scores = {k: float(silhouette_score(a, kmeans_labels(a, k, seed=seed))) for k in ks}
    return max(scores, key=scores.get), scores


def cluster_agreement(labels_a, labels_b) -> float:
    """Adjusted Rand index of two labelings of the same rows (1 = identical partitions, ~0 =
    chance).
    """
    a, b = np.asarray(labels_a).ravel(), np.asarray(labels_b).ravel()
    if a.size != b.size or a.size < 2:
        raise ValueError(
            f"labels_a and labels_b must have equal lengths >= 2, got {a.size} and {b.size}"
        )
    return float(adjusted_rand_score(a, b))


def cluster_purity(clusters, labels) -> float:
    """Homogeneity of clusters with respect to labels, in [0, 1]: 1 when no cluster mixes labels.

    Unlike the adjusted Rand index it does not penalise splitting one label over many clusters,
    so it asks "does each cluster hold one kind of run?" (scikit-learn's ``homogeneity_score``).
    """
    a, b = np.asarray(clusters).ravel(), np.asarray(labels).ravel()
    if a.size != b.size or a.size < 2:
        raise ValueError(
            f"clusters and labels must have equal lengths >= 2, got {a.size} and {b.size}"
        )
    b = np.unique(b, return_inverse=True)[1]  # any hashable labels (floats, strings) -> 0..n-1
    return float(homogeneity_score(b, a))


def neighbourhood_kept(points, embedding, n_neighbors: int = 5) -> float:
    """Trustworthiness of an embedding in [0, 1]: are its near neighbours near in the original
    space?
    """
    a, e = _points("points", points), _points("embedding", embedding)
    if len(a) != len(e):
        raise ValueError(f"points and embedding must have the same rows, got {len(a)} and {len(e)}")
    if (
        isinstance(n_neighbors, bool)
        or not isinstance(n_neighbors, (int, np.integer))
        or not 1 <= n_neighbors < len(a) / 2
    ):
        raise ValueError(f"n_neighbors must be in 1..{int(len(a) / 2 - 1)}, got {n_neighbors}")
    return float(trustworthiness(a, e, n_neighbors=n_neighbors))


def distance_correlation(start, end) -> tuple[float, float]:
    """Spearman correlation between pairwise start distances and pairwise end distances.

    Parameters
    ----------
    start, end : arrays (K, P) of the same runs (e.g. initial and final parameters)

    Returns
    -------
    (rho, p_value); pairs are not independent, so read the p-value as indicative only
    """
    a, b = _points("start", start, 4), _points("end", end, 4)
    if len(a) != len(b):
        raise ValueError(f"start and end must hold the same runs, got {len(a)} and {len(b)} rows")
    res = stats.spearmanr(pdist(a), pdist(b))
    return float(res.statistic), float(res.pvalue)


def nearest_neighbour_agreement(start, outcome) -> np.ndarray:
    """For each run: does its nearest neighbour in ``start`` space share its ``outcome``?

    Returns
    -------
    bool ndarray (K,)
    """
    a = _points("start", start, 2)
    outcome = np.asarray(outcome).ravel()
    if len(outcome) != len(a):
        raise ValueError(f"outcome must have one entry per run ({len(a)}), got {len(outcome)}")
    sq = (a**2).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * a @ a.T
    np.fill_diagonal(d, np.inf)
    return outcome[d.argmin(1)] == outcome


def chance_agreement(outcome) -> float:
    """Probability that two runs drawn at random (without replacement) share an outcome."""
    outcome = np.asarray(outcome).ravel()
    if outcome.size < 2:
        raise ValueError("outcome must hold at least 2 runs")
    _, counts = np.unique(outcome, return_counts=True)
    n = outcome.size
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


# ------------------------------------------------------------------------------------------ drawing
def gate_rows(params, widths, k: int) -> list[tuple[str, str]]:
    """(unit, gate) rows describing network ``k``: every hidden unit, then the output."""
    params = _check_params(params, widths)
    if not 0 <= k < len(params):
        raise ValueError(f"k must index one of the {len(params)} runs, got {k!r}")
    one = params[k : k + 1]
    hid, out = hidden_gates(one, widths)[0], output_gates(one, widths)[0]
    rows = [(f"h{i + 1}", gate_name(int(c), widths[0])) for i, c in enumerate(hid)]
    rows += [
        (f"out{j + 1}" if len(out) > 1 else "out", gate_name(int(c), widths[1]))
        for j, c in enumerate(out)
    ]
    return rows


def draw_run(ax, params, widths, k: int, *, title: str | None = None, n: int = 61):
    """Decision map of network ``k`` on [0, 1]^2 (P(1) colour) with its gates in the title."""
    params = _check_params(params, widths)
    one = params[k : k + 1]

    def predict(points):
        return torch.sigmoid(forward(one, widths, torch.as_tensor(points))[1])[0, :, 0]

    X = binary_inputs(2).numpy()
    decision_map(ax, predict, low=0.0, high=1.0, n=n, cmap="PiYG_r")
    ax.scatter(
        X[:, 0],
        X[:, 1],
        c=["white" if t == 0 else "black" for t in X.sum(1) % 2],
        s=22,
        edgecolors="k",
        linewidths=0.6,
        clip_on=False,
        zorder=3,
    )  # the four XOR inputs (black: target 1)
    ax.set_xticks([0, 1])
    ax.set_yticks([0, 1])
    rows = gate_rows(params, widths, k)
    label = (
        ", ".join(g for _, g in rows[:-1]) + "\n→ " + rows[-1][1]
    )  # hidden gates, then the output gate
    ax.set_title(title if title is not None else label, fontsize=7)
    return ax


def run_cards(params, widths, runs, *, titles=None, ncols: int = 4, size: float = 1.9):
    """A grid of :func:`draw_run` panels, one per index in ``runs``; returns (fig, axes)."""
    runs = list(runs)
    if not runs:
        raise ValueError("runs must name at least one run")
    nrows = -(-len(runs) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows * 1.1), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        if i >= len(runs):
            ax.axis("off")
            continue
        draw_run(ax, params, widths, runs[i], title=None if titles is None else titles[i])
    fig.tight_layout()
    return fig, axes


def explorer(params, widths, acc=None):
    """ipywidgets browser: pick a run, see its decision boundary and gates (live Jupyter only)."""
    import ipywidgets as widgets
    from IPython.display import display

    params = _check_params(params, widths)
    out = widgets.Output()
    slider = widgets.IntSlider(0, 0, len(params) - 1, description="run")

    def show(change=None):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(3, 3))
            k = slider.value
            draw_run(
                ax,
                params,
                widths,
                k,
                title=f"run {k}" + ("" if acc is None else f", accuracy {float(acc[k]):.2f}"),
            )
            plt.show()
            for unit, gate in gate_rows(params, widths, k):
                print(f"{unit:>5}: {gate}")

    slider.observe(show, names="value")
    show()
    display(widgets.VBox([slider, out]))
    return slider


# ------------------------------------------------------------------------------- ablation, basins
def greedy_core(params, widths, X, y, ablation: str = "zero") -> np.ndarray:
    """Hidden units left after greedily ablating units while every example stays classified.

    At each step every network tries ablating each remaining unit (one batch of masks) and
    takes the one that keeps all examples right with the largest smallest margin; it stops
    when no unit can go. Works for wide layers, where :func:`smallest_sufficient_subset`'s
    search over all subsets does not fit.

    Returns
    -------
    int ndarray (K,), the number of units kept (h when none can be ablated)
    """
    n, h, o = _check_widths(widths)
    params = _check_params(params, widths)
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, got {ablation!r}")
    X = _check_X(X, n)
    target = _check_labels(y, X.shape[0], o)
    sign = 2 * target - 1  # (N, o)
    keep = torch.ones(len(params), h)
    eye = torch.eye(h)
    for _ in range(h - 1):
        trial = keep[None] * (1 - eye)[:, None, :]  # (h, K, h): unit u switched off
        _, logits = forward(params, widths, X, trial[:, :, None, :], ablation)
        margin = (logits * sign).amin((-1, -2))  # (h, K)
        allowed = (keep.T > 0) & (margin > 0)
        margin = torch.where(allowed, margin, torch.full_like(margin, -torch.inf))
        best = margin.argmax(0)
        can = allowed.any(0)
        if not can.any():
            break
        keep[can, best[can]] = 0
    return keep.sum(1).int().numpy()


def swap_units(params, widths, i: int = 0, j: int = 1) -> torch.Tensor:
    """Every network with hidden units ``i`` and ``j`` exchanged (the same function)."""
    h = _check_widths(widths)[1]
    for name, v in (("i", i), ("j", j)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < h:
            raise ValueError(f"{name} must be a hidden unit index in 0..{h - 1}, got {v!r}")
    W1, b1, W2, b2 = (t.clone() for t in unflatten(params, widths))
    order = list(range(h))
    order[i], order[j] = order[j], order[i]
    return flatten(W1[:, order], b1[:, order], W2[:, :, order], b2)


PATHS = ("line", "norm")


def path_losses(a, b, widths, X, Y, *, n_points: int = 25, path: str = "line") -> np.ndarray:
    """Mean BCE of networks on a path from each row of ``a`` to the same row of ``b``.

    ``path="line"``: the straight segment; ``"norm"``: the segment's points rescaled to the
    linearly interpolated norm ``(1-t)|a| + t|b|`` (a simple curved path that does not cut
    through small weights).

    Returns
    -------
    ndarray (K, n_points), the loss at t = 0, ..., 1
    """
    a, b = _check_params(a, widths), _check_params(b, widths)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 2:
        raise ValueError(f"n_points must be an int >= 2, got {n_points!r}")
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    X = _check_X(X, widths[0])
    target = _check_labels(Y, X.shape[0], widths[2])
    t = torch.linspace(0, 1, n_points)[:, None, None]
    points = (1 - t) * a + t * b  # (T, K, P)
    if path == "norm":
        norm = (1 - t) * a.norm(dim=1, keepdim=True) + t * b.norm(dim=1, keepdim=True)
        points = points * norm / points.norm(dim=2, keepdim=True).clamp_min(1e-12)
    flat = points.reshape(-1, a.shape[1])
    logits = forward(flat, widths, X)[1]
    loss = F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="none")
    return loss.mean((1, 2)).reshape(n_points, -1).T.numpy()


def path_barrier(losses) -> np.ndarray:
    """Height of the loss barrier on each path: the largest excess of the loss over the straight
    line between the two end losses, (K, T) -> (K,) (0 when the path never rises above it)."""
    v = np.asarray(losses, dtype=float)
    if v.ndim != 2 or v.shape[1] < 2 or v.shape[0] < 1:
        raise ValueError(f"losses must have shape (K, T) with T >= 2, got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("losses contains NaN or infinite values")
    t = np.linspace(0, 1, v.shape[1])
    chord = (1 - t) * v[:, :1] + t * v[:, -1:]
    return np.maximum((v - chord).max(1), 0.0)


def share_difference(k1, n1, k2, n2, confidence: float = 0.95):
    """``k1/n1 - k2/n2`` with Newcombe's hybrid Wilson-score interval (stays inside [-1, 1]).

    Returns an :class:`nnlearn.stats.Estimate` with ``n = n1 + n2``.
    """
    from nnlearn.stats import Estimate, share_ci

    a, b = share_ci(k1, n1, confidence), share_ci(k2, n2, confidence)
    d = a.value - b.value
    lo = d - math.sqrt((a.value - a.lo) ** 2 + (b.hi - b.value) ** 2)
    hi = d + math.sqrt((a.hi - a.value) ** 2 + (b.value - b.lo) ** 2)
    return Estimate(float(d), float(max(lo, -1.0)), float(min(hi, 1.0)), int(n1 + n2))


def train_mse_nets(
    params, widths, X, Y, *, optimizer: str = "adam", lr: float = 0.01, epochs: int = 1000
) -> torch.Tensor:
    """Full-batch training of K networks on the *squared error* of their sigmoid outputs
    (hand-written gradients, one batched computation), for the loss-choice reading of the source's
    setup.

    Returns
    -------
    Tensor (K, P), the final parameters
    """
    widths = _check_widths(widths)
    params = _check_params(params, widths)
    _check_training_args(X, Y, widths, optimizer, lr, epochs)
    if np.size(lr) != 1:
        raise ValueError(f"lr must be one positive number, got {lr!r}")
    n, h, o = widths
    p = params.detach().clone()
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    X, target, N = X.float(), Y.float(), X.shape[0]
    W1, b1, W2, b2 = unflatten(p, widths)  # views: the in-place updates reach them
    for t in range(1, epochs + 1):
        H = torch.sigmoid(torch.matmul(X, W1.transpose(1, 2)) + b1[:, None, :])  # (K, N, h)
        out = torch.sigmoid(torch.matmul(H, W2.transpose(1, 2)) + b2[:, None, :])  # (K, N, o)
        dZ2 = 2 * (out - target) * out * (1 - out) / (N * o)
        dZ1 = torch.matmul(dZ2, W2) * H * (1 - H)
        grad = flatten(
            torch.matmul(dZ1.transpose(1, 2), X),
            dZ1.sum(1),
            torch.matmul(dZ2.transpose(1, 2), H),
            dZ2.sum(1),
        )
        if optimizer == "sgd":
            p -= float(lr) * grad
        else:
            m.lerp_(grad, 0.1)
            v.mul_(0.999).addcmul_(grad, grad, value=0.001)
            p -= float(lr) / (1 - 0.9**t) * m / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
    return p


def bce_loss(params, widths, X, Y) -> np.ndarray:
    """Mean binary cross-entropy of each network, (K,)."""
    X = _check_X(X, _check_widths(widths)[0])
    target = _check_labels(Y, X.shape[0], widths[2])
    logits = forward(params, widths, X)[1]
    loss = F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="none")
    return loss.mean((1, 2)).detach().numpy()


def hessian_top(params, widths, X, Y) -> np.ndarray:
    """Largest eigenvalue of each network's BCE Hessian (a sharpness measure), (K,)."""
    params = _check_params(params, widths)
    X = _check_X(X, widths[0])
    target = _check_labels(Y, X.shape[0], widths[2])

    n, h, o = widths
    cut = np.cumsum([h * n, h, o * h])

    def loss(p):
        W1, b1 = p[: cut[0]].reshape(h, n), p[cut[0] : cut[1]]
        W2, b2 = p[cut[1] : cut[2]].reshape(o, h), p[cut[2] :]
        logits = torch.sigmoid(X @ W1.T + b1) @ W2.T + b2
        return F.binary_cross_entropy_with_logits(logits, target)

    H = torch.func.vmap(torch.func.hessian(loss))(params)
    return torch.linalg.eigvalsh(H.double())[:, -1].numpy()


# ------------------------------------------------------------------- candidate training settings
@dataclass(frozen=True)
class Setting:
    """One reading of the source's unstated training setup."""

    name: str
    optimizer: str = "adam"
    lr: float = 0.01
    epochs: int = 2000
    init: str = "default"
    loss: str = "bce"  # "bce", "mse" or "double-sigmoid" (the bug)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}, got {self.init!r}")
        if self.loss not in ("bce", "mse", "double-sigmoid"):
            raise ValueError(f"loss must be 'bce', 'mse' or 'double-sigmoid', got {self.loss!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {self.epochs!r}")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")

    def describe(self) -> str:
        loss = {
            "bce": "binary cross-entropy",
            "mse": "squared error",
            "double-sigmoid": "BCE on a doubly applied sigmoid (a bug)",
        }[self.loss]
        init = "PyTorch default init" if self.init == "default" else "N(0, 1) init"
        return f"{self.optimizer} lr {self.lr:g}, {self.epochs} full-batch epochs, {init}, {loss}"


def run_setting(
    setting: Setting,
    widths,
    seeds,
    X,
    Y,
    *,
    record_every: int | None = None,
    snapshot_every: int | None = None,
    params=None,
) -> SigmoidRuns:
    """Train networks ``widths`` from ``seeds`` (or from ``params``) under ``setting``.

    The recorded loss is what the setting's own code would print (BCE, or the buggy BCE);
    for ``"mse"`` only the final BCE and accuracy are recorded and there are no snapshots.
    """
    if not isinstance(setting, Setting):
        raise TypeError(f"setting must be a Setting, got {type(setting).__name__}")
    p0 = init_params(widths, seeds, scheme=setting.init) if params is None else params
    if setting.loss != "mse":
        return train_sigmoid_nets(
            p0,
            widths,
            X,
            Y,
            optimizer=setting.optimizer,
            lr=setting.lr,
            epochs=setting.epochs,
            record_every=record_every or setting.epochs,
            snapshot_every=snapshot_every,
            double_sigmoid=setting.loss == "double-sigmoid",
        )
    p = train_mse_nets(
        p0, widths, X, Y, optimizer=setting.optimizer, lr=setting.lr, epochs=setting.epochs
    )
    y = Y[:, 0] if widths[2] == 1 else Y
    return SigmoidRuns(
        params=p,
        loss=bce_loss(p, widths, X, Y)[None],
        acc=accuracy(p, widths, X, y)[None],
        record_epochs=np.array([setting.epochs]),
        snapshots=None,
        snapshot_epochs=None,
    )


def setting_profile(setting: Setting, X, Y, seeds) -> dict:
    """What one setting gives on the source's five observations (see the chapter's score)."""
    y = Y[:, 0]
    r2 = run_setting(setting, (2, 2, 1), seeds, X, Y)
    r3 = run_setting(setting, (2, 3, 1), seeds, X, Y)
    a2, a3 = r2.acc[-1], r3.acc[-1]
    shares = {a: float(np.isclose(a2, a).mean()) for a in (0.5, 0.75, 1.0)}
    ok3 = np.isclose(a3, 1)
    loss3 = float(np.median(r3.loss[-1][ok3])) if ok3.any() else float("nan")
    gate_share = float("nan")
    if ok3.any():
        masks = single_removal_masks(3)
        gate_share = float(
            (removal_accuracy(r3.params[ok3], (2, 3, 1), X, y, masks) == 1).any(0).mean()
        )
    checks = {
        "75% commonest (2-2-1)": max(shares, key=shares.get) == 0.75,
        "2-3-1 >= 0.2 more often at 100%": float(ok3.mean()) - shares[1.0] >= 0.2,
        "2-3-1 loss in 0.3-0.6": 0.3 <= loss3 <= 0.6,
        "50/75/100% all seen": min(shares.values()) >= 0.01,
        "removable unit in 0.48-0.85": 0.48 <= gate_share <= 0.85,
    }
    return {
        "setting": setting.name,
        "share75": shares[0.75],
        "share100_221": shares[1.0],
        "share100_231": float(ok3.mean()),
        "loss231": loss3,
        "gate": gate_share,
        "checks": checks,
        "score": int(sum(checks.values())),
    }


# ------------------------------------------------------------------------- helpers for the chapter
def remove_hidden_unit(params, widths, units) -> torch.Tensor:
    """Each network without one hidden unit (``units[k]`` for network k): (K, P) -> (K, P')
    of a (n_in, h - 1, n_out) network, the unit's incoming and outgoing weights deleted."""
    n, h, o = _check_widths(widths)
    if h < 2:
        raise ValueError(f"widths: need at least 2 hidden units to remove one, got {h}")
    W1, b1, W2, b2 = unflatten(params, widths)
    units = np.asarray(units)
    if units.shape != (len(W1),) or units.dtype.kind not in "iu":
        raise ValueError(
            f"units must be one int per network, shape ({len(W1)},), got {units.shape}"
        )
    if ((units < 0) | (units >= h)).any():
        raise ValueError(f"units must lie in 0..{h - 1}")
    keep = torch.as_tensor(np.array([[u for u in range(h) if u != d] for d in units]))
    W1k = torch.take_along_dim(W1, keep[:, :, None], 1)
    W2k = torch.take_along_dim(W2, keep[:, None, :], 2)
    return flatten(W1k, torch.take_along_dim(b1, keep, 1), W2k, b2)


def outcome_shares(acc, levels=(0.5, 0.75, 1.0)) -> dict:
    """Share of runs at each final accuracy level with its Wilson interval: {level: Estimate}."""
    from nnlearn.stats import share_ci

    acc = np.asarray(acc, dtype=float).ravel()
    if acc.size == 0 or not np.isfinite(acc).all():
        raise ValueError("acc must be a non-empty array of finite accuracies")
    return {a: share_ci(int(np.isclose(acc, a).sum()), int(acc.size)) for a in levels}


def sample_pairs(labels, n_pairs: int, *, same: bool, seed: int) -> np.ndarray:
    """``n_pairs`` random pairs (i, j), i != j, of runs whose labels are equal (``same``) or
    differ; (M, 2) with M <= n_pairs when fewer exist."""
    labels = np.asarray(labels).ravel()
    if labels.size < 2:
        raise ValueError("labels must hold at least 2 runs")
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive int, got {n_pairs!r}")
    rng = np.random.default_rng(_seed(seed))
    i, j = rng.integers(0, labels.size, (2, 50 * n_pairs))
    ok = (i != j) & ((labels[i] == labels[j]) == same)
    return np.column_stack([i[ok], j[ok]])[:n_pairs]


def cluster_scan(points, k_grid, *, seed: int) -> dict:
    """K-Means of ``points`` and of their t-SNE map for each k: silhouette (raw space), the
    adjusted Rand index between the two clusterings, and the raw labels, keyed by k."""
    a = _points("points", points, min_rows=5)
    ks = [int(k) for k in k_grid]
    if not ks or any(not 2 <= k < len(a) for k in ks):
        raise ValueError(f"k_grid must hold ks with 2 <= k < {len(a)}, got {ks}")
    emb = tsne_embed(a, seed=seed)
    out = {"map": emb, "labels": {}, "silhouette": {}, "ari": {}}
    for k in ks:
        raw = kmeans_labels(a, k, seed=seed)
        out["labels"][k] = raw
        out["silhouette"][k] = float(silhouette_score(a, raw))
        out["ari"][k] = cluster_agreement(raw, kmeans_labels(emb, k, seed=seed))
    return out


def splice_outcome(big, blocks, layout: str = "chain") -> dict:
    """How retrained spliced nets ``big`` (B, 51) compare with the blocks spliced in (B, 3, 9):
    per block (3 * B values): still XOR, same hidden gates, cosine of parameters before/after."""
    big = _check_params(big, (4, 6, 3))
    blocks = torch.as_tensor(blocks).float()
    if blocks.ndim != 3 or blocks.shape != (len(big), 3, 9):
        raise ValueError(f"blocks must have shape ({len(big)}, 3, 9), got {tuple(blocks.shape)}")
    Xb, yb = binary_inputs(2), np.array([0, 1, 1, 0])
    cut = [extract_xor_net(big, m, layout) for m in range(3)]
    still = np.stack([accuracy(c, (2, 2, 1), Xb, yb) == 1 for c in cut])
    same = np.stack(
        [
            (hidden_gates(c, (2, 2, 1)) == hidden_gates(blocks[:, m], (2, 2, 1))).all(1)
            for m, c in enumerate(cut)
        ]
    )
    cos = np.stack([F.cosine_similarity(c, blocks[:, m], dim=1).numpy() for m, c in enumerate(cut)])
    return {
        "still_xor": still.ravel(),
        "same_gates": same.ravel(),
        "cosine": cos.ravel(),
        "params": big,
    }


def covariance_spectrum(big, layout: str = "chain") -> dict:
    """Covariance of the 9 activations of spliced 4-6-3 nets over the 16 inputs and its SVD.

    Returns a dict: ``cov`` (B, 9, 9), ``U`` (B, 9, 9), ``rel`` (B, 9) singular values relative
    to the largest, ``fit`` (B, 3) within-block R^2, ``angle`` the largest angle (degrees)
    between the span of the three smallest singular vectors and the within-block relations,
    ``sparse`` (B,) the share of off-diagonal |correlations| below 0.1.
    """
    X4, _ = three_xor_data(layout)
    acts = activation_matrix(big, (4, 6, 3), X4).astype(float)
    covs = np.stack([np.cov(a.T) for a in acts])
    U, S, _ = np.linalg.svd(covs)
    rel = S / S[:, :1]
    fit = np.stack([within_module_fit(a) for a in acts])
    null = np.stack([block_null_vectors(a) for a in acts])
    angle = max(
        float(np.degrees(subspace_angles(null[i], U[i][:, 6:])).max()) for i in range(len(acts))
    )
    sd = np.sqrt(np.maximum(np.einsum("bii->bi", covs), 1e-300))
    corr = covs / sd[:, :, None] / sd[:, None, :]
    off = ~np.eye(9, dtype=bool)
    sparse = (np.abs(corr[:, off]) < 0.1).mean(1)
    return {"cov": covs, "U": U, "rel": rel, "fit": fit, "angle": angle, "sparse": sparse}


# --------------------------------------------------------------------------- the chapter's claims
def declare_claims(C) -> None:
    """Declare every claim of the learning-xor chapter on the claims object ``C``."""
    from nnlearn.claims import R

    d = C.declare
    d(
        "and-control",
        "2-2-1 networks learn AND (linearly separable) in the primary setting",
        kind="control",
        statistic="share of 1000 runs at 100% on AND",
        rule=R.share_at_least(0.95, band=(0.9, 0.99)),
    )
    d(
        "xor221-75",
        "2-2-1 networks consistently end at 75% accuracy",
        kind="source",
        source="even with tuning, consistently only 75% accuracy",
        where="Learning XOR, para. 3",
        statistic="share of 2-2-1 runs at 75%",
        rule=R.share_at_least(0.5, band=(0.4, 0.6)),
        partly=R.share_at_least(1 / 3),
        controls=("and-control",),
    )
    d(
        "xor231-easier",
        "a third hidden unit makes XOR much easier to learn",
        kind="source",
        source="adding a third neuron made it much easier",
        where="Learning XOR, para. 4",
        statistic="share at 100%, 2-3-1 minus 2-2-1 (Newcombe interval)",
        rule=R.interval_above(0.2, band=(0.1, 0.3)),
    )
    d(
        "xor231-first",
        "a 2-3-1 network solves XOR on a first try",
        kind="source",
        source="100% accuracy on the first training run",
        where="Learning XOR, para. 4",
        statistic="share of 2-3-1 runs at 100%",
        rule=R.share_at_least(0.5, band=(0.4, 0.6)),
    )
    d(
        "loss-band",
        "2-3-1 losses end around 0.3-0.6 BCE",
        kind="source",
        source="generally around 0.3-0.6 binary cross-entropy",
        where="Learning XOR, para. 7",
        statistic="median final BCE of solving 2-3-1 runs",
        rule=R.between(0.3, 0.6, band=((0.25, 0.65), (0.35, 0.55))),
    )
    d(
        "gradient-eaten",
        "the loss stalls because sigmoids 'ate the gradient'",
        kind="source",
        source="possibly the sigmoids ate the gradient (or a bug)",
        where="Learning XOR, para. 8",
        statistic="median loss after 4x the epochs / after the primary epochs (solving runs)",
        rule=R.at_least(0.9, band=(0.8, 0.95)),
    )
    d(
        "plateau-exact",
        "stuck runs sit on the two exact plateau values (1/2 ln 2, 3/4 H(1/3))",
        kind="beyond",
        statistic="largest |median loss - plateau value| (converged setting)",
        rule=R.at_most(0.01, band=(0.005, 0.02)),
    )
    d(
        "tsne-noise",
        "t-SNE + K-Means on structureless Gaussian points do not agree",
        kind="control",
        statistic="ARI(K-Means raw, K-Means on map) at the chosen k",
        rule=R.at_most(0.5, band=(0.4, 0.6)),
    )
    d(
        "tsne-kmeans",
        "K-Means on the raw parameters confirms the t-SNE clusters",
        kind="source",
        source="K-Means on the original parameters verified the t-SNE closeness",
        where="TSNE Clusters, para. 3",
        statistic="ARI(K-Means raw, K-Means on map), peak k",
        rule=R.at_least(0.5, band=(0.4, 0.6)),
        controls=("tsne-noise",),
    )
    d(
        "cluster-accuracy",
        "runs of one accuracy lie together in parameter space",
        kind="source",
        source="colours (accuracies) form clusters",
        where="TSNE Clusters, para. 2",
        statistic="nearest neighbour shares the accuracy, minus the random-pair rate",
        rule=R.interval_above(0.1, band=(0.05, 0.2)),
    )
    d(
        "one-100-cluster",
        "there is a single cluster of 100% runs",
        kind="source",
        source="only one cluster with 100% accuracy",
        where="Testing External Behaviour, para. 4",
        statistic="number of K-Means clusters (peak k) made only of 100% runs",
        rule=R.at_most(1, band=(1, 2)),
    )
    d(
        "75-largest",
        "the 75% outcome is the largest group among 100 runs",
        kind="source",
        source="the largest basin holds 75% configurations",
        where="TSNE Clusters, para. 2",
        statistic="the commonest outcome of runs 0-99 is 75%",
        rule=R.holds(),
    )
    d(
        "gates-100",
        "100% runs are nand, nor and an implication-like output",
        kind="source",
        source="all approximately nand, nor and implication gates",
        where="Testing External Behaviour, para. 3",
        statistic="share of 100% runs with that structure (up to unit order)",
        rule=R.share_at_least(0.8, band=(0.7, 0.9)),
        partly=R.share_at_least(0.2),
    )
    d(
        "gates-75",
        "75% runs are nor-nor-nor",
        kind="source",
        source="namely nor-nor-nor",
        where="Testing External Behaviour, para. 6",
        statistic="share of 75% runs with that structure",
        rule=R.share_at_least(0.8, band=(0.7, 0.9)),
        partly=R.share_at_least(0.2),
    )
    d(
        "cluster-one-structure",
        "every run in a cluster has the same gate structure",
        kind="source",
        source="the internal structure looked the same across the cluster",
        where="Testing External Behaviour, para. 3",
        statistic="homogeneity of K-Means clusters (peak k) w.r.t. gate structure",
        rule=R.at_least(0.9, band=(0.8, 0.95)),
    )
    d(
        "swap-sample-size",
        "no swapped cluster only because of the small sample",
        kind="source",
        source="likely low sample size; the network is symmetric",
        where="Testing External Behaviour, para. 5",
        statistic="share of solutions in canonical unit order (Wilson)",
        rule=R.interval_within(0.45, 0.55, band=((0.4, 0.6), (0.47, 0.53))),
    )
    d(
        "swap-identity",
        "swapping the hidden units leaves every output unchanged",
        kind="identity",
        statistic="largest |change of a logit|",
        rule=R.at_most(1e-4, band=(1e-5, 1e-3)),
    )
    d(
        "twins-merge",
        "twins merge when units are put in canonical order",
        kind="beyond",
        statistic="silhouette of the six commonest structures, canonical minus raw",
        rule=R.at_least(0.1, band=(0.05, 0.2)),
    )
    d(
        "close-init-control",
        "two unrelated starts rarely end in the same structure",
        kind="control",
        statistic="probability two random runs share a structure",
        rule=R.at_most(0.5, band=(0.4, 0.6)),
    )
    d(
        "close-init",
        "close initialisations lead to close final parameters",
        kind="source",
        source="close initialisations seem to lead to close final parameters",
        where="Trajectory Graphs, para. 2",
        statistic="share of starts moved by 0.03 ending in the same structure",
        rule=R.share_at_least(0.9, band=(0.8, 0.95)),
        controls=("close-init-control",),
    )
    d(
        "predict-init",
        "the basin can be predicted from the initial parameters",
        kind="beyond",
        statistic="tree classifier accuracy at epoch 0 minus the majority rate",
        rule=R.at_least(0.05, band=(0.02, 0.1)),
    )
    d(
        "removable-70",
        "about 70% of 2-3-1 networks contain a 5-neuron XOR gate",
        kind="source",
        source="about 70% of 20 runs",
        where="Larger Networks, para. 2",
        source_value=0.7,
        statistic="share of solving 2-3-1 runs with a removable unit (zero-ablation)",
        rule=R.share_in_range(0.48, 0.85, band=((0.4, 0.9), (0.55, 0.8))),
    )
    d(
        "removable-mean",
        "with mean-ablation nearly every 2-3-1 solution has a removable unit",
        kind="beyond",
        statistic="share of solving 2-3-1 runs with a removable unit (mean)",
        rule=R.share_at_least(0.9, band=(0.8, 0.95)),
    )
    d(
        "spread-zero",
        "at every width 4-32 some solutions have no removable unit (zero)",
        kind="beyond",
        statistic="smallest share over widths of solutions with none removable",
        rule=R.share_at_least(0.05, band=(0.02, 0.1)),
    )
    d(
        "spread-mean",
        "at every width 4-32 some solutions have no removable unit (mean)",
        kind="beyond",
        statistic="smallest share over widths of solutions with none removable",
        rule=R.share_at_least(0.05, band=(0.02, 0.1)),
    )
    d(
        "split",
        "a split gate: removing one twin breaks XOR, doubling the other restores it",
        kind="source",
        source="two neurons each with half the weight; doubling recovered it",
        where="Larger Networks, para. 2",
        statistic="share restored among split runs broken",
        rule=R.share_at_least(0.9, band=(0.8, 0.95)),
    )
    d(
        "route-around",
        "the third unit is needed during training, not at the end",
        kind="beyond",
        statistic="share solving when the removable unit is deleted at init",
        rule=R.share_at_most(0.8, band=(0.7, 0.9)),
    )
    d(
        "splice-control",
        "retraining can change the gates of spliced blocks (untrained blocks)",
        kind="control",
        statistic="share of untrained blocks whose hidden gates change",
        rule=R.share_at_least(0.5, band=(0.3, 0.7)),
    )
    d(
        "splice-keeps",
        "spliced XOR nets keep their structure when the big net is retrained",
        kind="source",
        source="the network didn't change its internal structure",
        where="Extending XOR, para. 2",
        statistic="share of blocks still XOR with the same gates",
        rule=R.share_at_least(0.9, band=(0.8, 0.95)),
        controls=("splice-control",),
    )
    d(
        "svd-5",
        "only 5 of the 9 singular values of the activation covariance are large",
        kind="source",
        source="only 5 large singular values, as opposed to 9",
        where="Extending XOR, para. 4",
        source_value=5,
        statistic="median count of values above 0.1 x the largest",
        rule=R.close_to_source(0.5, band=(0.0, 1.0)),
    )
    d(
        "svd-null",
        "the near-zero singular directions are the within-block relations",
        kind="beyond",
        statistic="largest angle (degrees) between the two subspaces",
        rule=R.at_most(1.0, band=(0.5, 5.0)),
    )
    d(
        "cov-not-sparse",
        "the activation covariance is not sparse",
        kind="source",
        source="looked for sparsity; it doesn't seem like we found it",
        where="Extending XOR, para. 4",
        statistic="median share of |correlations| below 0.1",
        rule=R.at_most(0.5, band=(0.4, 0.6)),
    )
    d(
        "barrier-control",
        "different structures are separated by a loss barrier",
        kind="control",
        statistic="share of different-structure pairs with a straight-line barrier",
        rule=R.share_at_least(0.5, band=(0.3, 0.7)),
    )
    d(
        "same-structure-basin",
        "runs with the same structure share a basin (no barrier)",
        kind="beyond",
        statistic="share of same-structure pairs with no straight-line barrier",
        rule=R.share_at_least(0.9, band=(0.8, 0.95)),
    )
    d(
        "twins-barrier",
        "unit-swapped twins are separated by a barrier",
        kind="beyond",
        statistic="share of twin pairs with a straight-line barrier",
        rule=R.share_at_least(0.9, band=(0.8, 0.95)),
    )
    d(
        "volume-flatness",
        "larger basins are flatter",
        kind="beyond",
        statistic="Spearman correlation, basin share vs -top Hessian eigenvalue (6 basins)",
        rule=R.at_least(0.5, band=(0.3, 0.7)),
    )
    d(
        "tie-labels",
        "on the tie plateau each tied input takes its fitted neighbour's sign",
        kind="beyond",
        statistic="share of tied inputs whose logit has the sign of their one "
        "fitted neighbour (converged setting)",
        rule=R.share_at_least(0.95, band=(0.9, 0.99)),
    )


def _share(mask) -> tuple[int, int]:
    mask = np.asarray(mask, dtype=bool)
    return int(mask.sum()), int(mask.size)


def judge_section1(
    C,
    *,
    acc2,
    acc3,
    fast2,
    fast3,
    and_acc,
    loss_med,
    stall_ratio,
    plateau_gap,
    profiles,
    fast_loss3,
) -> None:
    """Section 1's verdicts (primary setting), with the other candidates as sensitivity."""
    C.judge("and-control", np.asarray(and_acc) == 1)
    C.judge("xor221-75", np.isclose(acc2, 0.75))
    C.judge("xor231-first", np.isclose(acc3, 1))
    diff = share_difference(*_share(np.isclose(acc3, 1)), *_share(np.isclose(acc2, 1)))
    C.judge("xor231-easier", diff)
    C.judge("loss-band", float(loss_med.value), ours=f"median {loss_med.format(3)}")
    C.judge("gradient-eaten", stall_ratio)
    C.judge("plateau-exact", plateau_gap, setting="faster Adam (lr 0.01), converged")
    for p in profiles:
        n = 500
        C.sensitivity("xor221-75", p["setting"], (round(p["share75"] * n), n))
        C.sensitivity("xor231-first", p["setting"], (round(p["share100_231"] * n), n))
        k3, k2 = round(p["share100_231"] * n), round(p["share100_221"] * n)
        C.sensitivity("xor231-easier", p["setting"], share_difference(k3, n, k2, n))
        if math.isfinite(p["loss231"]):
            C.sensitivity("loss-band", p["setting"], p["loss231"])


def judge_section2(
    C, *, scan, k_best, noise_ari, nn_acc, chance_acc, purity_gate, outcome100, clusters
) -> None:
    from nnlearn.stats import share_ci

    C.judge("tsne-noise", noise_ari)
    C.judge(
        "tsne-kmeans", scan["ari"][k_best], ours=f"ARI {scan['ari'][k_best]:.2f} at k = {k_best}"
    )
    s = share_ci(*_share(nn_acc))
    C.judge(
        "cluster-accuracy",
        (s.value - chance_acc, s.lo - chance_acc, s.hi - chance_acc),
        ours=f"{s.value:.2f} vs random {chance_acc:.2f}",
    )
    pure = sum(bool((outcome100[clusters == c] == 1).all()) for c in np.unique(clusters))
    C.judge("one-100-cluster", pure, ours=f"{pure} all-100% clusters of {len(np.unique(clusters))}")
    values, counts = np.unique(outcome100, return_counts=True)
    top = float(values[counts.argmax()])
    C.judge("75-largest", bool(top == 0.75), ours=f"commonest outcome {top:.0%}")
    C.judge("cluster-one-structure", purity_gate)


def judge_section3(C, *, canon, acc, source_100, source_75, canon_100, fast_acc) -> None:
    for cid, a, s in (("gates-100", 1.0, source_100), ("gates-75", 0.75, source_75)):
        sel = np.isclose(acc, a)
        C.judge(cid, canon[sel] == s)
        fast_sel = np.isclose(fast_acc, a)
        C.sensitivity(cid, "faster Adam (lr 0.01)", canon_100[fast_sel] == s)


def judge_section6(C, *, has_gate, core, widths, broken, restored, routed_ok) -> None:
    C.judge("removable-70", has_gate["zero"])
    C.judge("removable-mean", has_gate["mean"])
    for cid, mode in (("spread-zero", "zero"), ("spread-mean", "mean")):
        shares = {h: _share(core[h, mode] == h) for h in widths if h >= 4}
        h_min = min(shares, key=lambda h: shares[h][0] / max(shares[h][1], 1))
        k, n = shares[h_min]
        C.judge(cid, (k, n) if n else None, ours=f"{k} of {n} at width {h_min} (smallest share)")
    C.judge(
        "split",
        (restored, broken) if broken else None,
        ours=f"{restored} of {broken} broken split runs restored",
    )
    C.judge("route-around", np.asarray(routed_ok, dtype=bool))


def judge_section7(C, *, splice, spectra) -> None:
    C.judge("splice-control", ~splice["chain", "untrained"]["same_gates"])
    for layout in SPLICE_LAYOUTS:
        out = splice[layout, "trained"]
        kept = out["still_xor"] & out["same_gates"]
        sp = spectra[layout]
        count = float(np.median((sp["rel"] > 0.1).sum(1)))
        if layout == "chain":
            C.judge("splice-keeps", kept)
            C.judge("svd-5", count, ours=f"median {count:g} above 0.1 x largest")
            C.judge("svd-null", sp["angle"])
            C.judge("cov-not-sparse", float(np.median(sp["sparse"])))
        else:
            C.sensitivity("splice-keeps", f"{layout} layout", kept)
            C.sensitivity("svd-5", f"{layout} layout", count)
        for t in (0.05, 0.2):
            c_t = float(np.median((sp["rel"] > t).sum(1)))
            C.sensitivity("svd-5", f"{layout} layout, large = above {t} x largest", c_t)


def judge_section8(C, *, barrier, threshold, vol_rho) -> None:
    C.judge("barrier-control", barrier["different structure", "line"] > threshold)
    C.judge("same-structure-basin", barrier["same structure", "line"] <= threshold)
    C.sensitivity(
        "same-structure-basin",
        "norm-interpolated path",
        barrier["same structure", "norm"] <= threshold,
    )
    C.judge("twins-barrier", barrier["unit-swapped twin", "line"] > threshold)
    C.sensitivity(
        "twins-barrier", "norm-interpolated path", barrier["unit-swapped twin", "norm"] > threshold
    )
    C.judge("volume-flatness", vol_rho)


def tie_neighbour_sign(params, widths, *, tol: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """For 2-input networks on the tie plateau: does each tied input (|logit| < ``tol``) take
    the sign of its fitted neighbour (the input at Hamming distance 1 with |logit| >= tol)?

    Returns
    -------
    (agrees, wrong): bool arrays over all tied inputs that have exactly one fitted neighbour;
    ``wrong`` says whether the tied input is misclassified (XOR targets)
    """
    if _check_widths(widths)[0] != 2:
        raise ValueError(f"widths: the tie reading needs 2 inputs, got {widths[0]}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < math.inf:
        raise ValueError(f"tol must be a positive finite number, got {tol!r}")
    z = forward(params, widths, binary_inputs(2))[1][..., 0].detach().numpy()  # (K, 4): 00 01 10 11
    target = np.array([0, 1, 1, 0])
    neighbours = {0: (1, 2), 1: (0, 3), 2: (0, 3), 3: (1, 2)}
    agrees, wrong = [], []
    for row in z:
        tied = np.abs(row) < tol
        for i in np.where(tied)[0]:
            fitted = [j for j in neighbours[i] if not tied[j]]
            if len(fitted) == 1:
                agrees.append(np.sign(row[i]) == np.sign(row[fitted[0]]))
                wrong.append((row[i] > 0) != (target[i] == 1))
    return np.array(agrees, dtype=bool), np.array(wrong, dtype=bool)
