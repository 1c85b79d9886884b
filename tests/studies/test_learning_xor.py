"""Tests for nnlearn.studies.learning_xor: training matches the reference ensemble trainer, gates
read right, embeddings agree with direct computations, bad input is rejected."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from nnlearn.data.toy import xor_data
from nnlearn.ensemble import Ensemble, train_ensemble
from nnlearn.models import MLP
from nnlearn.studies import learning_xor as G

X_NP, Y_NP = xor_data()
X = torch.tensor(X_NP)
Y = torch.tensor(Y_NP, dtype=torch.float32)[:, None]


def hand_net(w1, b1, w2, b2):
    """One 2-2-1 network from explicit weights, as a (1, 9) row."""
    return G.flatten(
        torch.tensor([w1], dtype=torch.float32),
        torch.tensor([b1], dtype=torch.float32),
        torch.tensor([[w2]], dtype=torch.float32),
        torch.tensor([[b2]], dtype=torch.float32),
    )


# nand = sigma(-20a - 20b + 30), nor = sigma(-20a - 20b + 10); out = nand and not nor
NAND_NOR = hand_net([[-20, -20], [-20, -20]], [30, 10], [20, -20], -10)


@pytest.mark.parametrize("widths", [(2, 2, 1), (2, 3, 1)])
def test_init_params_equals_mlp_initialisation(widths):
    ens = Ensemble.from_seeds(lambda s: MLP(list(widths), "sigmoid", seed=s), [3, 7, 11])
    assert torch.equal(G.init_params(widths, [3, 7, 11]), ens.flat_params())


@pytest.mark.parametrize("optimizer,lr", [("adam", 0.05), ("sgd", 0.5)])
def test_training_matches_train_ensemble(optimizer, lr):
    widths = (2, 3, 1)
    ens = Ensemble.from_seeds(lambda s: MLP(list(widths), "sigmoid", seed=s), range(5))
    hist = train_ensemble(
        ens, X_NP, Y_NP, loss="bce", optimizer=optimizer, lr=lr, epochs=150, progress=False
    )
    runs = G.train_sigmoid_nets(
        G.init_params(widths, range(5)), widths, X, Y, optimizer=optimizer, lr=lr, epochs=150
    )
    assert torch.allclose(runs.params, ens.flat_params(), atol=1e-4)
    assert np.allclose(runs.loss[-1], hist.loss[-1], atol=1e-5)
    assert np.array_equal(runs.acc[-1], hist.acc[-1])


def test_training_with_several_outputs_matches_autograd():
    X4, Y4 = G.three_xor_data()
    widths = (4, 6, 3)
    p0 = G.init_params(widths, range(3))
    runs = G.train_sigmoid_nets(p0, widths, X4, Y4, optimizer="sgd", lr=0.3, epochs=1)
    p = p0.clone().requires_grad_(True)
    logits = G.forward(p, widths, X4)[1]
    loss = (
        torch.nn.functional.binary_cross_entropy_with_logits(
            logits, Y4.expand_as(logits), reduction="none"
        )
        .mean((1, 2))
        .sum()
    )
    (g,) = torch.autograd.grad(loss, p)
    assert torch.allclose(runs.params, p0 - 0.3 * g, atol=1e-6)


def test_per_run_learning_rates_equal_separate_runs():
    p0 = G.init_params((2, 2, 1), range(4))
    both = G.train_sigmoid_nets(p0, (2, 2, 1), X, Y, lr=[0.01, 0.01, 0.1, 0.1], epochs=50)
    fast = G.train_sigmoid_nets(p0[2:], (2, 2, 1), X, Y, lr=0.1, epochs=50)
    assert torch.allclose(both.params[2:], fast.params, atol=1e-6)


def test_snapshots_and_records():
    runs = G.train_sigmoid_nets(
        G.init_params((2, 2, 1), range(3)),
        (2, 2, 1),
        X,
        Y,
        epochs=20,
        record_every=5,
        snapshot_every=10,
    )
    assert list(runs.record_epochs) == [0, 5, 10, 15, 20]
    assert runs.snapshots.shape == (3, 3, 9) and list(runs.snapshot_epochs) == [0, 10, 20]
    assert np.allclose(runs.snapshots[-1], runs.params.numpy())


def test_double_sigmoid_bug_has_a_loss_floor():
    runs = G.train_sigmoid_nets(NAND_NOR, (2, 2, 1), X, Y, epochs=1, double_sigmoid=True)
    floor = np.mean([np.log1p(np.exp(-1.0)), np.log(2.0)])
    assert runs.acc[-1][0] == 1 and runs.loss[-1][0] >= floor - 1e-4


def test_hand_built_gates_are_read():
    assert G.gate_structure(NAND_NOR, (2, 2, 1)) == ["nand, nor -> a and not b"]
    assert G.accuracy(NAND_NOR, (2, 2, 1), X, Y_NP)[0] == 1


def test_gate_names_match_python_truth_tables():
    for code, name in G.GATE_NAMES.items():
        bits = [int(b) for b in format(code, "04b")]
        fns = {
            "and": lambda a, b: a & b,
            "or": lambda a, b: a | b,
            "xor": lambda a, b: a ^ b,
            "nand": lambda a, b: 1 - (a & b),
            "nor": lambda a, b: 1 - (a | b),
            "a implies b": lambda a, b: (1 - a) | b,
            "b implies a": lambda a, b: a | (1 - b),
            "a and not b": lambda a, b: a & (1 - b),
            "b and not a": lambda a, b: b & (1 - a),
        }
        if name in fns:
            assert bits == [fns[name](a, b) for a in (0, 1) for b in (0, 1)], name


def test_canonical_order_keeps_function_and_sorts():
    p = G.train_sigmoid_nets(
        G.init_params((2, 3, 1), range(20)), (2, 3, 1), X, Y, lr=0.05, epochs=300
    ).params
    c = G.canonical_order(p, (2, 3, 1))
    assert torch.allclose(G.forward(p, (2, 3, 1), X)[1], G.forward(c, (2, 3, 1), X)[1], atol=1e-5)
    codes = G.hidden_gates(c, (2, 3, 1))
    assert (np.diff(codes, axis=1) >= 0).all()


def test_removal_masks_match_explicit_zeroing():
    p = G.train_sigmoid_nets(
        G.init_params((2, 3, 1), range(10)), (2, 3, 1), X, Y, lr=0.05, epochs=300
    ).params
    batched = G.removal_accuracy(p, (2, 3, 1), X, Y_NP, G.single_removal_masks(3))
    for unit in range(3):
        W1, b1, W2, b2 = (t.clone() for t in G.unflatten(p, (2, 3, 1)))
        W2[:, :, unit] = 0
        assert np.array_equal(
            batched[unit], G.accuracy(G.flatten(W1, b1, W2, b2), (2, 3, 1), X, Y_NP)
        )


def test_split_pair_found_and_repaired():
    # nand split over units 1 and 2, each with half the outgoing weight
    W1 = torch.tensor([[[-20.0, -20.0], [-20.0, -20.0], [-20.0, -20.0]]])
    b1 = torch.tensor([[10.0, 30.0, 30.0]])
    W2 = torch.tensor([[[-20.0, 10.0, 10.0]]])
    p = G.flatten(W1, b1, W2, torch.tensor([[-10.0]]))
    assert G.accuracy(p, (2, 3, 1), X, Y_NP)[0] == 1
    assert G.split_pairs(p, (2, 3, 1)) == [[(1, 2)]]
    removed = G.merge_units(p, (2, 3, 1), 0, drop=2, keep=1, factor=1.0)
    assert G.accuracy(removed, (2, 3, 1), X, Y_NP)[0] < 1
    assert (
        G.accuracy(G.merge_units(p, (2, 3, 1), 0, drop=2, keep=1, factor=2.0), (2, 3, 1), X, Y_NP)[
            0
        ]
        == 1
    )
    assert G.accuracy(G.merge_units(p, (2, 3, 1), 0, drop=2, keep=1), (2, 3, 1), X, Y_NP)[0] == 1


def test_keep_masks_cover_all_subsets():
    masks, subsets = G.keep_masks(4, 2)
    assert masks.shape == (6, 1, 1, 4) and len(set(subsets)) == 6
    assert (masks.sum(-1) == 2).all()


def test_splice_then_extract_round_trips():
    small = G.init_params((2, 2, 1), range(6)).reshape(2, 3, 9)
    big = G.splice_xor_nets(small)
    for m in range(3):
        assert torch.equal(G.extract_xor_net(big, m), small[:, m])
    assert np.all(G.off_block_weight(big) == 0)


def test_spliced_net_computes_three_xors():
    small = NAND_NOR.repeat(3, 1).reshape(1, 3, 9)
    big = G.splice_xor_nets(small)
    X4, Y4 = G.three_xor_data()
    assert G.accuracy(big, (4, 6, 3), X4, Y4)[0] == 1


def test_within_module_fit_is_one_for_saturated_blocks():
    X4, _ = G.three_xor_data()
    big = G.splice_xor_nets(NAND_NOR.repeat(3, 1).reshape(1, 3, 9))
    acts = G.activation_matrix(big, (4, 6, 3), X4)[0]
    assert np.all(G.within_module_fit(acts) > 0.999)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="widths"):
        G.init_params((2, 2), [0])
    with pytest.raises(ValueError, match="params"):
        G.forward(torch.zeros(3, 8), (2, 2, 1), X)
    with pytest.raises(TypeError, match="params"):
        G.forward([1, 2], (2, 2, 1), X)
    with pytest.raises(ValueError, match="optimizer"):
        G.train_sigmoid_nets(NAND_NOR, (2, 2, 1), X, Y, optimizer="rmsprop")
    with pytest.raises(ValueError, match="lr"):
        G.train_sigmoid_nets(NAND_NOR, (2, 2, 1), X, Y, lr=-1.0)
    with pytest.raises(ValueError, match="lr"):
        G.train_sigmoid_nets(NAND_NOR, (2, 2, 1), X, Y, lr=[0.1, 0.2])
    with pytest.raises(ValueError, match="epochs"):
        G.train_sigmoid_nets(NAND_NOR, (2, 2, 1), X, Y, epochs=0)
    with pytest.raises(ValueError, match="Y"):
        G.train_sigmoid_nets(NAND_NOR, (2, 2, 1), X, Y[:3])
    with pytest.raises(ValueError, match="masks"):
        G.removal_accuracy(NAND_NOR, (2, 2, 1), X, Y_NP, torch.ones(2, 2))
    with pytest.raises(ValueError, match="code"):
        G.gate_name(16)
    with pytest.raises(ValueError, match="bits"):
        G.truth_code([0, 2])
    with pytest.raises(ValueError, match="drop and keep"):
        G.merge_units(NAND_NOR, (2, 2, 1), 0, drop=1, keep=1)
    with pytest.raises(ValueError, match="small"):
        G.splice_xor_nets(torch.zeros(2, 2, 9))
    with pytest.raises(ValueError, match="m must"):
        G.extract_xor_net(torch.zeros(1, 51), 3)
    with pytest.raises(ValueError, match="acts"):
        G.within_module_fit(np.zeros((16, 8)))


def test_hidden_collision():
    assert not G.hidden_collision(NAND_NOR, (2, 2, 1), Y_NP)[0]
    # both hidden units compute "a": inputs 00 and 01 (targets 0 and 1) collide
    p = hand_net([[20, 0], [20, 0]], [-10, -10], [1, 1], 0)
    assert G.hidden_collision(p, (2, 2, 1), Y_NP)[0]
    with pytest.raises(ValueError, match="y must"):
        G.hidden_collision(p, (2, 2, 1), [0, 1])


def test_normal_init_and_bad_scheme():
    p = G.init_params((2, 2, 1), [0, 1], scheme="normal")
    assert p.shape == (2, 9) and torch.equal(p, G.init_params((2, 2, 1), [0, 1], scheme="normal"))
    assert not torch.equal(p, G.init_params((2, 2, 1), [0, 1]))
    with pytest.raises(ValueError, match="scheme"):
        G.init_params((2, 2, 1), [0], scheme="xavier")


def test_perturb_params_moves_by_radius():
    p = G.init_params((2, 2, 1), range(5))
    q = G.perturb_params(p, 0.3, seed=1)
    assert torch.allclose((q - p).norm(dim=1), torch.full((5,), 0.3), atol=1e-5)
    assert torch.equal(q, G.perturb_params(p, 0.3, seed=1))
    with pytest.raises(ValueError, match="radius"):
        G.perturb_params(p, -1.0, seed=0)
    with pytest.raises(ValueError, match="params"):
        G.perturb_params(p[0], 0.1, seed=0)


def test_canonical_structure_reads_twins_the_same():
    swapped = hand_net([[-20, -20], [-20, -20]], [10, 30], [-20, 20], -10)  # nor, nand order
    assert G.gate_structure(swapped, (2, 2, 1)) != G.gate_structure(NAND_NOR, (2, 2, 1))
    assert G.canonical_structure(swapped, (2, 2, 1)) == G.canonical_structure(NAND_NOR, (2, 2, 1))


def test_block_null_vectors_span_the_covariance_null_space():
    from scipy.linalg import null_space, subspace_angles

    X4, _ = G.three_xor_data()
    big = G.splice_xor_nets(NAND_NOR.repeat(3, 1).reshape(1, 3, 9))
    acts = G.activation_matrix(big, (4, 6, 3), X4)[0].astype(float)
    vecs = G.block_null_vectors(acts)
    assert vecs.shape == (9, 3) and np.allclose(np.linalg.norm(vecs, axis=0), 1)
    assert (
        vecs[6:, 0].tolist() == [vecs[6, 0], 0.0, 0.0] and (vecs[2:6, 0] == 0).all()
    )  # block 0 only
    null = null_space(np.cov(acts.T), rcond=1e-6)
    assert null.shape[1] == 3 and np.degrees(subspace_angles(vecs, null)).max() < 1.0
    with pytest.raises(ValueError, match="acts"):
        G.block_null_vectors(np.zeros((15, 9)))


def test_count_before_largest_gap():
    assert G.count_before_largest_gap([1.0, 0.9, 0.5, 1e-6, 1e-7]) == 3
    assert G.count_before_largest_gap(np.array([[1.0, 1e-3, 1e-4], [1.0, 0.9, 1e-5]])).tolist() == [
        1,
        2,
    ]
    with pytest.raises(ValueError, match="values"):
        G.count_before_largest_gap([0.1, 1.0])


def test_smallest_sufficient_subset():
    assert G.smallest_sufficient_subset(NAND_NOR, (2, 2, 1), X, Y_NP).tolist() == [2]
    W1 = torch.tensor([[[-20.0, -20.0], [-20.0, -20.0], [-20.0, -20.0]]])
    split = G.flatten(
        W1,
        torch.tensor([[10.0, 30.0, 30.0]]),
        torch.tensor([[[-20.0, 10.0, 10.0]]]),
        torch.tensor([[-10.0]]),
    )
    assert G.smallest_sufficient_subset(split, (2, 3, 1), X, Y_NP).tolist() == [
        3
    ]  # the split gate needs both halves
    spare = G.flatten(
        W1,
        torch.tensor([[10.0, 30.0, 30.0]]),
        torch.tensor([[[-20.0, 20.0, 0.0]]]),
        torch.tensor([[-10.0]]),
    )
    assert G.smallest_sufficient_subset(spare, (2, 3, 1), X, Y_NP).tolist() == [
        2
    ]  # unit 2 is unused


def test_widget_gate_rows_and_bad_run_index():
    from nnlearn.studies.learning_xor import gate_rows

    assert gate_rows(NAND_NOR, (2, 2, 1), 0) == [
        ("h1", "nand"),
        ("h2", "nor"),
        ("out", "a and not b"),
    ]
    with pytest.raises(ValueError, match="k must"):
        gate_rows(NAND_NOR, (2, 2, 1), 3)


def blobs(seed=0, n=30):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * 5, [10.0] * 5, [-10.0] + [0.0] * 4])
    labels = np.repeat(np.arange(3), n)
    return centres[labels] + rng.normal(0, 0.5, (3 * n, 5)), labels


def test_kmeans_recovers_blobs_and_best_k_is_three():
    points, labels = blobs()
    assert G.cluster_agreement(G.kmeans_labels(points, 3, seed=0), labels) == pytest.approx(1.0)
    k, scores = G.best_k(points, range(2, 6), seed=0)
    assert k == 3 and set(scores) == {2, 3, 4, 5}


def test_tsne_is_seeded_and_keeps_blobs():
    points, labels = blobs()
    a, b = G.tsne_embed(points, seed=1), G.tsne_embed(points, seed=1)
    assert a.shape == (90, 2) and np.allclose(a, b)
    assert G.cluster_agreement(G.kmeans_labels(a, 3, seed=0), labels) > 0.95
    assert G.neighbourhood_kept(points, a) > 0.9


def test_pca_projection_of_a_line_is_exact():
    t = np.linspace(-1, 1, 20)
    points = np.outer(t, [1.0, 2.0, 2.0])
    coords, explained = G.pca_embed(points, 1)
    assert explained[0] == pytest.approx(1.0)
    assert np.allclose(np.abs(coords[:, 0]), np.abs(t) * 3.0, atol=1e-6)


def test_distance_correlation_of_a_scaled_copy_is_one():
    points, _ = blobs()
    rho, p = G.distance_correlation(points, 3 * points + 1)
    assert rho == pytest.approx(1.0) and p < 1e-6


def test_nearest_neighbour_agreement_matches_brute_force():
    points, labels = blobs(seed=2, n=10)
    d = cdist(points, points)
    np.fill_diagonal(d, np.inf)
    assert np.array_equal(
        G.nearest_neighbour_agreement(points, labels), labels[d.argmin(1)] == labels
    )


def test_chance_agreement_counts_pairs():
    assert G.chance_agreement([0, 0, 1, 1]) == pytest.approx(4 / 12)  # 4 of 12 ordered pairs match
    assert G.chance_agreement([5, 5, 5]) == pytest.approx(1.0)


def test_bad_embedding_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="points"):
        G.tsne_embed(np.zeros(5), seed=0)
    with pytest.raises(ValueError, match="seed"):
        G.tsne_embed(np.zeros((10, 2)), seed=-1)
    with pytest.raises(ValueError, match="NaN"):
        G.pca_embed(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="n_clusters"):
        G.kmeans_labels(np.zeros((4, 2)), 5, seed=0)
    with pytest.raises(ValueError, match="labels_a"):
        G.cluster_agreement([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="same runs"):
        G.distance_correlation(np.zeros((5, 2)), np.zeros((6, 2)))
    with pytest.raises(ValueError, match="outcome"):
        G.nearest_neighbour_agreement(np.zeros((5, 2)), [0, 1])
    with pytest.raises(ValueError, match="k_range"):
        G.best_k(np.zeros((3, 2)), range(5, 6), seed=0)


def test_cluster_purity_ignores_splitting_but_not_mixing():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert G.cluster_purity([0, 0, 1, 1, 2, 2, 3, 3], labels) == pytest.approx(1.0)  # split, pure
    assert G.cluster_purity([0, 1, 0, 1, 0, 1, 0, 1], labels) == pytest.approx(0.0)  # fully mixed
    with pytest.raises(ValueError, match="clusters and labels"):
        G.cluster_purity([0, 1], [0, 1, 1])


# ---------------------------------------------------------------- issue 19: defects, each fixed
def _within(seconds, fn):
    """Run ``fn`` with an alarm, so a hang fails the test instead of stalling the suite."""
    import signal

    def boom(*_):
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("n_labels", [8, 12])
def test_accuracy_rejects_labels_of_the_wrong_length(n_labels):
    with pytest.raises(ValueError, match="y must have shape"):
        G.accuracy(NAND_NOR, (2, 2, 1), X, np.zeros(n_labels))


def test_accuracy_rejects_nan_networks_instead_of_counting_class_0():
    with pytest.raises(ValueError, match="params"):
        G.accuracy(NAND_NOR * float("nan"), (2, 2, 1), X, Y_NP)
    with pytest.raises(ValueError, match="X"):
        G.accuracy(NAND_NOR, (2, 2, 1), X * float("nan"), Y_NP)


@pytest.mark.parametrize("fn", ["within_module_fit", "block_null_vectors"])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_block_fits_reject_non_finite_input_quickly(fn, bad):
    acts = np.zeros((16, 9))
    acts[3, 2] = bad
    with pytest.raises(ValueError, match="acts"):
        _within(5, lambda: getattr(G, fn)(acts))


def test_count_before_largest_gap_rejects_nan():
    with pytest.raises(ValueError, match="values"):
        G.count_before_largest_gap([1.0, np.nan, 0.1])


def test_perturb_params_rejects_infinite_radius():
    with pytest.raises(ValueError, match="radius"):
        G.perturb_params(NAND_NOR, float("inf"), seed=0)


# --------------------------------------------------------------------- new study functions
def test_mean_ablation_equals_folding_the_mean_into_the_bias():
    p = G.train_sigmoid_nets(
        G.init_params((2, 3, 1), range(8)), (2, 3, 1), X, Y, lr=0.05, epochs=300
    ).params
    masks = G.single_removal_masks(3)
    _, logits = G.forward(p, (2, 3, 1), X, masks, ablation="mean")
    hidden, _ = G.forward(p, (2, 3, 1), X)
    for u in range(3):
        W1, b1, W2, b2 = (t.clone() for t in G.unflatten(p, (2, 3, 1)))
        b2 += W2[:, :, u] * hidden[:, :, u].mean(1, keepdim=True)
        W2[:, :, u] = 0
        folded = G.forward(G.flatten(W1, b1, W2, b2), (2, 3, 1), X)[1]
        assert torch.allclose(logits[u], folded, atol=1e-5)
    with pytest.raises(ValueError, match="ablation"):
        G.forward(p, (2, 3, 1), X, masks, ablation="median")


def test_mean_ablation_removes_a_constant_unit_that_zero_ablation_cannot():
    # unit 2 is always on (bias 30) and the output's bias relies on it
    W1 = torch.tensor([[[-20.0, -20.0], [-20.0, -20.0], [0.0, 0.0]]])
    p = G.flatten(
        W1,
        torch.tensor([[30.0, 10.0, 30.0]]),
        torch.tensor([[[20.0, -20.0, -10.0]]]),
        torch.tensor([[0.0]]),
    )
    assert G.accuracy(p, (2, 3, 1), X, Y_NP)[0] == 1
    zero = G.removal_accuracy(p, (2, 3, 1), X, Y_NP, G.single_removal_masks(3), "zero")
    mean = G.removal_accuracy(p, (2, 3, 1), X, Y_NP, G.single_removal_masks(3), "mean")
    assert zero[2, 0] < 1 and mean[2, 0] == 1
    assert G.greedy_core(p, (2, 3, 1), X, Y_NP, "mean").tolist() == [2]
    assert G.greedy_core(p, (2, 3, 1), X, Y_NP, "zero").tolist() == [3]


def test_swap_units_keeps_function_and_twins_have_a_barrier():
    twin = G.swap_units(NAND_NOR, (2, 2, 1))
    assert torch.allclose(G.forward(twin, (2, 2, 1), X)[1], G.forward(NAND_NOR, (2, 2, 1), X)[1])
    losses = G.path_losses(NAND_NOR, twin, (2, 2, 1), X, Y)
    assert losses.shape == (1, 25) and G.path_barrier(losses)[0] > 0.1
    same = G.path_losses(NAND_NOR, NAND_NOR * 1.1, (2, 2, 1), X, Y, path="norm")
    assert G.path_barrier(same)[0] < 1e-3


def test_path_barrier_of_a_chord_is_zero():
    assert G.path_barrier(np.linspace(0, 1, 5)[None]).tolist() == [0.0]
    assert G.path_barrier(np.array([[0.0, 1.0, 0.0]])).tolist() == [1.0]


def test_share_difference_stays_in_bounds():
    d = G.share_difference(10, 10, 0, 10)
    assert d.value == 1 and -1 <= d.lo <= d.hi <= 1


def test_remove_hidden_unit_matches_zeroing_the_unit():
    p = G.init_params((2, 3, 1), range(4))
    small = G.remove_hidden_unit(p, (2, 3, 1), np.array([0, 1, 2, 1]))
    masks = (1 - torch.eye(3))[[0, 1, 2, 1]][:, None, :]
    zeroed = G.forward(p, (2, 3, 1), X, masks)[1]
    assert torch.allclose(G.forward(small, (2, 2, 1), X)[1], zeroed, atol=1e-6)


@pytest.mark.parametrize("layout", ["chain", "star"])
def test_splice_layouts_compute_three_xors(layout):
    big = G.splice_xor_nets(NAND_NOR.repeat(3, 1).reshape(1, 3, 9), layout)
    X4, Y4 = G.three_xor_data(layout)
    assert G.accuracy(big, (4, 6, 3), X4, Y4)[0] == 1
    assert np.all(G.off_block_weight(big, layout) == 0)
    for m in range(3):
        assert torch.equal(G.extract_xor_net(big, m, layout), NAND_NOR)


def test_mse_trainer_matches_autograd():
    p0 = G.init_params((2, 2, 1), range(3))
    fast = G.train_mse_nets(p0, (2, 2, 1), X, Y, optimizer="sgd", lr=0.5, epochs=20)
    q = p0.clone()
    for _ in range(20):
        q.requires_grad_(True)
        out = torch.sigmoid(G.forward(q, (2, 2, 1), X)[1])
        (g,) = torch.autograd.grad(((out - Y) ** 2).mean((1, 2)).sum(), q)
        q = (q - 0.5 * g).detach()
    assert torch.allclose(fast, q, atol=1e-6)


def test_setting_checks_and_describes():
    s = G.Setting("x", lr=0.001)
    assert "adam lr 0.001" in s.describe()
    with pytest.raises(ValueError, match="loss"):
        G.Setting("x", loss="hinge")
    with pytest.raises(ValueError, match="lr"):
        G.Setting("x", lr=float("nan"))
    with pytest.raises(TypeError, match="setting"):
        G.run_setting("adam", (2, 2, 1), [0], X, Y)


def test_claims_declare_and_judge_on_toy_evidence():
    from nnlearn.claims import Claims

    C = Claims("learning-xor-test", title="t", primary="p")
    G.declare_claims(C)
    assert "xor221-75" in C.claims and C.claims["swap-identity"].kind == "identity"
    assert C.judge("swap-identity", 0.0) == "passed"
