import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from nnlearn.data import circle_data
from nnlearn.ensemble import Ensemble
from nnlearn.models import MLP
from nnlearn.studies import node_removal as M
from nnlearn.train import fit


@pytest.fixture(scope="module")
def nets():
    ens = Ensemble.from_seeds(lambda s: MLP([2, 6, 2], seed=s), [0, 1, 2])
    X, y = circle_data(50, 3)
    return ens, X, y


def test_source_masks_reproduce_the_printed_draws():
    masks = M.source_masks()
    assert set(masks) == {0.25, 0.5, 0.75}
    assert all(m.shape == (1000, 20) and m.dtype == np.float32 for m in masks.values())
    # The source reports 5 all-on masks and 952 distinct masks at p = 0.75, and node 14 alone
    # missing 3 times: all three follow from seed 17 and "rand < p".
    summary = M.mask_summary(masks[0.75])
    assert summary["all_on"] == 5 and summary["distinct"] == 952
    only_14_off = M.single_removal_masks(20)[14]
    assert (masks[0.75] == only_14_off).all(1).sum() == 3


def test_bernoulli_and_single_removal_masks():
    m = M.bernoulli_masks(4000, 10, 0.3, seed=1)
    assert m.shape == (4000, 10) and abs(m.mean() - 0.3) < 0.02
    assert np.array_equal(m, M.bernoulli_masks(4000, 10, 0.3, seed=1))
    s = M.single_removal_masks(4)
    assert np.array_equal(s.sum(1), [3, 3, 3, 3]) and np.all(np.diag(s) == 0)


def test_hypercube_paths_flip_each_node_once():
    paths = M.hypercube_paths(50, 7, 0.5, seed=3)
    assert paths.shape == (50, 8, 7)
    steps = np.abs(np.diff(paths, axis=1)).sum(-1)
    assert np.all(steps == 1)  # one node per step
    assert np.array_equal(paths[:, -1], 1 - paths[:, 0])  # ends at the complement
    assert np.array_equal(np.abs(np.diff(paths, axis=1)).sum(1), np.ones((50, 7)))  # each node once


def test_mask_losses_match_autograd_through_the_model(nets):
    ens, X, y = nets
    masks = M.bernoulli_masks(9, 6, 0.5, seed=0)
    masks[0] = 0.3  # fractional masks work too
    losses, grads = M.mask_losses(M.stacked_params(ens), X, y, masks, chunk=4)
    assert losses.shape == (3, 9) and grads.shape == (3, 9, 6)
    for k in range(3):
        model = ens.member(k)
        m = torch.tensor(masks, requires_grad=True)
        out = model(torch.as_tensor(X), masks=m[:, None, :])  # (9, N, 2)
        per_mask = F.cross_entropy(
            out.transpose(1, 2), torch.as_tensor(y).expand(9, -1), reduction="none"
        ).mean(1)
        per_mask.sum().backward()
        assert np.allclose(losses[k], per_mask.detach().numpy(), atol=1e-5)
        assert np.allclose(grads[k], m.grad.numpy(), atol=1e-5)
    no_grad = M.mask_losses(M.stacked_params(ens), X, y, masks, with_grad=False)
    assert no_grad[1] is None and np.allclose(no_grad[0], losses)


def test_pointwise_grads_average_to_mask_grads(nets):
    ens, X, y = nets
    P = M.stacked_params(ens)
    loss, grad = M.pointwise_mask_grads(P, X, y)
    full_loss, full_grad = M.mask_losses(P, X, y, np.ones((1, 6), np.float32))
    assert np.allclose(loss.mean(1), full_loss[:, 0], atol=1e-6)
    assert np.allclose(grad.mean(1), full_grad[:, 0], atol=1e-6)
    p_in = M.predict_inside(P, X)
    soft = torch.softmax(ens(torch.as_tensor(X)), -1)[..., 0].detach().numpy()
    assert np.allclose(p_in, soft, atol=1e-6)


def test_glorot_uniform_mlp_and_training_match_fit():
    net = M.glorot_uniform_mlp([2, 20, 2], seed=4)
    limit = math.sqrt(6 / 22)
    w_max = float(net.layers[0].weight.detach().abs().max())
    assert 0.8 * limit < w_max <= limit
    assert float(net.layers[1].bias.detach().abs().max()) == 0.0
    ens, X, y = M.train_circle_nets(
        [4, 9], n_train=100, hidden=5, epochs=3, batch_size=32, eps=1e-8
    )
    assert X.shape == (2, 100, 2) and y.shape == (2, 100)
    for k, s in enumerate([4, 9]):
        ref = M.glorot_uniform_mlp([2, 5, 2], seed=s)
        fit(ref, X[k], y[k], loss="ce", optimizer="adam", lr=0.01, epochs=3, batch_size=32, seed=s)
        got = ens.member(k)
        assert all(
            torch.allclose(a, b, atol=1e-5) for a, b in zip(ref.parameters(), got.parameters())
        )


def test_fixed_width_kde_matches_direct_formula():
    v = np.random.default_rng(0).normal(size=300)
    pts = np.linspace(-3, 3, 25)
    direct = stats.norm.pdf((pts[:, None] - v[None, :]) / 0.03).mean(1) / 0.03
    assert np.allclose(M.fixed_width_kde(v, 0.03, pts), direct, rtol=1e-6, atol=1e-9)


def test_normality_and_lag_correlations():
    rng = np.random.default_rng(1)
    normal = M.normality_check(rng.normal(size=2000))
    skewed = M.normality_check(rng.lognormal(size=2000))
    assert normal["p_value"] > 0.001 and skewed["p_value"] < 1e-6 and skewed["skew"] > 1
    walk = np.cumsum(rng.normal(size=(400, 6)), axis=1)
    start, end = M.lag_correlations(walk)
    assert start[0] == pytest.approx(1) and end[0] == pytest.approx(1)
    assert np.all(np.diff(start) < 0)
    assert np.allclose(start, np.corrcoef(walk, rowvar=False)[0])


def test_residualise_and_symmetric_scores(nets):
    ens, X, _ = nets
    x = np.arange(10.0)
    assert np.allclose(M.residualise(3 * x + 2, x), 0, atol=1e-9)
    P = M.stacked_params(ens)
    contrib, _ = M.node_contributions(P, X)
    m = M.bernoulli_masks(20, 6, 0.5, seed=2)
    assert np.allclose(
        M.half_network_deviation(contrib[0], m),
        M.half_network_deviation(contrib[0], 1 - m),
        atol=1e-6,
    )
    assert np.allclose(M.direction_imbalance(P, m), M.direction_imbalance(P, 1 - m), atol=1e-6)


def test_bias_like_nodes_finds_a_constant_node():
    net = MLP([2, 3, 2], seed=0)
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[0.01, 0.0], [1.0, 0.0], [0.0, 0.0]]))
        net.layers[0].bias.copy_(torch.tensor([1.0, 0.0, -1.0]))  # constant, half-plane, dead
    found = M.bias_like_nodes(M.stacked_params(net))
    assert found.tolist() == [[True, False, False]]


def test_text_table_aligns_columns():
    text = M.text_table(["p", "mean"], [[0.25, "1.0"], [0.5, "0.88"]])
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    with pytest.raises(ValueError, match="row 1 has 1 cells"):
        M.text_table(["a", "b"], [[1, 2], [3]])


def test_bad_inputs_raise_clear_errors(nets):
    ens, X, y = nets
    P = M.stacked_params(ens)
    with pytest.raises(ValueError, match="p must lie"):
        M.bernoulli_masks(3, 4, 1.5, seed=0)
    with pytest.raises(TypeError, match="n_paths"):
        M.hypercube_paths(2.5, 4)
    with pytest.raises(ValueError, match="masks must have shape"):
        M.mask_losses(P, X, y, np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match="two-class"):
        M.mask_losses(P, X, np.full(len(y), 2), np.ones((1, 6), np.float32))
    with pytest.raises(ValueError, match="params: missing"):
        M.mask_losses({"layers.0.weight": P["layers.0.weight"]}, X, y, np.ones((1, 6), np.float32))
    with pytest.raises(TypeError, match="params must be a mapping"):
        M.node_contributions([1, 2], X)
    with pytest.raises(ValueError, match="X must have shape"):
        M.node_contributions(P, np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="width must be"):
        M.fixed_width_kde([1.0, 2.0], 0.0, [1.0])
    with pytest.raises(ValueError, match="at least 20"):
        M.normality_check([1.0, 2.0])
    with pytest.raises(ValueError, match="series must have shape"):
        M.lag_correlations(np.ones(5))
    with pytest.raises(TypeError, match="model must be an MLP"):
        M.stacked_params("net")
    with pytest.raises(ValueError, match="seeds must hold"):
        M.train_circle_nets([])
    with pytest.raises(ValueError, match="mask must have shape"):
        M.pointwise_mask_grads(P, X, y, mask=np.ones(3))


def test_mask_losses_accept_one_test_set_per_network(nets):
    ens, X, y = nets
    P = M.stacked_params(ens)
    X2, y2 = circle_data(40, 8)
    Xs, ys = np.stack([X[:40], X2, X[10:50]]), np.stack([y[:40], y2, y[10:50]])
    masks = M.bernoulli_masks(7, 6, 0.5, seed=4)
    losses, grads = M.mask_losses(P, Xs, ys, masks)
    for k in range(3):
        one = {n: t[k : k + 1] for n, t in P.items()}
        lk, gk = M.mask_losses(one, Xs[k], ys[k], masks)
        assert np.allclose(losses[k], lk[0], atol=1e-6) and np.allclose(grads[k], gk[0], atol=1e-6)
    with pytest.raises(ValueError, match="y must have shape"):
        M.mask_losses(P, Xs, ys[:2], masks)


def test_fade_distance_matches_pearson_intervals():
    from nnlearn.stats import pearson_ci

    rng = np.random.default_rng(2)
    base = rng.normal(size=(300, 1))
    series = base * np.linspace(1, -0.2, 12)[None, :] + rng.normal(size=(300, 12)) * 0.5
    slow = next(
        (
            t
            for t in range(1, 12)
            if (lambda e: e.lo <= 0 <= e.hi)(pearson_ci(series[:, 0], series[:, t])[0])
        ),
        12,
    )
    assert M.fade_distance(series) == slow
    r = np.corrcoef(series, rowvar=False)[0]
    assert M.fade_distance(series, below=0.3) == int(np.argmax(r < 0.3))
    assert M.fade_distance(np.cumsum(rng.normal(size=(300, 4)), 1), below=-0.5) == 4  # never fades
    with pytest.raises(ValueError, match="series must have shape"):
        M.fade_distance(np.ones((3, 5)))


def test_trough_ratio_sees_two_peaks_but_not_one():
    rng = np.random.default_rng(3)
    assert abs(M.trough_ratio(rng.normal(-0.05, 0.35, size=20000)) - 1) < 0.05
    two = np.r_[rng.normal(-0.3, 0.1, 5000), rng.normal(0.3, 0.1, 5000)]
    assert M.trough_ratio(two) < 0.2
    with pytest.raises(ValueError, match="n_points must be odd"):
        M.trough_ratio(two, n_points=600)


def test_boxcox_lambda_finds_the_log():
    rng = np.random.default_rng(4)
    lam, lo, hi = M.boxcox_lambda(rng.lognormal(size=3000))
    assert lo <= 0 <= hi and abs(lam) < 0.1
    x = rng.normal(10, 1, size=3000)
    assert M.boxcox_lambda(x)[0] == pytest.approx(stats.boxcox_normmax(x, method="mle"), abs=1e-3)
    with pytest.raises(ValueError, match="positive"):
        M.boxcox_lambda(np.r_[x, -1.0])


def test_class_flip_share_matches_predictions(nets):
    ens, X, _ = nets
    P = M.stacked_params(ens)
    paths = M.hypercube_paths(5, 6, 0.5, seed=1)
    share = M.class_flip_share(P, X, paths, chunk=2)
    assert share.shape == (3, 5, 6)
    for k in range(3):
        one = {n: t[k : k + 1] for n, t in P.items()}
        cls = np.array(
            [[M.predict_inside(one, X, m)[0] < 0.5 for m in path] for path in paths]
        )  # (5, 7, N)
        assert np.allclose(share[k], (cls[:, 1:] != cls[:, :-1]).mean(-1))
    with pytest.raises(ValueError, match="paths must have shape"):
        M.class_flip_share(P, X, paths[:, :, :4])


def test_more_bad_inputs(nets):
    ens, X, _ = nets
    P = M.stacked_params(ens)
    contrib, _ = M.node_contributions(P, X)
    with pytest.raises(ValueError, match="probs"):
        M.source_masks(probs=(0.5, 1.2))
    with pytest.raises(ValueError, match="masks must have shape"):
        M.mask_summary(np.ones(5))
    with pytest.raises(ValueError, match="contrib must be"):
        M.half_network_deviation(contrib[0], np.ones((3, 4)))
    with pytest.raises(ValueError, match="masks must have shape"):
        M.direction_imbalance(P, np.ones((3, 4)))
    with pytest.raises(ValueError, match="max_cv"):
        M.bias_like_nodes(P, max_cv=0)
    with pytest.raises(ValueError, match="covariates must have"):
        M.residualise(np.arange(5.0), np.ones((4, 1)))


# ----------------------------------------------------------------------------- new helpers
def test_joint_prediction_test_matches_one_cell_t_test_and_detects_offsets():
    rng = np.random.default_rng(5)
    runs = rng.normal(size=(40, 1))
    src = np.array([1.3])
    res = M.joint_prediction_test(src, runs)
    # one cell: F = t^2 with t = (x - mean) / (sd sqrt(1 + 1/n)); p is the two-sided t p-value
    t = (src[0] - runs.mean()) / (runs.std(ddof=1) * math.sqrt(1 + 1 / 40))
    assert res["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 39), rel=1e-9)
    assert res["percentile"][0] == pytest.approx(100 * (runs[:, 0] < 1.3).mean())
    many = rng.normal(size=(50, 3))
    assert M.joint_prediction_test(many.mean(0), many)["p_value"] > 0.9
    assert M.joint_prediction_test(many.mean(0) + 4, many)["p_value"] < 1e-3
    with pytest.raises(ValueError, match="more than cells"):
        M.joint_prediction_test([0, 0, 0], rng.normal(size=(4, 3)))
    with pytest.raises(ValueError, match="one value per cell"):
        M.joint_prediction_test([0, 0], many)


def test_bonferroni_inside_uses_the_prediction_interval():
    from nnlearn.stats import prediction_interval

    runs = np.random.default_rng(1).normal(size=(30, 2))
    lo, hi = prediction_interval(runs[:, 0], 1 - 0.05 / 2)
    got = M.bonferroni_inside([hi - 1e-6, hi + 1], runs)
    assert got.tolist() == [True, False]


def test_spectrum_recovers_a_pairwise_function_and_predicts_paths():
    rng = np.random.default_rng(2)
    H = 8
    x_w = rng.normal(size=H)
    pair = rng.normal(size=(H, H))

    def f(m):
        x = 2 * m - 1
        return x @ x_w * 0.3 + np.einsum("mi,ij,mj->m", x, np.triu(pair, 1), x)

    train, test = M.bernoulli_masks(600, H, 0.5, 1), M.bernoulli_masks(400, H, 0.5, 2)
    spec = M.fit_spectrum(train, f(train)[None], test, f(test)[None])
    assert spec["r2"][0] > 0.999 and abs(spec["rest"][0]) < 0.1  # sampling error of the weights
    curve = M.spectrum_path_curve(spec["w1"], spec["w2"], H, rest=spec["rest"])
    paths = M.hypercube_paths(3000, H, 0.5, seed=3)
    vals = f(paths.reshape(-1, H)).reshape(3000, H + 1)
    observed = np.corrcoef(vals, rowvar=False)[0]
    assert np.abs(curve[0] - observed).max() < 0.08
    assert M.walsh_features(train).shape == (600, H + H * (H - 1) // 2)
    with pytest.raises(ValueError, match="0 \\(removed\\) and 1"):
        M.walsh_features(np.full((3, 4), 0.5))


def test_pruning_methods_and_exact_size_masks(nets):
    ens, X, y = nets
    P = M.stacked_params(ens)
    greedy = M.prune_to(P, X, y, 3, "greedy")
    grad = M.prune_to(P, X, y, 3, "gradient")
    assert greedy.shape == (3, 6) and np.all(greedy.sum(1) == 3) and np.all(grad.sum(1) == 3)
    # greedy's first step is the best single removal
    single = M.mask_losses(P, X, y, M.single_removal_masks(6), with_grad=False)[0]
    first = M.prune_to(P, X, y, 5, "greedy")
    assert np.array_equal(first.argmin(1), single.argmin(1))
    m = M.exact_size_masks(50, 7, 3, seed=0)
    assert np.all(m.sum(1) == 3)
    with pytest.raises(ValueError, match="method"):
        M.prune_to(P, X, y, 3, "magic")
    with pytest.raises(ValueError, match="keep"):
        M.prune_to(P, X, y, 9, "greedy")


def test_binned_kde_matches_the_exact_density():
    v = np.random.default_rng(3).normal(0, 0.3, size=4000)
    xs = np.linspace(-1, 1, 201)
    exact = M.fixed_width_kde(v, 0.03, xs)
    assert np.abs(M.binned_kde(v, 0.03, 1.0, 201) - exact).max() < 0.01 * exact.max()


def test_lean_sign_agreement_is_a_share(nets):
    ens, X, y = nets
    share = M.lean_sign_agreement(M.stacked_params(ens), X, y, M.bernoulli_masks(30, 6, 0.5, 0))
    assert share.shape == (3,) and np.all((share >= 0) & (share <= 1))


def test_wiggles_and_surrogates():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=3000), rng.normal(size=3000)
    assert abs(M.wiggle_correlation(a, b, points=np.linspace(-3, 3, 200))) < 0.9
    s = M.smooth_surrogate(a, 0.2, 500, seed=1)
    assert s.shape == (500,) and np.array_equal(s, M.smooth_surrogate(a, 0.2, 500, seed=1))


def test_declared_claims_and_table_report():
    from nnlearn.claims import Claims

    C = Claims("x", title="t", primary="p")
    M.declare_claims(C, n_paths=500)
    assert {"full-loss", "seed17", "complement", "spectrum-r2"} <= set(C.claims)
    assert C.claims["seed17"].kind == "identity" and C.claims["D-explains"].kind == "identity"
    runs = np.random.default_rng(0).normal(1, 0.1, size=(20, 3))
    text, res, src, r = M.table_report({"mean loss": (1.0, 1.1, 0.9)}, {"mean loss": runs})
    assert "joint prediction test" in text and src.shape == (3,) and r.shape == (20, 3)


def test_dropout_training_with_keep_one_is_plain_training():
    plain, X, y = M.train_circle_nets([3, 4], n_train=64, hidden=5, epochs=2)
    drop, X2, _ = M.train_circle_nets_dropout([3, 4], keep=1.0, n_train=64, hidden=5, epochs=2)
    assert torch.equal(X, X2)
    for a, b in zip(M.stacked_params(plain).values(), M.stacked_params(drop).values()):
        assert torch.allclose(a, b, atol=1e-6)
    half, _, _ = M.train_circle_nets_dropout([3, 4], keep=0.5, n_train=64, hidden=5, epochs=2)
    assert not torch.allclose(
        M.stacked_params(half)["layers.0.weight"], M.stacked_params(plain)["layers.0.weight"]
    )
    with pytest.raises(ValueError, match="keep"):
        M.train_circle_nets_dropout([0], keep=0.0)


def test_sweep_summary_and_row(nets):
    ens, X, y = nets
    s = M.sweep_summary(M.stacked_params(ens), X, y, n_masks=60, seed=1)
    assert set(s) == {"mean_loss", "normal", "skew", "trough", "complement", "w1", "w2"}
    assert all(len(v) == 3 for v in s.values())
    row = M.sweep_row("six units", s)
    assert len(row) == len(M.SWEEP_HEAD) and row[0] == "six units"
