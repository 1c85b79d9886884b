"""Tests for nnlearn.studies.knowledge_localization: exact batched per-example SGD and the study's statistics."""

import numpy as np
import pytest
import torch
from scipy import stats

from nnlearn.models import MLP
from nnlearn.studies import knowledge_localization as loc
from nnlearn.train import per_sample_sgd


def toy_digits(n=80, d=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(1 / 256, 1, size=(n, d)).astype(np.float32)
    X[:, 0] = 1 / 256  # one input that never changes
    digits = rng.choice([1, 7, 6, 8, 3], size=n)
    return X, digits


@pytest.mark.parametrize(
    "activation,loss,output_activation",
    [
        ("softplus", "mse", None),
        ("relu", "ce", None),
        ("sigmoid", "mse", None),
        ("tanh", "ce", None),
        ("softplus", "mse", "softplus"),
        ("sigmoid", "mse", "sigmoid"),
    ],
)
def test_per_example_sgd_matches_core_per_sample_sgd(activation, loss, output_activation):
    X, digits = toy_digits()
    keep = np.isin(digits, [1, 7, 6, 8])
    X, digits = torch.as_tensor(X[keep]), digits[keep]
    target = np.isin(digits, [6, 8]).astype(np.int64)
    n, start = len(X), len(X) // 2
    ref = MLP(
        [X.shape[1], 5, 2],
        activation=activation,
        output_activation=output_activation,
        init="he",
        seed=4,
    )
    tallies = per_sample_sgd(
        ref,
        X,
        torch.as_tensor(target),
        labels=digits,
        groups={"17": [1, 7], "68": [6, 8]},
        lr=0.05,
        loss=loss,
        tally_from=start,
    )
    groups = np.where(np.arange(n) >= start, np.where(np.isin(digits, [1, 7]), 0, 1), -1)
    init = loc.he_params([4], n_in=X.shape[1], hidden=5)
    res = loc.per_example_sgd(
        init,
        X,
        np.arange(n)[None],
        target[None],
        lr=0.05,
        activation=activation,
        output_activation=output_activation,
        loss=loss,
        groups=groups[None],
        n_groups=2,
        chunk=7,
    )
    for mine, theirs in zip(
        loc.PARAM_NAMES, ("layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias")
    ):
        ref_param = dict(ref.named_parameters())[theirs].detach().double()
        torch.testing.assert_close(res.params[mine][0], ref_param, atol=1e-5, rtol=1e-4)
        for g, name in enumerate(("17", "68")):
            torch.testing.assert_close(
                res.tallies[mine][g, 0], tallies[name][theirs].double(), atol=1e-6, rtol=1e-4
            )


def test_chunk_size_and_batching_do_not_change_the_result():
    X, digits = toy_digits(n=60)
    X = torch.as_tensor(X)
    rng = np.random.default_rng(1)
    order = np.stack([rng.permutation(60), np.r_[rng.permutation(60)[:45], -np.ones(15, int)]])
    targets = rng.integers(0, 2, size=order.shape)
    init = loc.he_params([0, 1], n_in=12, hidden=6)
    a = loc.per_example_sgd(init, X, order, targets, lr=[0.1, 0.03], chunk=1)
    b = loc.per_example_sgd(init, X, order, targets, lr=[0.1, 0.03], chunk=16)
    alone = loc.per_example_sgd(
        {k: v[1:] for k, v in init.items()}, X, order[1:, :45], targets[1:, :45], lr=0.03, chunk=5
    )
    for name in loc.PARAM_NAMES:
        torch.testing.assert_close(a.params[name], b.params[name])
        torch.testing.assert_close(a.params[name][1], alone.params[name][0])
    assert not torch.equal(
        init["W1"], a.params["W1"]
    )  # training moved the weights, input untouched


def test_he_params_equal_mlp_init_and_forward_matches_mlp():
    p = loc.he_params([3, 5], n_in=7, hidden=4)
    net = MLP([7, 4, 2], activation="softplus", init="he", seed=5)
    net.load_state_dict(loc.member_params(p, 1))
    x = torch.randn(9, 7)
    torch.testing.assert_close(loc.forward(p, x, "softplus")[1], net(x))
    squashed = MLP([7, 4, 2], activation="softplus", output_activation="sigmoid", init="he", seed=5)
    squashed.load_state_dict(loc.member_params(p, 1))
    torch.testing.assert_close(loc.forward(p, x, "softplus", "sigmoid")[1], squashed(x))
    assert p["b1"].abs().sum() > 0  # biases are He-initialised too


def test_activation_derivatives_match_autograd():
    z = torch.linspace(-4, 4, 41, dtype=torch.float64, requires_grad=True)
    for name, (f, f_prime) in loc.ACTIVATIONS.items():
        (grad,) = torch.autograd.grad(f(z).sum(), z)
        torch.testing.assert_close(f_prime(z.detach()), grad, msg=name)


def test_output_gradient_matches_autograd():
    out = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 1])
    for loss, fn in (
        (
            "mse",
            lambda o: (
                torch.nn.functional.mse_loss(
                    o, torch.nn.functional.one_hot(t, 2).double(), reduction="none"
                )
                .mean(1)
                .sum()
            ),
        ),
        ("ce", lambda o: torch.nn.functional.cross_entropy(o, t, reduction="sum")),
    ):
        (grad,) = torch.autograd.grad(fn(out), out)
        torch.testing.assert_close(loc.output_gradient(out.detach(), t, loss), grad)


def test_split_phases_balances_and_keeps_order():
    X, digits = toy_digits(n=100)
    d = loc.split_phases(X, digits, 50)
    in17 = np.isin(d.digits1, [1, 7])
    assert in17.sum() == (~in17).sum()
    assert set(d.digits2) <= {1, 7, 6, 8} and set(d.digits1) <= {1, 7, 6, 8}
    assert len(d.digits2) == np.isin(digits[50:], [1, 7, 6, 8]).sum()
    torch.testing.assert_close(
        d.X2[0], torch.as_tensor(X[50:][np.isin(digits[50:], [1, 7, 6, 8])][0])
    )


def test_fork_streams_pick_the_right_digits_and_targets():
    digits = np.array([1, 6, 7, 8, 1, 6])
    order, targets = loc.fork_streams(digits)
    assert order.shape == (4, 5)
    np.testing.assert_array_equal(order[0], [0, 1, 3, 4, 5])  # 1 vs 6/8
    np.testing.assert_array_equal(targets[0], [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(order[1], [1, 2, 3, 5, -1])  # 7 vs 6/8, padded
    np.testing.assert_array_equal(order[2], [0, 1, 2, 4, 5])  # 1/7 vs 6
    np.testing.assert_array_equal(order[3], [0, 2, 3, 4, -1])
    np.testing.assert_array_equal(targets[3][:4], [0, 0, 1, 0])


def test_run_localization_shapes_and_constant_input_coincides_with_bias():
    X, digits = toy_digits(n=200, seed=2)
    d = loc.split_phases(X, digits, 80)
    run = loc.run_localization(d, [0, 1], hidden=5, lr=0.05, chunk=8)
    r, q = loc.relative_updating(run), loc.relative_difference(run)
    assert r["W1"].shape == q["W1"].shape == (2, 5, 12)
    assert run.fork_acc.shape == (4, 2) and run.phase1_acc.shape == (2,)
    const = loc.constant_inputs(d.X1.numpy(), d.X2.numpy())
    assert const[0] and const.sum() == 1
    check = loc.cluster_check(
        {k: v[0] for k, v in r.items()}, {k: v[0] for k, v in q.items()}, const
    )
    assert check["max_offset"] < 1e-6
    corr = loc.seed_correlations(run)
    assert corr["weights"].shape == (2,) and np.all(np.abs(corr["weights"]) <= 1)


def test_relative_and_finite_pearson():
    np.testing.assert_allclose(loc.relative([1, 0, 3], [1, 0, 1]), [0.5, np.nan, 0.75])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    assert loc.finite_pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)
    x2 = np.r_[x, np.nan]
    assert loc.finite_pearson(x2, np.r_[y, 1.0]) == pytest.approx(stats.pearsonr(x, y).statistic)


def test_pixel_correlations_match_scipy_per_column():
    rng = np.random.default_rng(0)
    r, q = rng.normal(size=(2, 20, 6)), rng.normal(size=(2, 20, 6))
    r[0, 3, 2] = np.nan
    got = loc.pixel_correlations(r, q)
    assert got.shape == (2, 6)
    for k in range(2):
        for i in range(6):
            ok = np.isfinite(r[k, :, i])
            assert got[k, i] == pytest.approx(stats.pearsonr(r[k, ok, i], q[k, ok, i]).statistic)
    assert np.isnan(loc.pixel_correlations(np.ones((5, 2)), rng.normal(size=(5, 2)))).all()


def test_partial_correlation_matches_regression_residuals():
    rng = np.random.default_rng(3)
    z = rng.normal(size=300)
    x, y = z + rng.normal(size=300), z + 0.5 * rng.normal(size=300)
    res = lambda v: v - np.polyval(np.polyfit(z, v, 1), z)
    assert loc.partial_correlation(x, y, z) == pytest.approx(
        stats.pearsonr(res(x), res(y)).statistic
    )


def test_between_neuron_share_and_ink_share():
    v = np.repeat(np.arange(4.0)[:, None], 5, 1)
    assert loc.between_neuron_share(v) == pytest.approx(1.0)
    v2 = np.tile(np.arange(5.0), (4, 1))
    assert loc.between_neuron_share(v2) == pytest.approx(0.0)
    X = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(loc.ink_share(X, np.array([1, 7, 6])), [1.0, 1 / 3])


def test_pixel_map_summary():
    s = loc.pixel_map_summary(
        np.array([0.5, -0.2, 0.1, 0.3]), np.array([False, False, False, True])
    )
    assert s["share_positive"] == pytest.approx(2 / 3) and s["mean_constant"] == pytest.approx(0.3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"activation": "swish"}, "activation"),
        ({"activation": 3}, "activation"),
        ({"output_activation": "swish"}, "output_activation"),
        ({"loss": "hinge"}, "loss"),
        ({"lr": -1.0}, "lr"),
        ({"chunk": 0}, "chunk"),
        ({"dtype": torch.int32}, "dtype"),
        ({"order": np.array([[0, 99]])}, "order"),
        ({"targets": np.zeros((1, 3), int)}, "targets"),
        ({"groups": np.zeros((1, 2), int), "n_groups": 0}, "groups"),
    ],
)
def test_per_example_sgd_rejects_bad_input(kwargs, match):
    X = torch.rand(5, 4)
    args = {"order": np.array([[0, 1]]), "targets": np.array([[0, 1]])}
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        loc.per_example_sgd(
            loc.he_params([0], n_in=4, hidden=3),
            X,
            args.pop("order"),
            args.pop("targets"),
            **{"lr": 0.1, **args},
        )


def test_other_functions_reject_bad_input():
    with pytest.raises(ValueError, match="params"):
        loc.per_example_sgd(
            {"W1": torch.zeros(1, 2, 3)}, torch.rand(2, 3), np.array([[0]]), np.array([[0]]), lr=0.1
        )
    with pytest.raises(ValueError, match="params"):
        loc.per_example_sgd(
            loc.he_params([0], n_in=4, hidden=3),
            torch.rand(2, 5),
            np.array([[0]]),
            np.array([[0]]),
            lr=0.1,
        )
    with pytest.raises(TypeError, match="X"):
        loc.per_example_sgd(
            loc.he_params([0], n_in=4, hidden=3),
            np.ones((2, 4)),
            np.array([[0]]),
            np.array([[0]]),
            lr=0.1,
        )
    with pytest.raises(ValueError, match="seeds"):
        loc.he_params([])
    with pytest.raises(TypeError, match="hidden"):
        loc.he_params([0], hidden=2.5)
    with pytest.raises(ValueError, match="phase1_datapoints"):
        loc.split_phases(np.zeros((10, 3)), np.ones(10), 10)
    with pytest.raises(ValueError, match="same shape"):
        loc.relative([1, 2], [1])
    with pytest.raises(ValueError, match="non-negative"):
        loc.relative([-1], [1])
    with pytest.raises(ValueError, match="window"):
        loc.relative_updating(None, "first_half")
    with pytest.raises(ValueError, match="share a shape"):
        loc.pixel_correlations(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="digits"):
        loc.ink_share(np.ones((2, 3)), np.array([1, 7]))
    with pytest.raises(ValueError, match="fork"):
        loc.fork_streams(np.array([3, 4]))
    with pytest.raises(ValueError, match="constant"):
        loc.cluster_check(
            {"W1": np.zeros((2, 3)), "b1": np.zeros(2)},
            {"W1": np.zeros((2, 3)), "b1": np.zeros(2)},
            np.zeros(4, bool),
        )


def test_map_agreement_matches_numpy_corrcoef():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(4, 30))
    maps[1] += maps[0]
    keep = np.arange(30) >= 5
    want = np.corrcoef(maps[:, keep])[np.triu_indices(4, 1)]
    np.testing.assert_allclose(loc.map_agreement(maps, keep), want)
    with pytest.raises(ValueError, match="maps"):
        loc.map_agreement(np.zeros((1, 5)))
    with pytest.raises(ValueError, match="keep"):
        loc.map_agreement(maps, np.ones(4, bool))


def test_knot_purity_separates_single_neuron_knots_from_mixed_ones():
    rng = np.random.default_rng(0)
    H, D = 4, 50
    r, q = rng.uniform(size=(H, D)), rng.uniform(size=(H, D))
    constant = np.arange(D) < 30
    r[:, constant] = (np.arange(H) * 0.2 + 0.1)[
        :, None
    ]  # each neuron's constant inputs on one point
    q[:, constant] = 0.5
    got = loc.knot_purity(r, q, constant, bins=50, min_count=10)
    assert (
        got["n_knots"] == H
        and got["purity"] == pytest.approx(1.0)
        and got["constant_share"] == pytest.approx(1.0)
    )
    r[1, constant] = r[0, 0]  # neurons 0 and 1 share a knot of 60 weights
    mixed = loc.knot_purity(r, q, constant, bins=50, min_count=10)
    assert mixed["n_knots"] == H - 1 and mixed["purity"] == pytest.approx(
        90 / 120, abs=0.03
    )  # 30 of the shared 60 are a minority
    assert loc.knot_purity(r, q, constant, bins=50, min_count=1000)["n_knots"] == 0
    with pytest.raises(ValueError, match="constant"):
        loc.knot_purity(r, q, np.ones(3, bool))
    with pytest.raises(TypeError, match="bins"):
        loc.knot_purity(r, q, constant, bins=2.5)


# ------------------------------------------------------------------ the chapter's new pieces


def toy_phases(n=200, seed=2):
    X, digits = toy_digits(n=n, seed=seed)
    return loc.split_phases(X, digits, 80)


def test_mixed_activation_batch_equals_separate_runs():
    d = toy_phases()
    acts, outs = ["softplus", "relu", "sigmoid"], [None, None, "sigmoid"]
    mixed = loc.run_localization(
        d,
        [0, 1, 2],
        hidden=4,
        lr=[0.05, 0.05, 0.2],
        activation=loc.mixed_activation(acts),
        output_activation=loc.mixed_activation(outs),
        shuffle=True,
    )
    for k, (a, o, lr) in enumerate(zip(acts, outs, [0.05, 0.05, 0.2])):
        alone = loc.run_localization(
            d, [k], hidden=4, lr=lr, activation=a, output_activation=o, shuffle=True
        )
        for n in loc.PARAM_NAMES:
            torch.testing.assert_close(mixed.forks[n][:, k], alone.forks[n][:, 0])
            torch.testing.assert_close(mixed.tallies[n][:, k], alone.tallies[n][:, 0])
    assert loc.mixed_activation(["relu", "relu"]) == "relu"


def test_phase1_modes_shuffle_and_untrained():
    d = toy_phases()
    run = loc.run_localization(
        d, [0, 0, 0], hidden=4, lr=0.05, shuffle=True, phase1=["trained", "shuffled", "untrained"]
    )
    for n in loc.PARAM_NAMES:  # no phase 1: the forks start from the initial network
        torch.testing.assert_close(run.phase1[n][2], run.init[n][2].double())
        assert not torch.equal(run.phase1[n][0], run.init[n][0])
    r = loc.relative_updating(run)
    assert np.isfinite(r["b1"]).all() and (r["b1"] > 0).all() and (r["b1"] < 1).all()
    plain = loc.run_localization(d, [0], hidden=4, lr=0.05)
    shuffled = loc.run_localization(d, [0], hidden=4, lr=0.05, shuffle=True)
    assert not torch.equal(plain.forks["W1"], shuffled.forks["W1"])  # the order changed
    with pytest.raises(ValueError, match="phase1"):
        loc.run_localization(d, [0], hidden=4, phase1="frozen")


def test_within_pixel_correlation_removes_pixel_effects():
    rng = np.random.default_rng(3)
    r, q = rng.normal(size=(6, 9)), rng.normal(size=(6, 9))
    shift = rng.normal(size=9) * 100  # anything that depends on the pixel alone
    a = loc.within_pixel_correlation(r + shift, q - 3 * shift)
    rc, qc = r - r.mean(0), q - q.mean(0)
    assert a == pytest.approx(stats.pearsonr(rc.ravel(), qc.ravel()).statistic)
    assert loc.within_pixel_correlation(np.stack([r, r]), np.stack([q, q])).shape == (2,)


def test_plan_statistics_accuracy_and_ablation():
    d = toy_phases()
    plan = loc.plan_members(
        {"a": ("softplus", None, "trained", 0.05, 2), "b": ("relu", None, "shuffled", 0.05, 2)}
    )
    assert plan.slices == {"a": slice(0, 2), "b": slice(2, 4)} and plan.seeds == [0, 1, 0, 1]
    run = loc.run_plan(d, plan)
    ink = loc.ink_share(d.X1.numpy(), d.digits1)
    const = loc.constant_inputs(d.X1.numpy(), d.X2.numpy())
    st = loc.run_statistics(run, ink, ~const)
    assert st["weights"].shape == st["within"].shape == (4,)
    np.testing.assert_allclose(st["weights"], loc.seed_correlations(run)["weights"])
    X, y = toy_digits(n=120, seed=9)
    acc = loc.group_accuracy(run.phase1, X, y, activation=run.activation)
    assert acc.shape == (3, 4) and ((acc >= 0) & (acc <= 1)).all()
    drops = loc.ablation_drops(run, X, y, fraction=0.2)
    assert set(drops) == {"base", "17", "68", "random"} and drops["17"].shape == (2, 4)
    full = loc.ablation_drops(run, X, y, fraction=0.999)  # resetting all: the initial network
    init_acc = loc.group_accuracy(run.init, X, y, activation=run.activation)[1:]
    np.testing.assert_allclose(full["base"] - full["17"], init_acc, atol=0.02)
    cl = loc.cluster_statistics(run, const)
    assert (cl["offset"] < 1e-6).all()
    px = loc.pixel_statistics(st["pixel_map"], const, st["biases"])
    assert (px["edge_gap"] < 1e-6).all()


def test_tune_learning_rates_picks_smallest_rate_within_tolerance():
    d = toy_phases()
    X, y = toy_digits(n=120, seed=9)
    out = loc.tune_learning_rates(
        d, X, y, {"s": ("softplus", None)}, [0.01, 0.1], [0, 1], tolerance=0.99
    )
    assert out["s"]["lr"] == 0.01 and set(out["s"]["acc"]) == {0.01, 0.1}


def test_pearson_p_matches_scipy_and_claims_declare():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)
    res = stats.pearsonr(x, y)
    assert loc.pearson_p([res.statistic], 30)[0] == pytest.approx(res.pvalue)
    from nnlearn.claims import Claims

    C = loc.declare_claims(Claims("t", title="t", primary="p"), ablate=0.05)
    kinds = {c.kind for c in C.claims.values()}
    assert kinds == {"source", "identity", "control", "beyond"}
    assert C.claims["weights"].controls == ("shuffled_raw", "untrained_raw", "ink_raw")


def test_member_params_refuses_negative_and_out_of_range_members():
    p = loc.he_params([0, 1], n_in=4, hidden=3)
    assert loc.member_params(p, 1)["layers.0.weight"].shape == (3, 4)
    for k in (-1, 2):
        with pytest.raises(ValueError, match="k"):
            loc.member_params(p, k)
    with pytest.raises(TypeError, match="k"):
        loc.member_params(p, 1.0)
