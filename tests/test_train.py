import numpy as np
import pytest
import torch

from nnlearn import seed_everything
from nnlearn.data import circle_data, xor_data
from nnlearn.models import MLP
from nnlearn.seeding import make_generator, make_rng
from nnlearn.train import compute_loss, fit, per_sample_sgd


def test_fit_learns_circle_and_is_deterministic():
    X, y = circle_data(500, seed=0)
    runs = []
    for _ in range(2):
        net = MLP([2, 16, 2], seed=1)
        hist = fit(
            net,
            X,
            y,
            loss="ce",
            optimizer="adam",
            lr=0.02,
            epochs=30,
            batch_size=32,
            seed=2,
            progress=False,
        )
        runs.append((hist, net.layers[0].weight.detach().clone()))
    assert runs[0][0].acc[-1] > 0.9 and runs[0][0].loss[-1] < runs[0][0].loss[0]
    assert runs[0][0].loss == runs[1][0].loss and torch.equal(runs[0][1], runs[1][1])


def test_fit_full_batch_sgd_matches_manual_step():
    X, y = xor_data()
    a, b = MLP([2, 3, 1], "sigmoid", seed=0), MLP([2, 3, 1], "sigmoid", seed=0)
    fit(a, X, y.astype(np.float32), loss="bce", optimizer="sgd", lr=0.5, epochs=1, progress=False)
    loss = compute_loss(b(torch.tensor(X)), torch.tensor(y, dtype=torch.float32), "bce")
    loss.backward()
    with torch.no_grad():
        for p in b.parameters():
            p -= 0.5 * p.grad
    assert all(torch.allclose(p, q, atol=1e-7) for p, q in zip(a.parameters(), b.parameters()))


def test_losses_against_formulas():
    out = torch.tensor([[2.0, -1.0], [0.5, 0.5]])
    y = torch.tensor([0, 1])
    ce = -torch.log_softmax(out, 1)[torch.arange(2), y].mean()
    assert torch.isclose(compute_loss(out, y, "ce"), ce)
    mse = ((out - torch.tensor([[1.0, 0.0], [0.0, 1.0]])) ** 2).mean()
    assert torch.isclose(compute_loss(out, y, "mse"), mse)
    logit = torch.tensor([[0.3], [-2.0]])
    p = torch.sigmoid(logit.squeeze(1))
    bce = -(torch.log(1 - p[0]) + torch.log(p[1])) / 2
    assert torch.isclose(compute_loss(logit, y.float(), "bce"), bce)


def test_per_sample_sgd_tallies_groups():
    rng = make_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    labels = np.array([1, 7, 6, 8] * 10)
    y = np.isin(labels, [6, 8]).astype(np.int64)
    net = MLP([3, 4, 2], "softplus", seed=0)
    before = [p.detach().clone() for p in net.parameters()]
    tallies = per_sample_sgd(
        net,
        X,
        y,
        labels=labels,
        groups={"17": [1, 7], "68": [6, 8]},
        lr=0.1,
        loss="mse",
        progress=False,
    )
    moved = sum((p.detach() - q).abs().sum() for p, q in zip(net.parameters(), before))
    total = sum(t.sum() for g in tallies.values() for t in g.values())
    assert total >= moved - 1e-5 and all(t.sum() > 0 for t in tallies["17"].values())
    net2 = MLP([3, 4, 2], "softplus", seed=0)
    half = per_sample_sgd(
        net2,
        X,
        y,
        labels=labels,
        groups={"17": [1, 7], "68": [6, 8]},
        lr=0.1,
        tally_from=20,
        progress=False,
    )
    assert half["17"]["layers.0.weight"].sum() < tallies["17"]["layers.0.weight"].sum()


@pytest.mark.parametrize(
    "groups, exc",
    [
        ({}, ValueError),
        ({"a": [], "b": [1]}, ValueError),
        ({"a": [3]}, ValueError),
        ({"a": [1], "b": [1, 2]}, ValueError),
    ],
)
def test_per_sample_sgd_bad_groups(groups, exc):
    X = np.zeros((4, 2), np.float32)
    with pytest.raises(exc):
        per_sample_sgd(
            MLP([2, 2, 2]),
            X,
            np.zeros(4, np.int64),
            labels=np.array([1, 2, 1, 2]),
            groups=groups,
            lr=0.1,
        )


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        ({"loss": "hinge"}, ValueError),
        ({"optimizer": "rmsprop"}, ValueError),
        ({"lr": 0.0}, ValueError),
        ({"epochs": 0}, ValueError),
        ({"batch_size": 0}, ValueError),
    ],
)
def test_fit_bad_arguments(kwargs, exc):
    X, y = xor_data()
    with pytest.raises(exc):
        fit(MLP([2, 2, 2]), X, y, progress=False, **kwargs)


def test_fit_rejects_mismatched_data():
    with pytest.raises(ValueError):
        fit(MLP([2, 2, 2]), np.zeros((3, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(TypeError):
        fit(MLP([2, 2, 2]), [[0.0, 0.0]], [0])


def test_seed_everything_repeats_and_checks():
    seed_everything(7)
    a = (torch.rand(3), np.random.rand(3))
    seed_everything(7)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert torch.equal(
        torch.rand(2, generator=make_generator(1)), torch.rand(2, generator=make_generator(1))
    )
    with pytest.raises(ValueError):
        seed_everything(-1)
    with pytest.raises(TypeError):
        seed_everything(1.5)
