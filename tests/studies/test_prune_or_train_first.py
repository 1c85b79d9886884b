"""Tests for nnlearn.studies.prune_or_train_first: bias-corrected node removal, its bound, and the
Adam helpers.
"""

import math

import numpy as np
import pytest
import torch

from nnlearn.models import MLP
from nnlearn.studies import prune_or_train_first as P


def _stack(models):
    names = [n for n, _ in models[0].named_parameters()]
    return {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]) for n in names}


@pytest.fixture
def net():
    torch.manual_seed(0)
    return MLP([2, 6, 5, 2], seed=1)


@pytest.fixture
def X():
    return torch.randn(40, 2, generator=torch.Generator().manual_seed(3))


def test_prune_formula_matches_hand_computation(net, X):
    keep = [0, 2, 5]
    small = P.prune_mlp(net, X, [keep, None])
    h1 = torch.relu(net.layers[0](X)).detach().numpy()
    W2, b2 = net.layers[1].weight.detach().numpy(), net.layers[1].bias.detach().numpy()
    removed = [i for i in range(6) if i not in keep]
    expected = b2 + sum(
        h1[:, i].mean() * W2[:, i] for i in removed
    )  # b_j' = b_j + sum mean(x_i) w_ij
    np.testing.assert_allclose(
        small.layers[1].bias.detach().numpy(), expected, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(small.layers[1].weight.detach().numpy(), W2[:, keep])
    assert small.widths == [2, 3, 5, 2]


def test_removing_a_constant_node_changes_nothing(net, X):
    with torch.no_grad():
        net.layers[0].weight[4] = 0.0
        net.layers[0].bias[4] = 0.8  # node 4 outputs 0.8 everywhere
    small = P.prune_mlp(net, X, [[0, 1, 2, 3, 5], None])
    Z = torch.randn(30, 2)
    torch.testing.assert_close(small(Z), net(Z), rtol=0, atol=1e-5)


def test_masked_pruning_equals_physical_pruning(net, X):
    keep_idx = [[1, 3, 4], [0, 2]]
    small = P.prune_mlp(net, X, keep_idx)
    params = {n: p.detach().unsqueeze(0) for n, p in net.named_parameters()}
    keep = [P.keep_from_indices(k, w).unsqueeze(0) for k, w in zip(keep_idx, [6, 5])]
    new, masks = P.prune_stacked(params, X, keep)
    Z = torch.randn(25, 2)
    torch.testing.assert_close(
        P.stacked_forward(new, Z, masks)[1][0], small(Z), rtol=1e-5, atol=1e-6
    )


def test_stacked_forward_matches_mlp(net, X):
    other = MLP([2, 6, 5, 2], seed=9)
    params = _stack([net, other])
    _, logits = P.stacked_forward(params, X)
    torch.testing.assert_close(logits[1], other(X), rtol=1e-5, atol=1e-6)


def test_bad_keep_is_rejected(net, X):
    with pytest.raises(ValueError, match="every node"):
        P.prune_mlp(net, X, [[], None])
    with pytest.raises(ValueError, match="out of range"):
        P.prune_mlp(net, X, [[0, 6], None])
    with pytest.raises(ValueError, match="repeat"):
        P.keep_from_indices([1, 1], 4)
    params = {n: p.detach().unsqueeze(0) for n, p in net.named_parameters()}
    with pytest.raises(ValueError, match="pruning every node"):
        P.prune_stacked(params, X, [torch.zeros(1, 6, dtype=torch.bool), None])
    with pytest.raises(ValueError, match="shape"):
        P.prune_stacked(params, X, [torch.ones(1, 5, dtype=torch.bool), None])
    with pytest.raises(TypeError, match="bool"):
        P.prune_stacked(params, X, [torch.ones(1, 6), None])
    with pytest.raises(ValueError, match="one per hidden layer"):
        P.prune_stacked(params, X, [None])
    with pytest.raises(ValueError, match="X must have shape"):
        P.prune_stacked(params, torch.randn(5, 3), [None, None])
    with pytest.raises(TypeError, match="model"):
        P.prune_mlp("net", X, [None, None])


def test_keep_rules(net, X):
    keep = P.random_keep(10, 4, [0, 1, 0])
    assert keep.shape == (3, 10) and (keep.sum(1) == 4).all()
    assert torch.equal(keep[0], keep[2])
    stds = torch.tensor([[0.5, 0.0, 2.0, 1.0]])
    assert P.lowest_std_keep(stds, 2).tolist() == [[False, False, True, True]]
    with pytest.raises(ValueError, match="n_keep"):
        P.random_keep(10, 0, [0])
    with pytest.raises(ValueError, match="n_keep"):
        P.lowest_std_keep(stds, 5)


def test_loss_rise_bound_holds_and_is_zero_for_nothing_removed(net, X):
    params = _stack([net, MLP([2, 6, 5, 2], seed=4)])
    y = (X[:, 0] > 0).long()
    keep = [P.random_keep(6, 3, [0, 1]), P.random_keep(5, 2, [2, 3])]
    new, masks = P.prune_stacked(params, X, keep)
    rise = P.member_ce(P.stacked_forward(new, X, masks)[1], y) - P.member_ce(
        P.stacked_forward(params, X)[1], y
    )
    bound, parts = P.loss_rise_bound(params, X, keep)
    assert (rise.abs() <= bound + 1e-6).all() and len(parts) == 2
    zero, _ = P.loss_rise_bound(params, X, [None, None])
    assert torch.equal(zero, torch.zeros(2))


def test_adam_single_kick_travel_matches_torch():
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w], lr=1.0, eps=0.0)
    for t in range(200):
        opt.zero_grad()
        w.grad = torch.tensor([0.003 if t == 0 else 0.0])
        opt.step()
    assert -w.item() == pytest.approx(P.adam_single_kick_travel(200), rel=1e-5)
    assert P.adam_single_kick_travel(1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="steps"):
        P.adam_single_kick_travel(0)


def test_train_adam_matches_one_model_training(X):
    y = (X[:, 1] > 0).long()
    models = [MLP([2, 6, 5, 2], seed=s) for s in (0, 1)]
    res = P.train_adam(_stack(models), X, y, lr=0.05, steps=5, snapshot_every=2)
    alone = MLP([2, 6, 5, 2], seed=1)
    opt = torch.optim.Adam(alone.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(alone(X), y).backward()
        opt.step()
    torch.testing.assert_close(
        res.params["layers.2.weight"][1], alone.layers[2].weight.detach(), rtol=1e-4, atol=1e-5
    )
    assert res.loss.shape == (5, 2) and [s for s, _ in res.snapshots] == [0, 2, 4, 5]
    with pytest.raises(ValueError, match="lr"):
        P.train_adam(_stack(models), X, y, lr=0, steps=5)
    with pytest.raises(ValueError, match="steps"):
        P.train_adam(_stack(models), X, y, lr=0.1, steps=0)


def test_masked_training_never_moves_removed_weights(X):
    y = (X[:, 0] > 0).long()
    params = _stack([MLP([2, 6, 5, 2], seed=2)])
    keep = [P.keep_from_indices([0, 1, 2], 6).unsqueeze(0), None]
    new, masks = P.prune_stacked(params, X, keep)
    res = P.train_adam(new, X, y, lr=0.1, steps=10, masks=masks)
    assert torch.equal(res.params["layers.1.weight"][0][:, 3:], new["layers.1.weight"][0][:, 3:])
    assert P.never_updated(new["layers.0.weight"], res.params["layers.0.weight"])[0, 3:].all()


def test_keras_init_and_helpers():
    m = P.keras_init_(MLP([2, 50, 50, 2]), 0)
    a = math.sqrt(6 / 100)
    assert m.layers[1].weight.abs().max() <= a and torch.equal(m.layers[1].bias, torch.zeros(50))
    with pytest.raises(TypeError):
        P.keras_init_(torch.nn.Linear(2, 2), 0)
    params = _stack([m, P.keras_init_(MLP([2, 50, 50, 2]), 1)])
    both = P.concat_params(params, params)
    assert both["layers.0.weight"].shape[0] == 4
    assert P.select_members(both, [3])["layers.0.bias"].shape == (1, 50)
    rows = torch.zeros(2, 50, dtype=torch.bool)
    rows[:, :3] = True
    cols = torch.zeros(2, 50, dtype=torch.bool)
    cols[:, 5:9] = True
    assert P.block(params, "layers.1.weight", rows, cols).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="never_updated|equal shapes"):
        P.never_updated(torch.zeros(2), torch.zeros(3))
    with pytest.raises(TypeError):
        P.stacked_forward([1, 2], torch.zeros(1, 2))


def test_track_grad_marks_exactly_the_weights_that_moved(X):
    y = (X[:, 0] > 0).long()
    params = _stack([MLP([2, 6, 5, 2], seed=2), MLP([2, 6, 5, 2], seed=3)])
    keep = [P.keep_from_indices([0, 1, 2], 6).unsqueeze(0).expand(2, -1).clone(), None]
    new, masks = P.prune_stacked(params, X, keep)
    res = P.train_adam(new, X, y, lr=0.1, steps=10, masks=masks, track_grad=True)
    for n in new:
        moved = res.params[n] != new[n]
        assert torch.equal(
            moved, res.grad_max[n] > 0
        )  # Adam moves an entry iff it ever had a gradient
    assert not res.grad_max["layers.1.weight"][:, :, 3:].any()  # removed units: no gradient
    # the largest gradient of the first step is recorded
    p0 = {n: t.clone().requires_grad_(True) for n, t in new.items()}
    P.member_ce(P.stacked_forward(p0, X, masks)[1], y).sum().backward()
    assert (res.grad_max["layers.2.weight"] >= p0["layers.2.weight"].grad.abs() - 1e-7).all()
    assert P.train_adam(new, X, y, lr=0.1, steps=2).grad_max is None


def test_unit_role_similarity(net, X):
    params = _stack([net, MLP([2, 6, 5, 2], seed=5)])
    same, chance = P.unit_role_similarity(params, params, X, None, 0)
    torch.testing.assert_close(same, torch.ones(2), rtol=0, atol=1e-5)  # a network matches itself
    # cross-check one member against numpy's corrcoef
    other = _stack([MLP([2, 6, 5, 2], seed=7), MLP([2, 6, 5, 2], seed=8)])
    m, mm = P.unit_role_similarity(params, other, X, None, 1)
    ha = P.stacked_forward(params, X)[0][1][0].numpy()
    hb = P.stacked_forward(other, X)[0][1][0].numpy()
    live = (ha.std(0) > 0) & (hb.std(0) > 0)
    c = np.corrcoef(ha[:, live].T, hb[:, live].T)[: live.sum(), live.sum() :]
    assert m[0].item() == pytest.approx(np.diag(c).mean(), abs=1e-5)
    assert mm[0].item() == pytest.approx(c[~np.eye(live.sum(), dtype=bool)].mean(), abs=1e-5)
    with pytest.raises(ValueError, match="layer"):
        P.unit_role_similarity(params, params, X, None, 2)
    with pytest.raises(ValueError, match="same parameter shapes"):
        P.unit_role_similarity(params, _stack([MLP([2, 6, 4, 2], seed=1)] * 2), X, None, 0)


# --------------------------------------------------------------------------- bad input (issue 19)
def test_member_accuracy_rejects_nan_logits():
    y = torch.tensor([0, 1, 1, 0])
    with pytest.raises(ValueError, match="logits"):
        P.member_accuracy(torch.full((2, 4, 2), float("nan")), y)
    with pytest.raises(ValueError, match="logits"):
        P.member_ce(torch.full((2, 4, 2), float("inf")), y)


def test_select_members_rejects_negative_and_out_of_range_indices(net):
    params = _stack([net, MLP([2, 6, 5, 2], seed=4)])
    with pytest.raises(ValueError, match="idx"):
        P.select_members(params, [-1])
    with pytest.raises(ValueError, match="idx"):
        P.select_members(params, [2])
    with pytest.raises(TypeError, match="idx"):
        P.select_members(params, [0.5])
    assert P.select_members(params, slice(0, 1))["layers.0.weight"].shape[0] == 1


# --------------------------------------------------------------------------- the chapter's tools
def test_train_keras_matches_a_hand_written_keras_adam(X):
    y = (X[:, 0] > 0).long()
    params = _stack([MLP([2, 6, 5, 2], seed=s) for s in (0, 1)])
    res = P.train_keras(params, X, y, lr=0.05, epochs=3, batch_size=len(X), seeds=[0, 1])
    p = {n: t[1].clone().requires_grad_(True) for n, t in params.items()}
    m = {n: torch.zeros_like(t) for n, t in p.items()}
    v = {n: torch.zeros_like(t) for n, t in p.items()}
    for t in range(1, 4):  # Keras: eps added to sqrt of the uncorrected v
        one = {n: q.unsqueeze(0) for n, q in p.items()}
        loss = P.member_ce(P.stacked_forward(one, X)[1], y).sum()
        grads = torch.autograd.grad(loss, list(p.values()))
        with torch.no_grad():
            lr_t = 0.05 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            for (n, q), g in zip(p.items(), grads):
                m[n] = 0.9 * m[n] + 0.1 * g
                v[n] = 0.999 * v[n] + 0.001 * g * g
                q -= lr_t * m[n] / (v[n].sqrt() + 1e-7)
    for n in p:
        torch.testing.assert_close(res.params[n][1], p[n].detach(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="lr"):
        P.train_keras(params, X, y, lr=-1.0, seeds=[0, 1])
    with pytest.raises(ValueError, match="seeds"):
        P.train_keras(params, X, y, seeds=[0])


def test_linear_cka_is_order_and_scale_free():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 30, 5, generator=g)
    assert P.linear_cka(h, h) == pytest.approx([1.0, 1.0])
    perm = h[:, :, torch.tensor([3, 0, 4, 1, 2])] * 3.0
    assert P.linear_cka(h, perm) == pytest.approx([1.0, 1.0])
    other = torch.randn(2, 30, 5, generator=g)
    a = (h[0] - h[0].mean(0)).double().numpy()
    b = (other[0] - other[0].mean(0)).double().numpy()
    ref = np.linalg.norm(a.T @ b) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b))
    assert P.linear_cka(h, other)[0] == pytest.approx(ref)
    assert np.isnan(P.linear_cka(torch.zeros(1, 30, 5), h[:1])[0])
    with pytest.raises(ValueError, match="ha and hb"):
        P.linear_cka(h, torch.randn(2, 29, 5))


def test_matched_units_recovers_a_permutation():
    h = torch.randn(3, 40, 6, generator=torch.Generator().manual_seed(1))
    order = torch.tensor([2, 0, 1, 5, 3, 4])
    same, best, pairs = P.matched_units(h, h[:, :, order])
    assert best == pytest.approx([1.0] * 3)
    assert (same < 0.9).all()
    a, b = pairs[0]
    assert order[b].tolist() == a.tolist()
    keep = torch.ones(3, 6, dtype=torch.bool)
    keep[:, 0] = False
    same_k, _, _ = P.matched_units(h, h, keep, keep)
    assert same_k == pytest.approx([1.0] * 3)
    with pytest.raises(ValueError, match="keep_a"):
        P.matched_units(h, h, torch.ones(3, 5, dtype=torch.bool))


def test_matched_block_correlation_sees_through_relabelled_units(X):
    net = MLP([2, 6, 5, 2], seed=3)
    params = _stack([net, MLP([2, 6, 5, 2], seed=4)])
    p0, p1 = torch.tensor([5, 3, 1, 0, 2, 4]), torch.tensor([4, 2, 0, 1, 3])
    perm = {n: t.clone() for n, t in params.items()}
    perm["layers.0.weight"], perm["layers.0.bias"] = (
        params["layers.0.weight"][:, p0],
        params["layers.0.bias"][:, p0],
    )
    perm["layers.1.weight"] = params["layers.1.weight"][:, p1][:, :, p0]
    perm["layers.1.bias"] = params["layers.1.bias"][:, p1]
    perm["layers.2.weight"] = params["layers.2.weight"][:, :, p1]
    torch.testing.assert_close(P.stacked_forward(perm, X)[1], P.stacked_forward(params, X)[1])
    assert P.matched_block_correlation(params, perm, X) == pytest.approx([1.0, 1.0], abs=1e-6)


def test_plane_disagreement(net, X):
    params = _stack([net, MLP([2, 6, 5, 2], seed=2)])
    assert P.plane_disagreement(params, params, X).tolist() == [0.0, 0.0]
    flipped = {n: t.clone() for n, t in params.items()}
    flipped["layers.2.weight"] = -flipped["layers.2.weight"]
    flipped["layers.2.bias"] = -flipped["layers.2.bias"]
    d = P.plane_disagreement(params, flipped, X)
    assert (d > 0.9).all()
    with pytest.raises(ValueError, match="same number of members"):
        P.plane_disagreement(params, P.select_members(params, [0]), X)


def test_removal_effects_match_one_unit_pruned_by_hand(net, X):
    y = (X[:, 0] > 0).long()
    params = _stack([net, MLP([2, 6, 5, 2], seed=6)])
    eff = P.removal_effects(params, X, y)
    assert eff["actual"].shape == (2, 11)
    keep = [P.keep_from_indices([0, 1, 3, 4, 5], 6).expand(2, -1).clone(), None]
    new, masks = P.prune_stacked(params, X, keep)
    base = P.member_ce(P.stacked_forward(params, X)[1], y)
    rise = P.member_ce(P.stacked_forward(new, X, masks)[1], y) - base
    np.testing.assert_allclose(eff["actual"][:, 2], rise.numpy(), rtol=1e-5, atol=1e-6)
    dead = P.dead_nodes(params, X)
    assert (eff["spread"][:, :6][dead[0].numpy()] == 0).all()
    rho = P.criterion_rank_correlation(eff["actual"], eff["actual"])
    assert rho == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="scores and actual"):
        P.criterion_rank_correlation(eff["actual"], eff["actual"][:, :3])


def test_spiral_points_readings():
    Xa, ya = P.spiral_points(100, 0, sampling="arc")
    Xu, yu = P.spiral_points(100, 0)
    assert Xa.shape == (100, 2) and ya.tolist() == yu.tolist() == [0, 1] * 50
    np.testing.assert_array_equal(Xa, P.spiral_points(100, 0, sampling="arc")[0])
    # arc-length sampling puts fewer points near the centre than uniform angles
    assert (np.hypot(*Xa.T) < 0.3).sum() < (np.hypot(*Xu.T) < 0.3).sum()
    with pytest.raises(ValueError, match="sampling"):
        P.spiral_points(10, 0, sampling="radius")


def test_declared_claims_are_complete():
    from nnlearn.claims import Claims

    C = Claims("t", title="t", primary="p")
    P.declare_claims(C)
    kinds = {c.kind for c in C.claims.values()}
    assert kinds == {"source", "identity", "control", "beyond"}
    assert all(c.source for c in C.claims.values() if c.kind == "source")
