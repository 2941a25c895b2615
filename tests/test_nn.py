import copy
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from scdeepclust.nn import (
    ClusteringLayer,
    StackedAutoencoder,
    ZINBAutoencoder,
    ZINBParameters,
    cannot_link_loss,
    kl_divergence,
    must_link_loss,
    target_distribution,
    zinb_nll,
)


def scipy_zinb_nll(x, mu, theta, pi):
    nb = stats.nbinom.pmf(x, theta, theta / (theta + mu))
    lik = np.where(x == 0, pi + (1 - pi) * nb, (1 - pi) * nb)
    return -np.log(lik)


def params(mu, theta, pi):
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return ZINBParameters(t(np.log(mu)), t(theta), t(np.log(pi / (1 - pi))))


def test_zinb_matches_scipy():
    rng = np.random.default_rng(0)
    shape = (50, 40)
    x = rng.poisson(rng.gamma(1.0, 3.0, shape)).astype(np.float64)
    x[rng.random(shape) < 0.4] = 0
    mu = rng.gamma(2.0, 2.0, shape) + 1e-3
    theta = rng.gamma(2.0, 2.0, shape) + 1e-2
    pi = rng.uniform(0.01, 0.9, shape)
    expected = scipy_zinb_nll(x, mu, theta, pi)
    p = params(mu, theta, pi)
    xt = torch.tensor(x, dtype=torch.float32)
    per_entry = zinb_nll(xt, p, reduce=False).numpy()
    np.testing.assert_allclose(per_entry, expected, rtol=2e-4, atol=2e-4)
    assert zinb_nll(xt, p).item() == pytest.approx(expected.mean(), rel=1e-4)


def test_zinb_finite_at_extremes():
    x = torch.tensor([[0.0, 1.0, 5000.0, 0.0]])
    p = ZINBParameters(
        log_mean=torch.tensor([[np.log(1e-5), np.log(1e6), np.log(1e-5), np.log(1e6)]]),
        dispersion=torch.tensor([[1e-4, 1e4, 1e-4, 1e4]]),
        dropout_logits=torch.tensor([[-30.0, 30.0, 0.0, -30.0]]),
    )
    for v in (zinb_nll(x, p), zinb_nll(x, p, reduce=False)):
        assert torch.isfinite(v).all()


def test_autoencoder_shapes_and_ranges():
    model = ZINBAutoencoder(30, encoder_hidden=(16,), latent_dim=4, decoder_hidden=(16,))
    x = torch.randn(8, 30)
    z = model.encode(x)
    assert z.shape == (8, 4)
    p = model.decode(z, torch.full((8,), 2.0))
    assert p.log_mean.shape == p.dispersion.shape == p.dropout_logits.shape == (8, 30)
    assert (p.dispersion >= 1e-4).all() and (p.dispersion <= 1e4).all()
    # size factors scale the mean
    p1 = model.decode(z, torch.ones(8))
    torch.testing.assert_close(p.mean, 2 * p1.mean)


def test_student_t_soft_assignment():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20, 3)).astype(np.float32)
    mu = rng.normal(size=(4, 3)).astype(np.float32)
    layer = ClusteringLayer(torch.from_numpy(mu), alpha=1.0)
    q = layer(torch.from_numpy(z)).detach().numpy()
    d2 = ((z[:, None, :] - mu[None]) ** 2).sum(-1)
    expected = 1.0 / (1.0 + d2)
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(q, expected, rtol=1e-4, atol=1e-6)
    gauss = ClusteringLayer(torch.from_numpy(mu), kernel="gaussian")(torch.from_numpy(z)).detach()
    expected_g = np.exp(-d2 / 2)
    expected_g /= expected_g.sum(1, keepdims=True)
    np.testing.assert_allclose(gauss.numpy(), expected_g, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="kernel"):
        ClusteringLayer(torch.from_numpy(mu), kernel="cauchy")


def test_target_distribution_and_kl():
    q = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    f = q.sum(0)
    w = q**2 / f
    torch.testing.assert_close(target_distribution(q), w / w.sum(1, keepdim=True))
    p = target_distribution(q)
    assert (p[:, 0] > q[:, 0])[[0, 2]].all()  # sharpened towards the dominant cluster
    assert kl_divergence(q, q).item() == pytest.approx(0.0, abs=1e-6)
    expected = (p * (p / q).log()).sum(1).mean()
    assert kl_divergence(p, q).item() == pytest.approx(expected.item(), rel=1e-5)


def test_pairwise_losses():
    a = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    b = torch.tensor([[0.8, 0.2], [0.5, 0.5]])
    same = (a * b).sum(1)
    assert must_link_loss(a, b).item() == pytest.approx(-same.log().mean().item(), rel=1e-6)
    assert cannot_link_loss(a, b).item() == pytest.approx(-(1 - same).log().mean().item(), rel=1e-6)
    # agreeing confident cells: small must-link loss, large cannot-link loss
    assert must_link_loss(a[:1], b[:1]) < cannot_link_loss(a[:1], b[:1])


@pytest.mark.parametrize("transposed", [False, True])
def test_zinb_reduced_loss_has_the_gradient_of_the_per_entry_mean(transposed):
    """Also for parameters held genes x cells and read transposed: their gradients take that
    layout, where the closed form's writes at the non-zero counts went to a copy."""
    rng = np.random.default_rng(3)
    shape = (20, 30)
    counts = torch.tensor(rng.poisson(1.0, shape) * (rng.random(shape) < 0.5), dtype=torch.float32)
    raw = [
        torch.tensor(
            rng.normal(size=shape[::-1] if transposed else shape),
            dtype=torch.float32,
            requires_grad=True,
        )
        for _ in range(3)
    ]

    def grads(reduce):
        read = [r.T if transposed else r for r in raw]
        p = ZINBParameters(read[0] * 1.0, torch.nn.functional.softplus(read[1]), read[2] * 1.0)
        assert p.log_mean.is_contiguous() != transposed
        loss = zinb_nll(counts, p) if reduce else zinb_nll(counts, p, reduce=False).mean()
        return torch.autograd.grad(loss, raw)

    for fast, reference in zip(grads(True), grads(False)):
        torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layout", ["transposed", "all zero"])
def test_zinb_reduced_loss_reads_any_count_layout(layout):
    rng = np.random.default_rng(4)
    counts = torch.tensor(rng.poisson(1.0, (30, 20)) * (rng.random((30, 20)) < 0.5))
    counts = counts.float().T if layout == "transposed" else torch.zeros(20, 30)
    p = ZINBParameters(
        torch.tensor(rng.normal(size=(20, 30)), dtype=torch.float32),
        torch.tensor(rng.uniform(0.2, 5.0, (20, 30)), dtype=torch.float32),
        torch.tensor(rng.normal(size=(20, 30)), dtype=torch.float32),
    )
    reference = zinb_nll(counts.contiguous(), p, reduce=False).mean()
    torch.testing.assert_close(zinb_nll(counts, p), reference, rtol=1e-5, atol=1e-6)


def test_zinb_closed_form_gradient_passes_gradcheck():
    rng = np.random.default_rng(5)
    shape = (6, 7)
    counts = torch.tensor(rng.poisson(2.0, shape) * (rng.random(shape) < 0.6), dtype=torch.float64)
    log_mean = torch.tensor(rng.normal(0.5, 1.0, shape), requires_grad=True)
    theta = torch.tensor(rng.uniform(0.2, 5.0, shape), requires_grad=True)
    logits = torch.tensor(rng.normal(size=shape), requires_grad=True)

    def loss(log_mean, theta, logits):
        return zinb_nll(counts, ZINBParameters(log_mean, theta, logits))

    assert torch.autograd.gradcheck(loss, (log_mean, theta, logits))


def test_zinb_gradient_finite_at_extremes():
    x = torch.tensor([[0.0, 1.0, 5000.0, 0.0, 3.0]])
    raw = [
        torch.tensor([[np.log(1e-5), np.log(1e6), np.log(1e-5), np.log(1e6), 0.0]]),
        torch.tensor([[1e-4, 1e4, 1e-4, 1e4, 1.0]]),
        torch.tensor([[-30.0, 30.0, 0.0, -30.0, 30.0]]),
    ]
    for t in raw:
        t.requires_grad_(True)
    zinb_nll(x, ZINBParameters(*raw)).backward()
    for t in raw:
        assert torch.isfinite(t.grad).all()


def test_adam_is_fused_where_torch_supports_it_and_steps_like_foreach_adam():
    from scdeepclust.train import adam
    from scdeepclust.train._optim import FusedAdam

    torch.manual_seed(0)
    a = torch.nn.Linear(5, 3)
    b = copy.deepcopy(a)
    fast = adam(a.parameters(), lr=1e-2, amsgrad=True)
    assert isinstance(fast, FusedAdam)
    # no fused kernel for other devices: torch's multi-tensor Adam
    elsewhere = adam([torch.nn.Parameter(torch.zeros(3, device="meta"))], lr=1e-2)
    assert isinstance(elsewhere, torch.optim.Adam) and elsewhere.defaults["foreach"]
    plain = torch.optim.Adam(b.parameters(), lr=1e-2, amsgrad=True, foreach=True)
    x = torch.randn(8, 5)
    for _ in range(5):
        for model, opt in ((a, fast), (b, plain)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adadelta"])
def test_vanishing_optimizer_averages_are_zeroed_before_they_turn_subnormal(optimizer):
    """A weight whose gradient was non-zero once and zero since: Adam's first moment (SGD's
    momentum) shrinks by 0.9 per step and after ~800 steps would be subnormal (slow on CPUs);
    the training step zeroes it first and leaves the averages that still matter."""
    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.train import adadelta, adam, sgd
    from scdeepclust.train._loops import _optimizer_step

    w = torch.nn.Parameter(torch.ones(4))
    kept = torch.nn.Parameter(torch.ones(4))
    opt, decaying = {
        "adam": (adam([w, kept], lr=1e-3), "exp_avg"),
        "sgd": (sgd([w, kept], lr=1e-3, momentum=0.9), "momentum_buffer"),
        # rho 0.9 here (0.95 in scDCC) so that 850 steps reach the subnormals
        "adadelta": (adadelta([w, kept], lr=1e-3, rho=0.9), "square_avg"),
    }[optimizer]
    feeder = CellFeeder(RowSource(np.zeros((2, 1), np.float32)), device=torch.device("cpu"))
    for step in range(1, 851):
        grad = 1.0 if step == 1 else 0.0
        _optimizer_step(opt, {"loss": (w * grad).sum() + kept.pow(2).sum()}, feeder, step)
    smallest_normal = torch.finfo(torch.float32).tiny
    for state in opt.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                assert not ((value != 0) & (value.abs() < smallest_normal)).any()
    assert torch.equal(opt.state[w][decaying], torch.zeros(4))
    assert (opt.state[kept][decaying] != 0).all()  # an average still in use stays


def test_target_balance_exponent():
    import torch

    from scdeepclust.nn import target_distribution

    q = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.8, 0.2]])
    f = q.sum(0)
    for balance in (0.0, 0.5, 1.0, 2.0):
        w = q**2 / f**balance
        expected = w / w.sum(1, keepdim=True)
        torch.testing.assert_close(target_distribution(q, balance=balance), expected)
    # DEC's target by default; less balance gives the large cluster more of each cell
    torch.testing.assert_close(target_distribution(q), target_distribution(q, balance=1.0))
    assert (target_distribution(q, balance=0.0)[:, 0] > target_distribution(q)[:, 0]).all()


def test_target_stays_a_distribution_with_strong_balance_and_prior():
    import torch

    from scdeepclust.nn import target_distribution

    # 100,000 cells in 4 clusters: frequency^4 is ~4e17, so q^2 / f^4 sums to far below 1e-8
    gen = torch.Generator().manual_seed(0)
    q = torch.softmax(torch.randn(50, 4, generator=gen) * 2, dim=1)
    frequency = torch.tensor([40_000.0, 30_000.0, 20_000.0, 10_000.0])
    prior = torch.rand(50, 4, generator=gen) ** 20  # down to ~1e-30
    for balance, weights in ((2.0, None), (4.0, None), (4.0, prior), (1.0, prior)):
        log_w = 2 * q.double().log() - balance * frequency.double().log()
        if weights is not None:
            log_w = log_w + weights.double().log()
        expected = torch.softmax(log_w, dim=1).float()
        target = target_distribution(q, frequency, balance, weights)
        torch.testing.assert_close(target.sum(1), torch.ones(50))
        torch.testing.assert_close(target, expected, rtol=1e-4, atol=1e-6)


def test_dropout_masks_drop_at_the_rate_keep_the_mean_and_change_between_calls():
    """Masks sliced from two banks behave as dropout: about p of the entries zeroed, the others
    scaled by 1 / (1 - p), gradients through the kept entries only; the banks come from their
    seed and the slices from their own generator (not the global one), and successive minibatches
    meet other masks."""
    from scdeepclust.nn import DropoutMasks

    def masks_from(seed, offsets_seed=0):
        offsets = torch.Generator().manual_seed(offsets_seed)
        return DropoutMasks(500, 0.2, seed=seed, offsets=offsets, max_rows=400, device="cpu")

    masks = masks_from(3)
    assert masks.rows == 2048
    x = torch.ones(400, 500, requires_grad=True)
    global_state = torch.random.get_rng_state()
    out = masks(x)
    assert torch.equal(torch.random.get_rng_state(), global_state)
    assert torch.equal(out, masks_from(3)(x))
    assert not torch.equal(out, masks_from(4)(x))
    assert not torch.equal(out, masks_from(3, offsets_seed=1)(x))
    assert abs((out == 0).float().mean().item() - 0.2) < 0.01
    assert torch.allclose(out[out != 0], torch.tensor(1.25))
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())
    # the rows of one minibatch differ, and so do the masks of the next minibatch
    kept = (out != 0).float()
    assert (kept[1:] != kept[:-1]).any(dim=1).all()
    assert (masks(x) != out).any(dim=1).float().mean() > 0.99
    with pytest.raises(ValueError, match="exceed"):
        masks(torch.ones(401, 500))


def test_dropout_mask_bank_stays_small_for_wide_inputs(monkeypatch):
    from scdeepclust.nn import _modules
    from scdeepclust.nn._modules import MASK_BANK_MAX_BYTES, DropoutMasks

    offsets = torch.Generator()
    wide = DropoutMasks(20_000, 0.1, seed=0, offsets=offsets, max_rows=256, device="cpu")
    assert 256 <= wide.rows < 2048 and wide.rows * 20_000 * 4 <= MASK_BANK_MAX_BYTES
    # never fewer masks than a minibatch has rows
    monkeypatch.setattr(_modules, "MASK_BANK_MAX_BYTES", 1000)
    assert DropoutMasks(100, 0.1, seed=0, offsets=offsets, max_rows=8, device="cpu").rows == 8


def test_target_is_a_distribution_where_the_direct_weights_underflow():
    """frequency^balance beyond float32's range (1e12^4) makes every direct weight 0: the
    target comes from logarithms instead (equal frequencies cancel, leaving q^2 normalised).
    Kills L8 (the log-space fallback never taken: 0 / 0 = NaN)."""
    q = torch.tensor([[0.6, 0.4], [0.3, 0.7]])
    frequency = torch.tensor([1e12, 1e12])
    target = target_distribution(q, frequency, balance=4.0)
    torch.testing.assert_close(target, q**2 / (q**2).sum(1, keepdim=True))


def test_zinb_heads_are_clamped_to_their_ranges():
    """Whatever the heads output, the mean (before the size factor) stays in [1e-5, 1e6] and
    the dispersion in [1e-4, 1e4]. Kills M6 (dispersion's upper bound dropped) and M7 (the
    log-mean clamp dropped)."""
    model = ZINBAutoencoder(5, encoder_hidden=(4,), latent_dim=2, decoder_hidden=(4,))
    z = torch.randn(3, 2)
    size_factors = torch.full((3,), 2.0)
    with torch.no_grad():
        model.zinb_heads.weight.zero_()
        for bias, mean, dispersion in ((1e5, 1e6, 1e4), (-1e5, 1e-5, 1e-4)):
            model.zinb_heads.bias.fill_(bias)
            p = model.decode(z, size_factors)
            torch.testing.assert_close(p.log_mean, torch.full((3, 5), float(np.log(2 * mean))))
            torch.testing.assert_close(p.dispersion, torch.full((3, 5), dispersion))


def test_student_t_soft_assignment_with_other_degrees_of_freedom():
    """DESC's `alpha` (degrees of freedom): q_ij proportional to
    (1 + d_ij^2 / alpha)^-((alpha + 1) / 2). Kills M4 (alpha left out of the distance term,
    which is the same only at alpha 1)."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20, 3)).astype(np.float32)
    mu = rng.normal(size=(4, 3)).astype(np.float32)
    d2 = ((z[:, None, :] - mu[None]) ** 2).sum(-1)
    for alpha in (0.5, 3.0):
        q = ClusteringLayer(torch.from_numpy(mu), alpha=alpha)(torch.from_numpy(z)).detach()
        expected = (1.0 + d2 / alpha) ** (-(alpha + 1) / 2)
        expected /= expected.sum(1, keepdims=True)
        np.testing.assert_allclose(q.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_dropout_rates_outside_the_open_interval_are_refused():
    """Kills M1 (a rate of 0 accepted; low priority: its masks would be the identity)."""
    from scdeepclust.nn import DropoutMasks

    for p in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="dropout rate"):
            DropoutMasks(10, p, seed=0, max_rows=4, device="cpu")


def test_stacked_autoencoder_embeds_with_tanh_and_reconstructs_linearly():
    """DESC's network: ReLU hidden layers, tanh on the embedding layer, a mirrored decoder whose
    output layer is linear (scaled data is negative as often as positive). Kills M9 (ReLU on
    the embedding layer) and M10 (ReLU on the output layer)."""
    from torch.nn import functional as F

    from scdeepclust.nn import StackedAutoencoder

    torch.manual_seed(0)
    model = StackedAutoencoder(6, (5, 3))
    x = torch.randn(40, 6)
    with torch.no_grad():
        z = torch.tanh(model.encoder_layers[1](F.relu(model.encoder_layers[0](x))))
        out = model.decoder_layers[0](F.relu(model.decoder_layers[1](z)))
        torch.testing.assert_close(model.encode(x), z)
        torch.testing.assert_close(model.decode(z), out)
        assert (z < 0).any() and (model.decode(z) < 0).any()


def test_clustering_layer_trains_a_copy_of_the_given_centroids():
    """Training moves the layer's centroids in place; the caller's float32 tensor (or the numpy
    array under it) stays as it was. Kills M12 (no `.clone()`: the parameter shares the caller's
    memory when it is float32 already)."""
    given = np.arange(6, dtype=np.float32).reshape(2, 3)
    layer = ClusteringLayer(torch.from_numpy(given))
    with torch.no_grad():
        layer.centroids.add_(1.0)
    np.testing.assert_array_equal(given, np.arange(6, dtype=np.float32).reshape(2, 3))


def test_mlp_layers_and_last_activation():
    """`nn.mlp`: ReLU between the linear layers, after the last only by default; dropout before
    each linear layer when asked. Kills M14 (`last_activation=False` ignored)."""
    from torch import nn

    from scdeepclust.nn import mlp

    def kinds(net):
        return [type(layer) for layer in net]

    assert kinds(mlp([4, 3, 2])) == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU]
    assert kinds(mlp([4, 3, 2], last_activation=False)) == [nn.Linear, nn.ReLU, nn.Linear]
    assert kinds(mlp([4, 2], dropout=0.1, last_activation=False)) == [nn.Dropout, nn.Linear]


def test_small_optimizer_averages_that_still_move_weights_are_kept():
    """The clean-up zeroes only averages too small to move any weight: Adam's averages of a
    steady gradient of 1e-8 (exp_avg_sq about 6e-18 after 64 steps, which still sets the size
    of the update against eps 1e-8) stay. Kills O6 (VANISHING raised to 1e-3)."""
    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.train import adam
    from scdeepclust.train._loops import _optimizer_step
    from scdeepclust.train._optim import VANISHING_EVERY

    w = torch.nn.Parameter(torch.ones(4))
    opt = adam([w], lr=1e-3)
    feeder = CellFeeder(RowSource(np.zeros((2, 1), np.float32)), device=torch.device("cpu"))
    for step in range(1, VANISHING_EVERY + 1):  # the last step cleans up
        _optimizer_step(opt, {"loss": 1e-8 * w.sum()}, feeder, step)
    assert (opt.state[w]["exp_avg"] != 0).all() and (opt.state[w]["exp_avg_sq"] != 0).all()


@pytest.mark.parametrize(
    "build",
    [
        lambda: StackedAutoencoder(300, (64, 32, 8)),
        lambda: StackedAutoencoder(120, (32,), n_batches=3, precision="bfloat16"),
        lambda: ZINBAutoencoder(200),
        lambda: ZINBAutoencoder(120, encoder_hidden=(64,), latent_dim=8, n_batches=2),
        lambda: ZINBAutoencoder(50, encoder_hidden=(), latent_dim=5, decoder_hidden=()),
        lambda: torch.nn.Linear(4, 3, bias=False),
        lambda: torch.nn.Linear(0, 3),
    ],
    ids=[
        "desc",
        "desc-batches-bfloat16",
        "scdcc",
        "scdcc-batches",
        "scdcc-no-hidden",
        "linear-no-bias",
        "linear-no-inputs",
    ],
)
@pytest.mark.parametrize("seed", [0, 7, None])
def test_initial_networks_have_torchs_initial_weights_without_its_global_generator(build, seed):
    """The weights torch's global generator gave the layers once seeded (as earlier versions
    drew them, so that results stayed the same), drawn from a generator of the run's own;
    also in nn.Linear's own cases of no bias and no inputs (bound 0)."""

    from scdeepclust.train import initial_network

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: zero-element tensors, a no-op
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if seed is None else seed)
            torchs = build()
        torch.manual_seed(11)
        state = torch.random.get_rng_state()
        own = initial_network(build, seed)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert list(own.state_dict()) == list(torchs.state_dict())
    for name, value in own.state_dict().items():
        assert value.device.type == "cpu" and value.dtype == torch.float32
        assert torch.equal(value, torchs.state_dict()[name]), name
    assert not any(p.is_meta for p in own.parameters())


@pytest.mark.parametrize(
    "layer",
    [lambda: torch.nn.LayerNorm(3), lambda: torch.nn.BatchNorm1d(3, affine=False)],
    ids=["parameters", "buffers-alone"],
)
def test_an_initial_network_refuses_a_layer_it_has_no_initial_values_for(layer):
    """A layer added later (a LayerNorm; a BatchNorm without affine parameters, whose running
    statistics are buffers) would have kept the uninitialised memory of `to_empty`."""
    from scdeepclust.train import initial_network

    name = type(layer()).__name__
    with pytest.raises(TypeError, match=rf"no initial values for '1', a {name}"):
        initial_network(lambda: torch.nn.Sequential(torch.nn.Linear(4, 3), layer()), 0)


# M161, M162, M163
def test_the_run_generators_draw_their_own_streams():
    """DESC's dropout draws the stream torch's global generator gave once seeded; the minibatch
    generator another (the seed + 1); random_state=None leaves numpy's draws unseeded."""
    import torch

    from scdeepclust.train._device import dropout_generator, numpy_rng, torch_generator

    torch.manual_seed(5)
    global_draws = torch.rand(4)
    assert torch.equal(torch.rand(4, generator=dropout_generator(5)), global_draws)
    batches = torch.rand(4, generator=torch_generator(5, torch.device("cpu")))
    assert not torch.equal(batches, global_draws)
    assert torch.equal(batches, torch.rand(4, generator=torch.Generator().manual_seed(6)))
    assert numpy_rng(None).integers(1 << 62) != numpy_rng(None).integers(1 << 62)
