"""Tests for nnlearn.gates: training matches the reference ensemble trainer, gates read right."""

import numpy as np
import pytest
import torch

from nnlearn import gates as G
from nnlearn.data.toy import xor_data
from nnlearn.ensemble import Ensemble, train_ensemble
from nnlearn.models import MLP

X_NP, Y_NP = xor_data()
X = torch.tensor(X_NP)
Y = torch.tensor(Y_NP, dtype=torch.float32)[:, None]


def hand_net(w1, b1, w2, b2):
    """One 2-2-1 network from explicit weights, as a (1, 9) row."""
    return G.flatten(torch.tensor([w1], dtype=torch.float32), torch.tensor([b1], dtype=torch.float32),
                     torch.tensor([[w2]], dtype=torch.float32), torch.tensor([[b2]], dtype=torch.float32))


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
    hist = train_ensemble(ens, X_NP, Y_NP, loss="bce", optimizer=optimizer, lr=lr, epochs=150, progress=False)
    runs = G.train_sigmoid_nets(G.init_params(widths, range(5)), widths, X, Y, optimizer=optimizer, lr=lr, epochs=150)
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
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, Y4.expand_as(logits), reduction="none").mean((1, 2)).sum()
    (g,) = torch.autograd.grad(loss, p)
    assert torch.allclose(runs.params, p0 - 0.3 * g, atol=1e-6)


def test_per_run_learning_rates_equal_separate_runs():
    p0 = G.init_params((2, 2, 1), range(4))
    both = G.train_sigmoid_nets(p0, (2, 2, 1), X, Y, lr=[0.01, 0.01, 0.1, 0.1], epochs=50)
    fast = G.train_sigmoid_nets(p0[2:], (2, 2, 1), X, Y, lr=0.1, epochs=50)
    assert torch.allclose(both.params[2:], fast.params, atol=1e-6)


def test_snapshots_and_records():
    runs = G.train_sigmoid_nets(G.init_params((2, 2, 1), range(3)), (2, 2, 1), X, Y, epochs=20, record_every=5, snapshot_every=10)
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
        fns = {"and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
               "nand": lambda a, b: 1 - (a & b), "nor": lambda a, b: 1 - (a | b),
               "a implies b": lambda a, b: (1 - a) | b, "b implies a": lambda a, b: a | (1 - b),
               "a and not b": lambda a, b: a & (1 - b), "b and not a": lambda a, b: b & (1 - a)}
        if name in fns:
            assert bits == [fns[name](a, b) for a in (0, 1) for b in (0, 1)], name


def test_canonical_order_keeps_function_and_sorts():
    p = G.train_sigmoid_nets(G.init_params((2, 3, 1), range(20)), (2, 3, 1), X, Y, lr=0.05, epochs=300).params
    c = G.canonical_order(p, (2, 3, 1))
    assert torch.allclose(G.forward(p, (2, 3, 1), X)[1], G.forward(c, (2, 3, 1), X)[1], atol=1e-5)
    codes = G.hidden_gates(c, (2, 3, 1))
    assert (np.diff(codes, axis=1) >= 0).all()


def test_removal_masks_match_explicit_zeroing():
    p = G.train_sigmoid_nets(G.init_params((2, 3, 1), range(10)), (2, 3, 1), X, Y, lr=0.05, epochs=300).params
    batched = G.removal_accuracy(p, (2, 3, 1), X, Y_NP, G.single_removal_masks(3))
    for unit in range(3):
        W1, b1, W2, b2 = (t.clone() for t in G.unflatten(p, (2, 3, 1)))
        W2[:, :, unit] = 0
        assert np.array_equal(batched[unit], G.accuracy(G.flatten(W1, b1, W2, b2), (2, 3, 1), X, Y_NP))


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
    assert G.accuracy(G.merge_units(p, (2, 3, 1), 0, drop=2, keep=1, factor=2.0), (2, 3, 1), X, Y_NP)[0] == 1
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
    swapped = hand_net([[-20, -20], [-20, -20]], [10, 30], [-20, 20], -10)   # nor, nand order
    assert G.gate_structure(swapped, (2, 2, 1)) != G.gate_structure(NAND_NOR, (2, 2, 1))
    assert G.canonical_structure(swapped, (2, 2, 1)) == G.canonical_structure(NAND_NOR, (2, 2, 1))


def test_block_null_vectors_span_the_covariance_null_space():
    from scipy.linalg import null_space, subspace_angles
    X4, _ = G.three_xor_data()
    big = G.splice_xor_nets(NAND_NOR.repeat(3, 1).reshape(1, 3, 9))
    acts = G.activation_matrix(big, (4, 6, 3), X4)[0].astype(float)
    vecs = G.block_null_vectors(acts)
    assert vecs.shape == (9, 3) and np.allclose(np.linalg.norm(vecs, axis=0), 1)
    assert vecs[6:, 0].tolist() == [vecs[6, 0], 0.0, 0.0] and (vecs[2:6, 0] == 0).all()   # block 0 only
    null = null_space(np.cov(acts.T), rcond=1e-6)
    assert null.shape[1] == 3 and np.degrees(subspace_angles(vecs, null)).max() < 1.0
    with pytest.raises(ValueError, match="acts"):
        G.block_null_vectors(np.zeros((15, 9)))


def test_count_before_largest_gap():
    assert G.count_before_largest_gap([1.0, 0.9, 0.5, 1e-6, 1e-7]) == 3
    assert G.count_before_largest_gap(np.array([[1.0, 1e-3, 1e-4], [1.0, 0.9, 1e-5]])).tolist() == [1, 2]
    with pytest.raises(ValueError, match="values"):
        G.count_before_largest_gap([0.1, 1.0])


def test_smallest_sufficient_subset():
    assert G.smallest_sufficient_subset(NAND_NOR, (2, 2, 1), X, Y_NP).tolist() == [2]
    W1 = torch.tensor([[[-20.0, -20.0], [-20.0, -20.0], [-20.0, -20.0]]])
    split = G.flatten(W1, torch.tensor([[10.0, 30.0, 30.0]]), torch.tensor([[[-20.0, 10.0, 10.0]]]), torch.tensor([[-10.0]]))
    assert G.smallest_sufficient_subset(split, (2, 3, 1), X, Y_NP).tolist() == [3]   # the split gate needs both halves
    spare = G.flatten(W1, torch.tensor([[10.0, 30.0, 30.0]]), torch.tensor([[[-20.0, 20.0, 0.0]]]), torch.tensor([[-10.0]]))
    assert G.smallest_sufficient_subset(spare, (2, 3, 1), X, Y_NP).tolist() == [2]   # unit 2 is unused


def test_widget_gate_rows_and_bad_run_index():
    from nnlearn.widgets_xor import gate_rows
    assert gate_rows(NAND_NOR, (2, 2, 1), 0) == [("h1", "nand"), ("h2", "nor"), ("out", "a and not b")]
    with pytest.raises(ValueError, match="k must"):
        gate_rows(NAND_NOR, (2, 2, 1), 3)
