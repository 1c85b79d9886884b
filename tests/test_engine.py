"""The batched-training engine: each member equals training it alone, Keras' Adam equals a NumPy
reference, and the chapters' hand-written fast paths agree with an engine configuration."""

import importlib

import numpy as np
import pytest
import torch

from nnlearn import engine
from nnlearn.data import circle_data, xor_data
from nnlearn.ensemble import Ensemble
from nnlearn.models import MLP, CNNStack, MLPStack
from nnlearn.train import fit, per_sample_sgd


def study(slug: str, old: str):
    """A chapter's study module, wherever it lives now."""
    try:
        return importlib.import_module(f"nnlearn.studies.{slug}")
    except ImportError:
        return importlib.import_module(f"nnlearn.{old}")


def member(params, k):
    return {n: t[k] for n, t in params.items()}


def assert_member_equals(params, k, model, atol=1e-5):
    for n, p in model.named_parameters():
        assert torch.allclose(params[n][k], p.detach(), atol=atol), n


# ----------------------------------------------------------------------------- stacks
@pytest.mark.parametrize("init", ["torch", "he", "xavier"])
def test_mlp_stack_init_and_forward_equal_mlp(init):
    stack = MLPStack([3, 5, 4, 2], ["tanh", "relu"], output_activation="sigmoid")
    params = stack.init([4, 9], init=init)
    x = torch.randn(6, 3)
    out = stack(params, x)
    for k, s in enumerate([4, 9]):
        net = MLP(
            [3, 5, 4, 2],
            ["tanh", "relu"],
            output_activation="sigmoid",
            init="default" if init == "torch" else init,
            seed=s,
        )
        assert_member_equals(params, k, net, atol=0)
        assert torch.allclose(out[k], net(x), atol=1e-6)
    per = stack(params, x.expand(2, 6, 3), per_member=True)
    assert torch.allclose(per, out, atol=1e-6)


def test_glorot_init_is_keras_dense_and_does_not_touch_global_rng():
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    p = MLPStack([2, 20, 2]).init([3], init="glorot")
    assert torch.equal(torch.random.get_rng_state(), before)
    nr = study("node_removal", "masks")
    assert_member_equals(p, 0, nr.glorot_uniform_mlp([2, 20, 2], 3), atol=0)
    assert (p["layers.0.weight"].abs() <= (6 / 22) ** 0.5).all() and (p["layers.1.bias"] == 0).all()


def test_masks_remove_nodes_per_member():
    stack = MLPStack([2, 3, 2])
    params = stack.init([0, 1])
    masks = [torch.tensor([[1.0, 0, 1], [0, 1, 1]])]
    x = torch.randn(4, 2)
    out = stack(params, x, masks=masks)
    for k in range(2):
        net = MLP([2, 3, 2], seed=k)
        assert torch.allclose(out[k], net(x, masks=[masks[0][k]]), atol=1e-6)


def test_cnn_stack_per_member_inputs_and_init():
    stack = CNNStack(3, 4, side=12, kernel=3)
    params = stack.init([0, 1, 2])
    x = torch.rand(5, 144)
    shared = stack(params, x)
    assert shared.shape == (3, 5, 4)
    assert torch.allclose(stack(params, x.expand(3, 5, 144), per_member=True), shared, atol=1e-6)
    one = stack({n: t[1:2] for n, t in params.items()}, x)
    assert torch.allclose(one[0], shared[1], atol=1e-6)
    hnl = study("how_networks_learn", "splitting")
    net = hnl.StackedCNN([5, 6], n_filters=8)
    p = CNNStack(8, 10).init([5, 6])
    assert torch.equal(p["conv_weight"].reshape(-1, 1, 5, 5), net.conv_weight.detach())
    assert torch.equal(p["fc_weight"], net.fc_weight.detach())
    xs = torch.rand(3, 784)
    assert torch.allclose(CNNStack(8, 10)(p, xs), net(xs), atol=1e-5)


# ----------------------------------------------------------------------------- equals fit
@pytest.mark.parametrize(
    "optimizer, kw",
    [("sgd", {}), ("sgd", {"momentum": 0.9}), ("adam", {}), ("adam", {"weight_decay": 0.01})],
)
def test_full_batch_members_equal_fit(optimizer, kw):
    X, y = xor_data()
    yf = y.astype(np.float32)
    stack = MLPStack([2, 3, 1], "sigmoid")
    seeds = [0, 1, 2]
    run = engine.train(
        stack,
        stack.init(seeds),
        X,
        yf,
        loss="bce",
        optimizer=optimizer,
        lr=0.1,
        epochs=40,
        progress=False,
        **kw,
    )
    for k, s in enumerate(seeds):
        net = MLP([2, 3, 1], "sigmoid", seed=s)
        h = fit(
            net, X, yf, loss="bce", optimizer=optimizer, lr=0.1, epochs=40, progress=False, **kw
        )
        assert_member_equals(run.params, k, net)
        assert np.allclose(run.loss[:, k], h.loss, atol=1e-6) and np.allclose(run.acc[:, k], h.acc)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_minibatch_per_member_data_and_orders_equal_fit(optimizer):
    data = [circle_data(90, seed=s) for s in (10, 11)]
    X, y = np.stack([d[0] for d in data]), np.stack([d[1] for d in data])
    stack = MLPStack([2, 6, 2])
    run = engine.train(
        stack,
        stack.init([0, 1]),
        X,
        y,
        loss="ce",
        optimizer=optimizer,
        lr=0.05,
        momentum=0.5 if optimizer == "sgd" else 0.0,
        epochs=3,
        batch_size=32,
        seeds=[5, 6],
        progress=False,
    )
    for k in range(2):
        net = MLP([2, 6, 2], seed=k)
        h = fit(
            net,
            data[k][0],
            data[k][1],
            loss="ce",
            optimizer=optimizer,
            lr=0.05,
            momentum=0.5 if optimizer == "sgd" else 0.0,
            epochs=3,
            batch_size=32,
            seed=5 + k,
            progress=False,
        )
        assert_member_equals(run.params, k, net)
        assert np.allclose(run.loss[:, k], h.loss, atol=1e-5)


def test_shared_order_and_per_member_lr_and_mse():
    X, y = circle_data(64, seed=0)
    stack = MLPStack([2, 5, 2], "tanh")
    run = engine.train(
        stack,
        stack.init([0, 1]),
        X,
        y,
        loss="mse",
        optimizer="sgd",
        lr=[0.05, 0.2],
        epochs=2,
        batch_size=16,
        seeds=7,
        progress=False,
    )
    for k, lr in enumerate([0.05, 0.2]):
        net = MLP([2, 5, 2], "tanh", seed=k)
        fit(
            net,
            X,
            y,
            loss="mse",
            optimizer="sgd",
            lr=lr,
            epochs=2,
            batch_size=16,
            seed=7,
            progress=False,
        )
        assert_member_equals(run.params, k, net)


def test_masked_members_equal_masked_fit_and_gradmax_finds_never_updated():
    X, y = circle_data(80, seed=1)
    stack = MLPStack([2, 4, 2])
    masks = [torch.tensor([[1.0, 1, 0, 1], [0, 1, 1, 1]])]
    grad = engine.GradMax()
    run = engine.train(
        stack,
        stack.init([0, 1]),
        X,
        y,
        optimizer="adam",
        lr=0.02,
        epochs=5,
        masks=masks,
        callbacks=[grad],
        progress=False,
    )
    for k in range(2):
        net = MLP([2, 4, 2], seed=k)
        fit(net, X, y, optimizer="adam", lr=0.02, epochs=5, masks=[masks[0][k]], progress=False)
        assert_member_equals(run.params, k, net)
    start = stack.init([0, 1])
    for n in run.params:
        never = grad.value[n] == 0
        assert never.any() == (n != "layers.1.bias")
        assert torch.equal(run.params[n][never], start[n][never])  # no gradient, no move


def test_record_step_snapshots_and_hook_order():
    X, y = xor_data()
    stack = MLPStack([2, 2, 1], "sigmoid")
    calls = []

    class Spy(engine.Callback):
        def on_start(self, s):
            calls.append("start")

        def before_step(self, s):
            calls.append("before")

        def on_step(self, s):
            calls.append("step")

        def on_epoch(self, s):
            calls.append("epoch")

        def on_end(self, s):
            calls.append("end")

    snaps = engine.Snapshots(2, unit="step", members=[1])
    p0 = stack.init(range(3))
    run = engine.train(
        stack,
        p0,
        X,
        y.astype(np.float32),
        loss="bce",
        epochs=5,
        record="step",
        snapshot_every=2,
        callbacks=[Spy(), snaps],
        progress=False,
    )
    assert calls == ["start"] + ["before", "step", "epoch"] * 5 + ["end"]
    assert (
        run.loss.shape == (5, 3)
        and run.snapshot_at == [0, 2, 4]
        and run.snapshots.shape == (3, 3, 9)
    )
    assert snaps.at == [0, 2, 4, 5] and snaps.params[0]["layers.0.weight"].shape == (1, 2, 2)
    assert torch.equal(snaps.params[0]["layers.0.weight"][0], p0["layers.0.weight"][1])
    assert torch.equal(snaps.params[-1]["layers.0.weight"][0], run.params["layers.0.weight"][1])
    full = engine.train(
        stack, p0, X, y.astype(np.float32), loss="bce", epochs=5, record="epoch", progress=False
    )
    assert np.allclose(run.loss[1:], full.loss[:-1], atol=1e-6)  # before step t+1 = after epoch t


# ----------------------------------------------------------------------------- Keras' Adam
def numpy_keras_adam(W, b, X, y, lr, steps, b1=0.9, b2=0.999, eps=1e-7):
    """Keras' Adam on a linear model with mean squared error, written out in NumPy (float64)."""
    theta = [W.astype(np.float64).copy(), b.astype(np.float64).copy()]
    m = [np.zeros_like(t) for t in theta]
    v = [np.zeros_like(t) for t in theta]
    for t in range(1, steps + 1):
        err = X @ theta[0].T + theta[1] - y  # (N, 1)
        grads = [2 * err.T @ X / err.size, 2 * err.sum(0) / err.size]
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        for i, g in enumerate(grads):
            m[i] += (g - m[i]) * (1 - b1)
            v[i] += (g * g - v[i]) * (1 - b2)
            theta[i] -= lr_t * m[i] / (np.sqrt(v[i]) + eps)
    return theta


def test_keras_adam_matches_numpy_reference_and_differs_from_torch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = X @ np.array([[0.5], [-1.0], [2.0]]) * 1e-3 + 1e-3  # tiny gradients: eps placement matters
    stack = MLPStack([3, 1])
    p0 = {n: t.double() for n, t in stack.init([0]).items()}
    keras = engine.train(
        stack,
        p0,
        X,
        y,
        loss="mse",
        optimizer="adam",
        adam="keras",
        lr=0.01,
        epochs=60,
        progress=False,
    )
    W, b = numpy_keras_adam(
        p0["layers.0.weight"][0].numpy(), p0["layers.0.bias"][0].numpy(), X, y, 0.01, 60
    )
    assert np.allclose(keras.params["layers.0.weight"][0].numpy(), W, rtol=0, atol=1e-12)
    assert np.allclose(keras.params["layers.0.bias"][0].numpy(), b, rtol=0, atol=1e-12)
    torch_ = engine.train(
        stack,
        p0,
        X,
        y,
        loss="mse",
        optimizer="adam",
        adam="torch",
        eps=1e-7,
        lr=0.01,
        epochs=60,
        progress=False,
    )
    assert not np.allclose(torch_.params["layers.0.weight"][0].numpy(), W, rtol=0, atol=1e-9)


def test_torch_adam_matches_torch_optim_with_other_eps_and_betas():
    X, y = circle_data(50, seed=2)
    stack = MLPStack([2, 4, 2])
    run = engine.train(
        stack,
        stack.init([3]),
        X,
        y,
        optimizer="adam",
        lr=0.03,
        eps=1e-3,
        betas=(0.8, 0.99),
        epochs=10,
        progress=False,
    )
    net = MLP([2, 4, 2], seed=3)
    opt = torch.optim.Adam(net.parameters(), lr=0.03, eps=1e-3, betas=(0.8, 0.99))
    for _ in range(10):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.tensor(X)), torch.tensor(y)).backward()
        opt.step()
    assert_member_equals(run.params, 0, net, atol=1e-6)


# ----------------------------------------------------------------------------- online SGD
def test_online_sgd_tallies_equal_per_sample_sgd():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3)).astype(np.float32)
    labels = np.array([1, 7, 6, 8, 3] * 6)
    y = np.isin(labels, [6, 8]).astype(np.int64)
    groups = {"17": [1, 7], "68": [6, 8]}
    group_of = np.select([np.isin(labels, [1, 7]), np.isin(labels, [6, 8])], [0, 1], -1)
    orders = np.stack([np.arange(30), rng.permutation(30)])
    stack = MLPStack([3, 4, 2], "softplus")
    tal = engine.Tallies(np.stack([group_of[o] for o in orders]), 2)
    run = engine.train_online(
        stack,
        stack.init([0, 1]),
        X,
        orders,
        y,
        lr=[0.1, 0.05],
        loss="mse",
        callbacks=[tal],
        progress=False,
    )
    for k, lr in enumerate([0.1, 0.05]):
        net = MLP([3, 4, 2], "softplus", seed=k)
        ref = per_sample_sgd(
            net,
            X[orders[k]],
            y[orders[k]],
            labels=labels[orders[k]],
            groups=groups,
            lr=lr,
            loss="mse",
            progress=False,
        )
        assert_member_equals(run.params, k, net, atol=1e-6)
        for g, name in enumerate(groups):
            for n in run.params:
                assert torch.allclose(tal.value[n][g, k], ref[name][n], atol=1e-6)
    assert run.loss.shape == (30, 2)


def test_online_padding_steps_do_nothing():
    X = torch.randn(5, 2)
    stack = MLPStack([2, 3, 2])
    p0 = stack.init([0, 1])
    order = np.array([[0, 1, 2, -1, -1], [0, 1, 2, 3, 4]])
    run = engine.train_online(
        stack, p0, X, order, torch.tensor([0, 1, 0, 1, 0]), lr=0.1, progress=False
    )
    short = engine.train_online(
        stack,
        {n: t[:1] for n, t in p0.items()},
        X,
        order[:1, :3],
        torch.tensor([0, 1, 0, 1, 0]),
        lr=0.1,
        progress=False,
    )
    for n in run.params:
        assert torch.allclose(run.params[n][0], short.params[n][0], atol=1e-7)


# ----------------------------------------------------------------------------- chapter fast paths
@pytest.mark.parametrize(
    "optimizer, lr, double",
    [("adam", 0.05, False), ("sgd", [0.5, 1.0, 2.0, 4.0], False), ("adam", 0.05, True)],
)
def test_learning_xor_k_last_fast_path_agrees_with_engine(optimizer, lr, double):
    G = study("learning_xor", "gates")
    X, Y = G.three_xor_data()
    widths = (4, 6, 3)
    p0 = G.init_params(widths, range(4))
    kw = dict(
        optimizer=optimizer,
        lr=lr,
        epochs=150,
        double_sigmoid=double,
        record_every=7,
        snapshot_every=50,
    )
    fast = G.train_sigmoid_nets(p0, widths, X, Y, **kw)
    general = G.train_sigmoid_nets(p0, widths, X, Y, use_engine=True, **kw)
    assert torch.allclose(
        fast.params, general.params, atol=1e-4
    )  # Adam on tiny gradients magnifies rounding
    assert np.allclose(fast.loss, general.loss, atol=1e-5) and np.array_equal(
        fast.record_epochs, general.record_epochs
    )
    assert np.allclose(fast.acc, general.acc) and np.array_equal(
        fast.snapshot_epochs, general.snapshot_epochs
    )
    assert np.allclose(fast.snapshots, general.snapshots, atol=1e-4)


@pytest.mark.parametrize(
    "activation, loss, out_act",
    [("softplus", "mse", None), ("relu", "ce", None), ("tanh", "mse", "sigmoid")],
)
def test_knowledge_localization_chunked_fast_path_agrees_with_engine(activation, loss, out_act):
    loc = study("knowledge_localization", "localization")
    g = torch.Generator().manual_seed(0)
    X = torch.rand(40, 12, generator=g, dtype=torch.float64)
    rng = np.random.default_rng(1)
    order = np.stack([rng.permutation(40)[:35] for _ in range(3)])
    order[2, 30:] = -1
    targets, groups = order % 2, np.where(order >= 0, order % 3, -1)
    init = loc.he_params(range(3), n_in=12, hidden=6)
    kw = dict(
        lr=np.array([0.05, 0.1, 0.02]),
        activation=activation,
        output_activation=out_act,
        loss=loss,
        groups=groups,
        n_groups=3,
    )
    fast = loc.per_example_sgd(init, X, order, targets, chunk=8, **kw)
    general = loc.per_example_sgd(init, X, order, targets, use_engine=True, **kw)
    for n in loc.PARAM_NAMES:
        assert torch.allclose(fast.params[n], general.params[n], atol=1e-12)
        assert torch.allclose(fast.tallies[n], general.tallies[n], atol=1e-12)
    assert (fast.correct[:, :30] == general.correct[:, :30]).all()


def test_ensemble_from_params_round_trip():
    stack = MLPStack([2, 3, 2])
    p = stack.init([0, 1])
    ens = Ensemble.from_params(MLP([2, 3, 2], seed=0), p)
    assert len(ens) == 2 and torch.equal(
        ens.member(1).layers[0].weight.detach(), p["layers.0.weight"][1]
    )
    x = torch.randn(4, 2)
    assert torch.allclose(ens(x), stack(p, x), atol=1e-6)


# ----------------------------------------------------------------------------- bad input
X0, Y0 = xor_data()
STACK = MLPStack([2, 2, 2])
P0 = STACK.init([0, 1])


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"lr": [0.1, 0.2, 0.3]}, ValueError, "lr"),
        ({"lr": True}, TypeError, "lr"),
        ({"lr": "fast"}, TypeError, "lr"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
        ({"adam": "tensorflow"}, ValueError, "adam"),
        ({"loss": "hinge"}, ValueError, "loss"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"epochs": 2.5}, TypeError, "epochs"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"seeds": [1, 2, 3]}, ValueError, "seeds"),
        ({"eps": 0.0}, ValueError, "eps"),
        ({"momentum": 1.0}, ValueError, "momentum"),
        ({"record": "sometimes"}, ValueError, "record"),
        ({"masks": [torch.ones(3)]}, ValueError, "masks"),
        ({"masks": [[1, 1]]}, TypeError, "masks"),
        ({"callbacks": [print]}, TypeError, "callbacks"),
    ],
)
def test_train_bad_arguments_name_the_argument(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        engine.train(STACK, P0, X0, Y0, progress=False, **kwargs)


def test_bad_data_params_and_streams():
    with pytest.raises(ValueError, match="X and y"):
        engine.train(STACK, P0, X0, Y0[:3], progress=False)
    with pytest.raises(ValueError, match="per-member"):
        engine.train(STACK, P0, np.stack([X0] * 3), np.stack([Y0] * 3), progress=False)
    with pytest.raises(ValueError, match="x must have shape"):
        engine.train(STACK, P0, np.zeros((4, 3), np.float32), Y0, progress=False)
    with pytest.raises(TypeError, match="params"):
        engine.train(STACK, [1, 2], X0, Y0, progress=False)
    with pytest.raises(ValueError, match="init"):
        STACK.init([0], init="orthogonal")
    with pytest.raises(ValueError, match="seeds"):
        STACK.init([])
    with pytest.raises(ValueError, match="order"):
        engine.train_online(
            STACK,
            P0,
            torch.zeros(4, 2),
            np.zeros((3, 2), np.int64),
            torch.zeros(4, dtype=torch.long),
            lr=0.1,
        )
    with pytest.raises(ValueError, match="order"):
        engine.train_online(
            STACK,
            P0,
            torch.zeros(4, 2),
            np.full((2, 2), 4),
            torch.zeros(4, dtype=torch.long),
            lr=0.1,
        )
    with pytest.raises(ValueError, match="targets"):
        engine.train_online(
            STACK,
            P0,
            torch.zeros(4, 2),
            np.zeros((2, 3), np.int64),
            torch.zeros(5, dtype=torch.long),
            lr=0.1,
        )
    with pytest.raises(ValueError, match="groups"):
        engine.Tallies(np.array([[0, 3]]), 2)
    with pytest.raises(ValueError, match="n_filters"):
        CNNStack(0)
