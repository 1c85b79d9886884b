"""Unit tests for nnlearn.studies.how_networks_learn (chapter: how feed-forward networks learn)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from nnlearn.ensemble import Ensemble, train_ensemble
from nnlearn.models import MLP
from nnlearn.studies import how_networks_learn as sp

# ----------------------------------------------------------------- separation scores


def test_bipartitions_count_and_cover():
    splits = sp.bipartitions([0, 1, 2, 3])
    assert len(splits) == 2**3 - 1
    for a, b in splits:
        assert sorted(a + b) == [0, 1, 2, 3] and a and b and 0 in a
    assert len({frozenset(a) for a, _ in splits}) == len(splits)


def test_bipartitions_bad_input():
    with pytest.raises(ValueError, match="classes"):
        sp.bipartitions([1])
    with pytest.raises(ValueError, match="classes"):
        sp.bipartitions([1, 1])


def test_separation_matches_sklearn_auc_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    acts = np.maximum(
        rng.normal(size=(200, 4)) + y[:, None] * np.array([0.0, 0.5, -1.0, 3.0]), 0
    )  # ReLU ties
    expected = [abs(2 * roc_auc_score(y, acts[:, u]) - 1) for u in range(4)]
    np.testing.assert_allclose(sp.separation_scores(acts, y), expected, atol=1e-12)


def test_separation_batched_and_extremes():
    y = np.array([0, 0, 1, 1])
    acts = torch.tensor([[[0.1, 5.0], [0.2, 5.0], [0.9, 5.0], [0.8, 5.0]]] * 3)  # (3, 4, 2)
    s = sp.separation_scores(acts, y)
    assert s.shape == (3, 2)
    np.testing.assert_allclose(s[:, 0], 1.0)
    np.testing.assert_allclose(s[:, 1], 0.0)


def test_split_scores_finds_the_right_cut():
    y = np.repeat([0, 1, 2, 3], 10)
    unit = np.where(np.isin(y, [0, 2]), 1.0, -1.0) + 0.01 * np.arange(40)
    res = sp.split_scores(unit[:, None], y)
    a, b = res.splits[res.split[0]]
    assert set(a) == {0, 2} and set(b) == {1, 3}
    assert res.score[0] == pytest.approx(1.0)


def test_separation_bad_input():
    with pytest.raises(ValueError, match="labels"):
        sp.separation_scores(np.zeros((5, 2)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="two classes"):
        sp.separation_scores(np.zeros((5, 2)), np.zeros(5, dtype=int))
    with pytest.raises(TypeError, match="labels must be integers"):
        sp.separation_scores(np.zeros((4, 2)), np.array([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(TypeError, match="acts"):
        sp.separation_scores([[0.0]], np.array([0]))


def test_class_gap_and_variance_ratio():
    y = np.array([0, 0, 1, 1])
    acts = np.array([[-1.0], [-1.0], [1.0], [1.0]])
    assert sp.class_gap(acts, y)[0] == pytest.approx(1.0)
    assert sp.within_class_variance_ratio(acts, y) == pytest.approx(0.0)
    mixed = np.array([[-1.0], [1.0], [-1.0], [1.0]])
    assert sp.within_class_variance_ratio(mixed, y) == pytest.approx(1.0)
    # against a one-way ANOVA decomposition: within / total = 1 - R^2 of the class means
    rng = np.random.default_rng(1)
    yy = rng.integers(0, 3, 90)
    a = rng.normal(size=(90, 1)) + yy[:, None]
    fitted = np.array([a[yy == c].mean() for c in yy])[:, None]
    r2 = 1 - ((a - fitted) ** 2).sum() / ((a - a.mean()) ** 2).sum()
    assert sp.within_class_variance_ratio(a, yy) == pytest.approx(1 - r2)
    assert np.isnan(sp.within_class_variance_ratio(np.ones((4, 2)), y))
    with pytest.raises(ValueError, match="exactly two classes"):
        sp.class_gap(np.zeros((3, 1)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="value_range"):
        sp.class_gap(acts, y, value_range=0)


# ----------------------------------------------------------------- activations and snapshots


def test_hidden_activations_match_mlp_and_unflatten_roundtrip():
    ens = Ensemble.from_seeds(lambda s: MLP([6, 4, 3, 2], "tanh", seed=s), [0, 1])
    X = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    acts = sp.hidden_activations(ens.base, ens.params, X)
    ref = ens.member(1).forward_with_activations(X).post
    for a, r in zip(acts, ref):
        torch.testing.assert_close(a[1], r)
    params = sp.unflatten(ens, ens.flat_params())
    for name, p in ens.params.items():
        torch.testing.assert_close(params[name], p.detach())
    with pytest.raises(ValueError, match="flat"):
        sp.unflatten(ens, np.zeros((3, 5)))
    with pytest.raises(TypeError, match="MLP"):
        sp.hidden_activations(torch.nn.Linear(2, 2), ens.params, X)


def test_layer_scores_shapes_and_bad_epochs():
    X = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    ens = Ensemble.from_seeds(lambda s: MLP([5, 4, 4, 2], "tanh", seed=s), [0, 1, 2])
    hist = train_ensemble(ens, X, y, lr=0.05, epochs=3, seeds=[0, 1, 2], snapshot_every=1)
    sc = sp.layer_scores(ens, hist.snapshots, [0, 3], X, y)
    assert sc.separation.shape == sc.gap.shape == sc.variance_ratio.shape == (3, 2, 2)
    assert sc.separation[:, 1].mean() > sc.separation[:, 0].mean()
    with pytest.raises(ValueError, match="epochs"):
        sp.layer_scores(ens, hist.snapshots, [9], X, y)


def test_outgoing_norms_and_uniform_task():
    ens = Ensemble.from_seeds(lambda s: MLP([3, 4, 2], seed=s), [0, 1])
    (norms,) = sp.outgoing_weight_norms(ens.params, 2)
    torch.testing.assert_close(norms[0], ens.params["layers.1.weight"][0].detach().norm(dim=0))
    with pytest.raises(ValueError, match="n_layers"):
        sp.outgoing_weight_norms(ens.params, 1)
    X, y = sp.uniform_random_task(10, 7, seed=3)
    assert X.shape == (10, 7) and X.min() >= 0 and X.max() < 1 and set(np.unique(y)) <= {0, 1}
    np.testing.assert_array_equal(X, sp.uniform_random_task(10, 7, seed=3)[0])
    with pytest.raises(ValueError, match="n_samples"):
        sp.uniform_random_task(1, 7)


def test_separation_grid_keys_and_shapes():
    X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    g = sp.separation_grid(
        X, y, depths=(1,), widths=(3,), activations=("tanh", "relu"), seeds=[0, 1], epochs=2
    )
    assert set(g) == {(1, 3, "tanh"), (1, 3, "relu")}
    assert all(b.shape == (2,) and a.shape == (2,) for b, a in g.values())
    with pytest.raises(ValueError, match="depths"):
        sp.separation_grid(X, y, depths=(0,), widths=(3,), activations=("tanh",), seeds=[0])


def test_strip_plots_draw_and_reject_bad_shapes():
    fig, ax = plt.subplots()
    sp.strip_plot(ax, np.zeros((6, 3)), np.array([0, 1] * 3))
    assert len(ax.collections) == 2
    with pytest.raises(ValueError, match="acts"):
        sp.strip_plot(ax, np.zeros((2, 3, 4)), np.array([0, 1]))
    sp.pixel_strip_plot(
        ax, np.random.default_rng(0).random((4, 16)), np.array([0, 1, 0, 1]), side=4
    )
    with pytest.raises(ValueError, match="X must have shape"):
        sp.pixel_strip_plot(ax, np.zeros((4, 15)), np.array([0, 1, 0, 1]), side=4)
    plt.close(fig)


# ----------------------------------------------------------------- flips


def test_flip_curves_match_direct_evaluation():
    g = torch.Generator().manual_seed(0)
    pattern = torch.tanh(torch.randn(2, 7, generator=g))
    W, b = torch.randn(2, 3, 7, generator=g), torch.randn(2, 3, generator=g)
    orders = sp.random_orders(7, 4, seed=1)
    curves = sp.flip_curves(pattern, W, b, orders)
    assert curves.shape == (2, 4, 8, 3)
    k, r, t = 1, 2, 5
    signs = torch.ones(7)
    signs[orders[r, :t]] = -1
    direct = torch.softmax(W[k] @ (pattern[k] * signs) + b[k], -1)
    torch.testing.assert_close(curves[k, r, t], direct)
    torch.testing.assert_close(
        curves[:, :, 0],
        torch.softmax(torch.einsum("kcu,ku->kc", W, pattern) + b, -1).unsqueeze(1).expand(2, 4, 3),
    )


def test_flip_curves_bad_input():
    p, W, b = torch.ones(3), torch.ones(2, 3), torch.ones(2)
    with pytest.raises(ValueError, match="permutation"):
        sp.flip_curves(p, W, b, torch.tensor([[0, 0, 1]]))
    with pytest.raises(ValueError, match="weight"):
        sp.flip_curves(p, torch.ones(2, 4), b, torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="bias"):
        sp.flip_curves(p, W, torch.ones(3), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="n_orders"):
        sp.random_orders(3, 0, seed=0)


def test_first_crossing():
    c = np.array([[1.0, 0.95, 0.6, 0.4], [1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(sp.first_crossing(c, 0.5), [3, 4])
    np.testing.assert_array_equal(sp.first_crossing(c, 0.9), [2, 4])
    with pytest.raises(ValueError, match="level"):
        sp.first_crossing(c, 1.5)


def test_predicted_flip_fraction_matches_average_over_random_orders():
    # the average logit difference over many random orders is a straight line in k, and the
    # prediction is where that line meets logit(level); cross-check against flip_curves
    g = torch.Generator().manual_seed(0)
    U = 40
    pattern = torch.tanh(torch.randn(U, generator=g)) + 0.3
    W = torch.randn(2, U, generator=g) * 0.5
    W[0] += 0.5
    b = torch.tensor([0.2, -0.1])
    orders = sp.random_orders(U, 4000, seed=1)
    p0 = sp.flip_curves(pattern.double(), W.double(), b.double(), orders)[..., 0]  # (R, U+1)
    mean_logit = torch.log(p0 / (1 - p0)).mean(0).numpy()
    for level in (0.5, 0.9):
        pred = sp.predicted_flip_fraction(pattern, W, b, level) * U
        k_line = np.interp(-np.log(level / (1 - level)), -mean_logit, np.arange(U + 1))
        assert abs(pred - k_line) < 0.5
    np.testing.assert_allclose(
        sp.predicted_flip_fraction(
            pattern[None].repeat(3, 1), W[None].repeat(3, 1, 1), b[None].repeat(3, 1), 0.5
        ).shape,
        (3,),
    )


def test_predicted_flip_fraction_no_bias_crosses_half_at_half():
    pattern = np.array([0.9, -0.8, 0.7, 0.6])
    W = np.array([[1.0, -1.0, 2.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    assert sp.predicted_flip_fraction(pattern, W, np.zeros(2), 0.5) == pytest.approx(0.5)


def test_predicted_flip_fraction_bad_input():
    pattern, W, b = np.ones(4), np.ones((2, 4)), np.zeros(2)
    with pytest.raises(ValueError, match="weight"):
        sp.predicted_flip_fraction(pattern, np.ones((3, 4)), b, 0.5)
    with pytest.raises(ValueError, match="bias"):
        sp.predicted_flip_fraction(pattern, W, np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="level"):
        sp.predicted_flip_fraction(pattern, W, b, 1.0)
    with pytest.raises(TypeError, match="pattern"):
        sp.predicted_flip_fraction([1.0, 2.0], W, b, 0.5)


def test_incoming_weight_norms():
    ens = Ensemble.from_seeds(lambda s: MLP([3, 4, 5, 2], seed=s), [0, 1])
    first, second = sp.incoming_weight_norms(ens.params, 3)
    assert first.shape == (2, 4) and second.shape == (2, 5)
    torch.testing.assert_close(second[1], ens.params["layers.1.weight"][1].detach().norm(dim=1))
    with pytest.raises(ValueError, match="n_layers"):
        sp.incoming_weight_norms(ens.params, 1)


# ----------------------------------------------------------------- templates


def test_template_scores_against_numpy_corrcoef():
    rng = np.random.default_rng(0)
    W, t = rng.normal(size=(2, 3, 20)), rng.normal(size=20)
    expected = [[np.corrcoef(W[i, j], t)[0, 1] for j in range(3)] for i in range(2)]
    np.testing.assert_allclose(sp.template_scores(W, t), expected)
    with pytest.raises(ValueError, match="template"):
        sp.template_scores(W, np.ones(20))
    with pytest.raises(ValueError, match="template must have shape"):
        sp.template_scores(W, t[:5])


def test_class_templates_and_span_fraction():
    X = np.array([[1.0, 0, 0], [3.0, 0, 0], [0, 2.0, 0], [0, 4.0, 0]])
    y = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(sp.class_mean_difference(X, y, 0, 1), [2.0, -3.0, 0.0])
    np.testing.assert_allclose(sp.one_vs_rest_templates(X, y), [[2.0, -3.0, 0.0], [-2.0, 3.0, 0.0]])
    with pytest.raises(ValueError, match="class b=5"):
        sp.class_mean_difference(X, y, 0, 5)
    basis = np.array([[1.0, 0, 0], [1.0, 1.0, 0]])
    np.testing.assert_allclose(
        sp.span_fraction(np.array([[3.0, 4.0, 0], [0, 0, 2.0], [1.0, 0, 1.0]]), basis),
        [1.0, 0.0, 0.5],
    )
    with pytest.raises(ValueError, match="basis"):
        sp.span_fraction(np.ones(3), np.ones((2, 4)))


# ----------------------------------------------------------------- per-example gradients


def _tiny_task():
    rng = np.random.default_rng(0)
    X = rng.random((30, 8)).astype(np.float32)
    y = rng.integers(0, 3, 30).astype(np.int64)
    return X, y


def test_per_example_sgd_changes_are_outer_products_and_match_fit():
    X, y = _tiny_task()
    ens = Ensemble.from_seeds(lambda s: MLP([8, 4, 3], "tanh", seed=s), [0, 1])
    start = ens.member(1)
    rec = sp.per_example_sgd(ens, X, y, steps=12, lr=0.1, seeds=[5, 6], keep_updates=12, max_lag=2)
    assert rec.updates[0].shape == (2, 12, 4, 8) and rec.labels.shape == (2, 12)
    # every change equals -lr * delta * input (outer product) ...
    outer = -0.1 * rec.deltas[0][..., :, None] * rec.inputs[0][..., None, :]
    np.testing.assert_allclose(rec.updates[0], outer, atol=1e-6)
    np.testing.assert_allclose(
        np.abs(rec.cos_input[0][np.abs(rec.deltas[0]) > 1e-6]), 1.0, atol=1e-4
    )
    # ... and member 1 ends where plain one-example SGD of a lone copy ends
    order = torch.randint(len(X), (12,), generator=torch.Generator().manual_seed(6))
    opt = torch.optim.SGD(start.parameters(), lr=0.1)
    for i in order:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(
            start(torch.as_tensor(X[i : i + 1])), torch.as_tensor(y[i : i + 1])
        ).backward()
        opt.step()
    torch.testing.assert_close(
        ens.params["layers.0.weight"][1].detach(),
        start.layers[0].weight.detach(),
        atol=1e-6,
        rtol=1e-5,
    )
    # plain SGD: the whole change is explained by the current input
    np.testing.assert_allclose(np.nanmean(rec.lag_share[0][:, 2:, 0]), 1.0, atol=1e-3)


def test_per_example_sgd_momentum_spreads_over_lags_and_bad_input():
    X, y = _tiny_task()
    ens = Ensemble.from_seeds(lambda s: MLP([8, 4, 3], "tanh", seed=s), [0])
    rec = sp.per_example_sgd(ens, X, y, steps=10, lr=0.1, momentum=0.9, seeds=[0], max_lag=2)
    assert np.nanmean(rec.lag_share[0][:, 2:, 0]) < 0.9
    with pytest.raises(ValueError, match="steps"):
        sp.per_example_sgd(ens, X, y, steps=0, lr=0.1, seeds=[0])
    with pytest.raises(ValueError, match="momentum"):
        sp.per_example_sgd(ens, X, y, steps=2, lr=0.1, momentum=1.0, seeds=[0])
    with pytest.raises(ValueError, match="seeds"):
        sp.per_example_sgd(ens, X, y, steps=2, lr=0.1, seeds=[0, 1])
    with pytest.raises(ValueError, match="y must"):
        sp.per_example_sgd(ens, X, y[:5], steps=2, lr=0.1, seeds=[0])


def test_class_sign_consistency_and_error_spread():
    labels = np.array([[0, 0, 1, 1, 1, 1]])
    deltas = np.array([[[1.0], [2.0], [-1.0], [-1.0], [-1.0], [1.0]]])
    assert sp.class_sign_consistency(deltas, labels)[0] == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="labels"):
        sp.class_sign_consistency(deltas, labels[:, :3])
    d = np.tile(np.arange(1, 11, dtype=float)[None, :, None], (1, 1, 1))
    lab = np.zeros((1, 10), dtype=int)
    expected = np.percentile(np.arange(1, 11), 90) / np.percentile(np.arange(1, 11), 10)
    assert sp.error_spread(d, lab)[0] == pytest.approx(expected)
    with pytest.raises(ValueError, match="at least 5"):
        sp.error_spread(d[:, :3], lab[:, :3])


# ----------------------------------------------------------------- convolutional comparison


def test_stacked_cnn_matches_separate_convolutions():
    net = sp.StackedCNN([0, 1], n_filters=3, n_classes=4)
    x = torch.rand(5, 784, generator=torch.Generator().manual_seed(0))
    out = net(x)
    assert out.shape == (2, 5, 4)
    k = 1
    w = net.conv_weight[3 * k : 3 * k + 3]
    h = torch.nn.functional.max_pool2d(
        torch.relu(
            torch.nn.functional.conv2d(
                x.reshape(-1, 1, 28, 28), w, net.conv_bias[3 * k : 3 * k + 3]
            )
        ),
        2,
    )
    ref = h.flatten(1) @ net.fc_weight[k].T + net.fc_bias[k]
    torch.testing.assert_close(out[k], ref)
    assert net.filters().shape == (2, 3, 5, 5)
    np.testing.assert_array_equal(
        sp.StackedCNN([0, 1], n_filters=3, n_classes=4).filters(), net.filters()
    )
    with pytest.raises(ValueError, match="seeds"):
        sp.StackedCNN([])


def test_train_stacked_cnn_learns_and_rejects_bad_input():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    X = rng.random((64, 784)).astype(np.float32) * 0.1
    X[y == 1, :392] += 0.8
    net = sp.StackedCNN([0, 1], n_filters=2, n_classes=2)
    acc = sp.train_stacked_cnn(net, X, y, epochs=3, batch_size=16, lr=1e-2)
    assert acc.shape == (2,) and (acc > 0.9).all()
    with pytest.raises(ValueError, match="X must be"):
        sp.train_stacked_cnn(net, X[:, :100], y)


def test_edge_scores():
    bank = sp.edge_bank(5)
    assert bank.shape == (8, 5, 5)
    np.testing.assert_allclose(np.linalg.norm(bank.reshape(8, -1), axis=1), 1.0)
    np.testing.assert_allclose(sp.edge_scores(3.0 * bank[2] + 1.0), 1.0)  # scale and offset ignored
    rnd = np.random.default_rng(0).normal(size=(200, 5, 5))
    assert 0.1 < sp.edge_scores(rnd).mean() < 0.5
    with pytest.raises(ValueError, match="square"):
        sp.edge_scores(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="size"):
        sp.edge_bank(2)


def test_class_mean_surrogate_cosine_extremes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(2, 200))
    per_class = rng.normal(size=(3, 4))
    fixed = per_class[labels] * rng.uniform(
        0.5, 2.0, size=(2, 200, 1)
    )  # direction fixed by the class
    np.testing.assert_allclose(
        sp.class_mean_surrogate_cosine(fixed, labels, start=50), 1.0, atol=1e-12
    )
    noise = rng.normal(size=(2, 200, 50))  # unrelated to the class: cosine near 0
    assert np.all(np.abs(sp.class_mean_surrogate_cosine(noise, labels, start=50)) < 0.1)
    flipped = fixed * rng.choice([-1.0, 1.0], size=(2, 200, 1))  # sign not fixed: near 0 too
    assert np.all(np.abs(sp.class_mean_surrogate_cosine(flipped, labels, start=50)) < 0.5)


def test_class_mean_surrogate_cosine_uses_only_earlier_steps():
    labels = np.array([[0, 0, 0]])
    d = np.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    # step 2 is predicted from steps 0-1 only, which point elsewhere: cosine 0; step 1: 1
    np.testing.assert_allclose(sp.class_mean_surrogate_cosine(d, labels, start=1), [0.5])


def test_class_mean_surrogate_cosine_bad_input():
    d, lab = np.zeros((2, 10, 3)), np.zeros((2, 10), dtype=int)
    with pytest.raises(ValueError, match="labels"):
        sp.class_mean_surrogate_cosine(d, lab[:, :5])
    with pytest.raises(ValueError, match="start"):
        sp.class_mean_surrogate_cosine(d, lab, start=0)
    with pytest.raises(ValueError, match="start"):
        sp.class_mean_surrogate_cosine(d, lab, start=10)
    with pytest.raises(ValueError, match="deltas"):
        sp.class_mean_surrogate_cosine(np.zeros((10, 3)), lab)


# ------------------------------------------------------- helpers added for the claims protocol


def test_two_endedness_separates_two_groups_from_a_graded_order():
    y = np.repeat(np.arange(4), 5)
    two_groups = np.where(y < 2, -1.0, 1.0)[:, None] + 0.01 * (y % 2)[:, None]
    graded = y[:, None].astype(float)
    assert sp.two_endedness(two_groups, y)[0] > 0.95
    assert sp.two_endedness(graded, y)[0] == pytest.approx(1 / 3)
    assert sp.two_endedness(np.zeros((20, 1)), y)[0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="labels"):
        sp.two_endedness(graded, y % 2)


def test_oriented_crossing_follows_the_starting_class():
    p1 = np.linspace(0.9, 0.1, 11)  # class 1 starts on top and falls
    curves = np.stack([1 - p1, p1], -1)[None]
    assert sp.oriented_crossing(curves, 0.5)[0] == pytest.approx(0.6)


def test_image_combinations_and_span_null():
    X = np.eye(6)
    combos = sp.image_combinations(X, 4, 3, seed=0)
    assert combos.shape == (4, 6) and ((combos != 0).sum(1) == 3).all()
    with pytest.raises(ValueError, match="n_images"):
        sp.image_combinations(X, 2, 7, seed=0)


def test_smoothed_noise_is_seeded_and_smooth():
    a, b = sp.smoothed_noise(3, seed=1), sp.smoothed_noise(3, seed=1)
    assert a.shape == (3, 5, 5) and np.array_equal(a, b)
    white = np.random.default_rng(0).standard_normal((200, 5, 5))
    assert sp.edge_scores(sp.smoothed_noise(200)).mean() > sp.edge_scores(white).mean()


def test_shift_images_moves_pixels_and_fills_zeros():
    X = np.zeros((1, 784), np.float32)
    X[0, 28 * 10 + 10] = 1
    out = sp.shift_images(X, 2, -1).reshape(28, 28)
    assert out[9, 12] == 1 and out.sum() == 1


def test_member_accuracy_shared_and_per_member_data():
    ens = Ensemble.from_seeds(lambda s: MLP([3, 2], "tanh", seed=s), [0, 1])
    X = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    y = np.zeros(10, int)
    acc = sp.member_accuracy(ens, X, y)
    assert acc.shape == (2,) and ((0 <= acc) & (acc <= 1)).all()
    per = sp.member_accuracy(ens, np.stack([X, X]), np.stack([y, y]))
    assert np.allclose(per, acc)


def test_template_run_and_grad_rms_shapes():
    rng = np.random.default_rng(0)
    X = rng.random((40, 6)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(int)
    run = sp.template_run(
        [6, 3, 2], "tanh", X, y, X[y == 0].mean(0) - X[y == 1].mean(0), [0, 1], epochs=2, lr=1e-2
    )
    assert run["W"].shape == (2, 3, 6) and run["score"].shape == (2, 3)
    g = sp.layer_grad_rms(run["ens"], run["ens"].params, X, y)
    assert g.shape == (2, 1) and (g > 0).all()


def test_random_layer_scores_per_member_data():
    Xr, yr = sp.random_tasks(20, 5, [0, 1])
    ens = Ensemble.from_seeds(lambda s: MLP([5, 4, 4, 2], "tanh", seed=s), [0, 1])
    hist = train_ensemble(
        ens, Xr, yr, optimizer="adam", lr=1e-2, epochs=3, seeds=[0, 1], snapshot_every=1
    )
    sc = sp.random_layer_scores(ens, hist.snapshots, [0, 3], Xr, yr)
    assert sc.separation.shape == (2, 2, 2)
    r, low = sp.dead_unit_stats(
        ens, {k: v.detach().clone() for k, v in ens.params.items()}, Xr, yr, 3
    )
    assert r.shape == (2,) and low.shape == (2,)


def test_declared_claims_are_complete():
    from nnlearn.claims import Claims

    C = Claims("t", title="t", primary="p")
    sp.declare_claims(C)
    kinds = {c.kind for c in C.claims.values()}
    assert kinds == {"source", "identity", "control", "beyond"}
    for c in C.claims.values():
        for k in c.controls:
            assert C.claims[k].kind == "control"
    with pytest.raises(TypeError, match="C must"):
        sp.declare_claims("C")


def test_draft_rule_changes_give_each_old_verdict():
    epochs = [1, 3, 5, 15]
    rng = np.random.default_rng(0)
    lead = np.abs(rng.normal(1.0, 0.1, size=(6, 4)))  # layer 3 leads clearly at every epoch
    gap = np.zeros((6, 4, 2))
    gap[..., 1] = 1.0  # random labels: the last layer separates more too
    scores = sp.LayerScores(epochs, gap.copy(), gap, gap.copy())
    changes = sp.draft_rule_changes(lead, epochs, scores, np.full(6, 0.7), np.full(6, 5.0))
    assert [c["id"] for c in changes] == ["deeper", "deeper", "speedup-premise"]
    assert [c["verdict"] for c in changes] == ["replicated", "replicated", "not replicated"]
    changes = sp.draft_rule_changes(-lead, epochs, scores, np.ones(6), np.ones(6))
    assert [c["verdict"] for c in changes] == ["not replicated", "not replicated", "replicated"]
    with pytest.raises(ValueError, match="epochs"):
        sp.draft_rule_changes(lead, [1, 2, 3, 4], scores, np.ones(6), np.ones(6))
    with pytest.raises(TypeError, match="random_scores"):
        sp.draft_rule_changes(lead, epochs, "scores", np.ones(6), np.ones(6))
