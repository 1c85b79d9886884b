import pytest
import torch

from nnlearn.models import ACTIVATIONS, MLP


def test_shapes_and_capture():
    net = MLP([3, 5, 4, 2], ["relu", "tanh"], seed=0)
    x = torch.randn(7, 3)
    acts = net.forward_with_activations(x)
    assert [a.shape for a in acts.pre] == [(7, 5), (7, 4), (7, 2)]
    assert [a.shape for a in acts.post] == [(7, 5), (7, 4)]
    assert torch.allclose(acts.post[0], torch.relu(acts.pre[0]))
    assert torch.allclose(acts.post[1], torch.tanh(acts.pre[1]))
    assert torch.equal(acts.output, net(x)) and torch.equal(acts.output, acts.pre[-1])


def test_seeded_init_ignores_global_state():
    a = MLP([2, 8, 1], seed=5)
    torch.manual_seed(123)
    torch.rand(10)
    b = MLP([2, 8, 1], seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = MLP([2, 8, 1], seed=6)
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


def test_he_init_scale():
    net = MLP([400, 300, 2], init="he", seed=0)
    w, b = net.layers[0].weight, net.layers[0].bias
    assert (
        abs(w.std().item() - (2 / 400) ** 0.5) < 0.003
        and abs(b.std().item() - (2 / 400) ** 0.5) < 0.02
    )


def test_mask_zero_removes_node_and_passes_gradient():
    net = MLP([2, 4, 1], seed=0)
    x = torch.randn(10, 2)
    mask = torch.tensor([1.0, 0.0, 1.0, 1.0], requires_grad=True)
    out = net(x, masks=[mask])
    w = net.layers[1].weight.detach().clone()
    w[:, 1] = 0
    manual = torch.relu(net.layers[0](x)) @ w.T + net.layers[1].bias
    assert torch.allclose(out, manual)
    out.sum().backward()
    expected = (torch.relu(net.layers[0](x)) * net.layers[1].weight[0]).sum(0)
    assert torch.allclose(mask.grad, expected.detach())


def test_batched_masks_broadcast():
    net = MLP([2, 3, 2], seed=1)
    x = torch.randn(6, 2)
    masks = torch.tensor([[1.0, 1, 1], [0, 1, 0]]).unsqueeze(1)  # (M=2, 1, 3)
    out = net(x, masks=masks)
    assert out.shape == (2, 6, 2)
    assert torch.allclose(out[1], net(x, masks={0: torch.tensor([0.0, 1, 0])}))


def test_forward_stacked_matches_members():
    nets = [MLP([3, 4, 2], "tanh", seed=s) for s in range(3)]
    params = {
        n: torch.stack([dict(m.named_parameters())[n] for m in nets])
        for n, _ in nets[0].named_parameters()
    }
    x = torch.randn(5, 3)
    out = nets[0].forward_stacked(params, x)
    for k, m in enumerate(nets):
        assert torch.allclose(out[k], m(x), atol=1e-6)


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda: MLP([3]), ValueError),
        (lambda: MLP([3, 0, 1]), ValueError),
        (lambda: MLP([3, 4, 1], "swish"), ValueError),
        (lambda: MLP([3, 4, 1], 3), TypeError),
        (lambda: MLP([3, 4, 4, 1], ["relu"]), ValueError),
        (lambda: MLP([3, 4, 1], init="orthogonal"), ValueError),
        (lambda: MLP([3, 4, 1])(torch.randn(2, 4)), ValueError),
        (lambda: MLP([3, 4, 1])([[1.0, 2.0, 3.0]]), TypeError),
        (lambda: MLP([3, 4, 1])(torch.randn(2, 3), masks=[torch.ones(5)]), ValueError),
        (
            lambda: MLP([3, 4, 1])(torch.randn(2, 3), masks=[torch.ones(4), torch.ones(4)]),
            ValueError,
        ),
        (lambda: MLP([3, 4, 1])(torch.randn(2, 3), masks={1: torch.ones(4)}), ValueError),
        (lambda: MLP([3, 4, 1])(torch.randn(2, 3), masks=[[1, 1, 1, 1]]), TypeError),
    ],
)
def test_bad_input(call, exc):
    with pytest.raises(exc):
        call()


def test_every_activation_runs():
    for name in ACTIVATIONS:
        assert MLP([2, 3, 1], name, seed=0)(torch.randn(4, 2)).shape == (4, 1)
