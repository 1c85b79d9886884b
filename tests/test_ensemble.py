import numpy as np
import pytest
import torch
from torch import nn

from nnlearn.data import circle_data, xor_data
from nnlearn.ensemble import Ensemble, member_losses, train_ensemble
from nnlearn.models import MLP
from nnlearn.train import compute_loss, fit


def _same_params(a, b, atol=1e-5):
    return all(torch.allclose(p, q, atol=atol) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("use_vmap", [False, True])
def test_full_batch_equals_one_at_a_time(use_vmap):
    X, y = xor_data()
    yf = y.astype(np.float32)
    seeds = [0, 1, 2]
    ens = Ensemble([MLP([2, 3, 1], "sigmoid", seed=s) for s in seeds], use_vmap=use_vmap)
    hist = train_ensemble(
        ens, X, yf, loss="bce", optimizer="adam", lr=0.05, epochs=50, progress=False
    )
    for k, s in enumerate(seeds):
        single = MLP([2, 3, 1], "sigmoid", seed=s)
        h = fit(single, X, yf, loss="bce", optimizer="adam", lr=0.05, epochs=50, progress=False)
        assert _same_params(ens.member(k), single)
        assert np.allclose(hist.loss[:, k], h.loss, atol=1e-5)


def test_minibatch_members_follow_their_own_seeds():
    X, y = circle_data(200, seed=0)
    seeds = [3, 4]
    ens = Ensemble.from_seeds(lambda s: MLP([2, 8, 2], seed=s), seeds)
    train_ensemble(
        ens,
        X,
        y,
        loss="ce",
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        epochs=3,
        batch_size=32,
        seeds=seeds,
        progress=False,
    )
    for k, s in enumerate(seeds):
        single = MLP([2, 8, 2], seed=s)
        fit(
            single,
            X,
            y,
            loss="ce",
            optimizer="sgd",
            lr=0.1,
            momentum=0.9,
            epochs=3,
            batch_size=32,
            seed=s,
            progress=False,
        )
        assert _same_params(ens.member(k), single)


def test_snapshots_and_flat_params():
    X, y = xor_data()
    ens = Ensemble.from_seeds(lambda s: MLP([2, 2, 1], "sigmoid", seed=s), range(4))
    first = ens.flat_params().clone()
    hist = train_ensemble(
        ens, X, y.astype(np.float32), loss="bce", epochs=10, snapshot_every=5, progress=False
    )
    assert hist.snapshots.shape == (3, 4, 9) and hist.snapshot_epochs == [-1, 4, 9]
    assert np.allclose(hist.snapshots[0], first.numpy()) and np.allclose(
        hist.snapshots[-1], ens.flat_params().numpy()
    )
    assert hist.loss.shape == (10, 4) and hist.acc.shape == (10, 4)


def test_member_losses_match_compute_loss():
    out = torch.randn(3, 5, 2)
    y = torch.randint(0, 2, (3, 5))
    for loss in ("ce", "mse"):
        expected = torch.stack([compute_loss(out[k], y[k], loss) for k in range(3)])
        assert torch.allclose(member_losses(out, y, loss), expected)
    expected = torch.stack([compute_loss(out[k, :, :1], y[k].float(), "bce") for k in range(3)])
    assert torch.allclose(member_losses(out[..., :1], y.float(), "bce"), expected)


def test_per_member_masks():
    ens = Ensemble.from_seeds(lambda s: MLP([2, 3, 2], seed=s), range(2))
    x = torch.randn(4, 2)
    masks = torch.tensor([[1.0, 0, 1], [0, 1, 1]]).unsqueeze(1)
    out = ens(x, masks=[masks])
    assert torch.allclose(out[1], ens.member(1)(x, masks=[masks[1, 0]]), atol=1e-6)


def test_generic_module_uses_vmap():
    class Tiny(nn.Module):
        def __init__(self, s):
            super().__init__()
            torch.manual_seed(s)
            self.lin = nn.Linear(2, 1)

        def forward(self, x):
            return self.lin(x)

    ens = Ensemble.from_seeds(Tiny, [0, 1])
    x = torch.randn(3, 2)
    assert ens.use_vmap and torch.allclose(ens(x)[1], Tiny(1)(x))


def test_bad_input():
    with pytest.raises(ValueError):
        Ensemble([])
    with pytest.raises(ValueError):
        Ensemble.from_seeds(lambda s: MLP([2, 2, 1], seed=s), [])
    with pytest.raises(ValueError):
        Ensemble([MLP([2, 2, 1]), MLP([2, 3, 1])])
    ens = Ensemble.from_seeds(lambda s: MLP([2, 2, 1], seed=s), range(2))
    with pytest.raises(IndexError):
        ens.member(2)
    X, y = xor_data()
    with pytest.raises(ValueError):
        train_ensemble(ens, X, y, seeds=[1, 2, 3])
    with pytest.raises(ValueError):
        train_ensemble(ens, X, y, epochs=0)
    with pytest.raises(ValueError):
        ens(torch.randn(3, 4, 2), per_member=True)


def test_per_member_data_matches_separate_fits():
    data = [circle_data(120, seed=s) for s in (10, 11)]
    X = np.stack([d[0] for d in data])
    y = np.stack([d[1] for d in data])
    ens = Ensemble.from_seeds(lambda s: MLP([2, 6, 2], seed=s), [0, 1])
    train_ensemble(
        ens,
        X,
        y,
        loss="ce",
        optimizer="adam",
        lr=0.01,
        epochs=2,
        batch_size=32,
        seeds=[5, 6],
        progress=False,
    )
    for k in range(2):
        single = MLP([2, 6, 2], seed=k)
        fit(
            single,
            data[k][0],
            data[k][1],
            loss="ce",
            optimizer="adam",
            lr=0.01,
            epochs=2,
            batch_size=32,
            seed=5 + k,
            progress=False,
        )
        assert _same_params(ens.member(k), single)
    with pytest.raises(ValueError):
        train_ensemble(ens, X[:1], y[:1], epochs=1)
