"""Continuous control: the Gaussian policy head, observation normalisation, MuJoCo envs.

The head's loss kernel is checked against the float64 reference (``reference.gaussian_*``)
and against central differences of that reference, alone and through a whole MLP; the
sampler against the distribution it should draw from and against the clipping rule (only
what the env is sent is clipped); the observation statistics against NumPy on random
batches, across a checkpoint and a resume.
"""

import numpy as np
import pytest

import reference as ref
from fastasync import checkpoint as ckpt
from fastasync.kernels import heads as kheads
from fastasync.kernels import normalize as knorm
from fastasync.kernels import rng as krng
from fastasync.nets import make_net
from fastasync.obsnorm import ObsNorm

VAR_MIN = 1e-4
BETA, VALUE_COEF = 0.05, 0.5


def head_case(N=13, A=3, seed=0):
    """Odd sizes; rho over both softplus regimes; one masked sample; samples of the policy
    itself, some far outside [-1, 1] (what a clipped env would never see)."""
    rs = np.random.default_rng(seed)
    out = np.empty((N, 2 * A + 1), np.float32)
    out[:, :A] = rs.normal(0, 0.5, (N, A))
    out[:, A : 2 * A] = rs.uniform(-3, 2, (N, A))
    out[:, 2 * A] = rs.normal(0, 1, N)
    var = ref.softplus_ref(out[:, A : 2 * A]) + VAR_MIN
    actions = (out[:, :A] + np.sqrt(var) * rs.standard_normal((N, A)) * 2.0).astype(np.float32)
    returns = rs.normal(0, 2, N).astype(np.float32)
    weight = np.full(N, 1.0 / 4, np.float32)
    weight[min(5, N - 1)] = 0.0
    return out, actions, returns, weight


def kernel_grad(out, actions, returns, weight, beta=BETA, mean_bound=None, capg=None):
    """The kernel's (dout, stats); ``capg``: (low, high) bounds to score clipped samples by."""
    dout = np.full_like(out, np.nan)
    stats = np.zeros(4)
    A = actions.shape[1]
    mb = np.zeros(A, np.float32) if mean_bound is None else np.asarray(mean_bound, np.float32)
    low, high = (np.full(A, -np.inf, np.float32), np.full(A, np.inf, np.float32)) if capg is None else capg
    kheads.gaussian_head_backward(out, actions, returns, weight, beta, VALUE_COEF, VAR_MIN, mb,
                                  np.asarray(low, np.float32), np.asarray(high, np.float32), capg is not None,
                                  dout, stats)
    return dout, stats


def bounds_of(A, bounded):
    """None (the linear mean) or per-dimension bounds b: 0 (linear) and b > 0 mixed."""
    return np.array([(0.0, 1.0, 2.5)[j % 3] for j in range(A)], np.float32) if bounded else None


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("A", [1, 3, 6])
def test_gaussian_head_matches_float64_reference(A, bounded):
    out, actions, returns, weight = head_case(N=13, A=A, seed=A)
    if bounded:
        out[:, :A] *= 4.0  # means far into tanh's flat tails too
    mb = bounds_of(A, bounded)
    dout, stats = kernel_grad(out, actions, returns, weight, mean_bound=mb)
    want = ref.gaussian_grad_ref(out, actions, returns, weight, BETA, VALUE_COEF, VAR_MIN, mb)
    np.testing.assert_allclose(dout, want, rtol=2e-5, atol=1e-6 * np.abs(want).max())
    assert np.all(dout[5] == 0.0)  # the masked sample contributes nothing
    want_stats = ref.gaussian_stats_ref(out, actions, returns, weight, BETA, VALUE_COEF, VAR_MIN, mb)
    # the policy loss is a sum of terms that cancel: the kernel's float32 inputs and softplus
    # leave an absolute error that grows with the terms (larger with the x4 means)
    np.testing.assert_allclose(stats, want_stats, rtol=1e-5, atol=1e-6 * (20.0 if bounded else 1.0))
    loss = ref.gaussian_loss_ref(out, actions, returns, weight, BETA, VALUE_COEF, VAR_MIN, mean_bound=mb)
    assert abs(stats[0] + stats[1] - BETA * stats[2] - loss) <= 1e-5 * abs(loss) + 1e-6


CAPG_BOUNDS = (np.array([-1.0, 0.0, 0.0], np.float32), np.array([1.0, 1.0, 0.5], np.float32))


def capg_case(seed=7, N=15):
    """Samples inside, at and past both bounds of each dimension, among them means far past a
    bound (z of Phi below -20: the asymptotic branch) and at it."""
    out, actions, returns, weight = head_case(N=N, A=3, seed=seed)
    rs = np.random.default_rng(seed)
    out[:, :3] = rs.normal(0.3, 1.0, (N, 3))
    out[0, 1], out[1, 1], out[2, 2] = -6.0, 4.0, 0.0
    out[0, 4], out[1, 4] = -6.0, -6.0  # sigma ~0.05: a mean 6 past a bound is z ~ -120
    actions[:] = rs.normal(0.3, 1.5, (N, 3))
    actions[0, 1], actions[1, 1], actions[2, 2] = -6.1, 4.2, 0.5  # exactly at high: clipped
    return out, actions, returns, weight


def test_log_ndtr_ratio_is_scipys_on_both_branches():
    from scipy.special import log_ndtr
    from scipy.stats import norm

    for z in np.concatenate([np.linspace(-60, 8, 137), [-30.0, -29.999, -30.001, 0.0]]):
        lp, lam = kheads.log_ndtr_ratio(z)
        assert abs(lp - log_ndtr(z)) <= 1e-9 * max(1.0, abs(log_ndtr(z))), z
        want = np.exp(norm.logpdf(z) - log_ndtr(z))
        assert abs(lam - want) <= 1e-9 * max(1.0, want), z


@pytest.mark.parametrize("bounded", [False, True])
def test_capg_head_matches_float64_reference_and_finite_differences(bounded):
    """--capg: clipped samples scored by log Phi of their side of the bound, the others by the
    density; the kernel against the float64 reference (scipy's log_ndtr) and its central
    differences, with the mean linear or bounded."""
    out, actions, returns, weight = capg_case()
    mb = np.array([1.0, 1.0, 1.0], np.float32) if bounded else None
    dout, stats = kernel_grad(out, actions, returns, weight, mean_bound=mb, capg=CAPG_BOUNDS)
    want = ref.gaussian_grad_ref(out, actions, returns, weight, BETA, VALUE_COEF, VAR_MIN, mb, capg=CAPG_BOUNDS)
    np.testing.assert_allclose(dout, want, rtol=2e-5, atol=1e-6 * np.abs(want).max())
    want_stats = ref.gaussian_stats_ref(out, actions, returns, weight, BETA, VALUE_COEF, VAR_MIN, mb, capg=CAPG_BOUNDS)
    np.testing.assert_allclose(stats, want_stats, rtol=1e-5, atol=1e-5)
    out64 = out.astype(np.float64)
    adv = returns.astype(np.float64) - out64[:, -1]

    def loss(o):
        return ref.gaussian_loss_ref(o, actions, returns, weight, BETA, VALUE_COEF, VAR_MIN, adv=adv, mean_bound=mb,
                                     capg=CAPG_BOUNDS)

    fd = ref.central_diff(loss, out64, np.arange(out64.size), 1e-6).reshape(out.shape)
    err = ref.rel_error(dout, fd, 1e-2 * np.abs(fd).max())
    assert err.max() < 1e-3 and err.mean() < 1e-4, (err.max(), err.mean())


def test_capg_gives_no_noise_for_a_dimension_whose_samples_are_all_clipped():
    """A mean far below the lower bound with a small sigma: the env gets the bound whatever is
    sampled. The density's gradient for that dimension is ~adv / sigma of noise; CAPG's ~0."""
    out, actions, returns, weight = capg_case()
    out[:, 1], out[:, 4] = -3.0, -6.0  # gas: mu = -3, sigma ~0.05, every sample clipped to 0
    actions[:, 1] = out[:, 1] + 0.05 * np.random.default_rng(1).standard_normal(len(out))
    live = weight > 0
    dens, _ = kernel_grad(out, actions, returns, weight, beta=0.0)
    capg, _ = kernel_grad(out, actions, returns, weight, beta=0.0, capg=CAPG_BOUNDS)
    assert np.abs(dens[live, 1]).max() > 1.0
    assert np.abs(capg[live][:, [1, 4]]).max() < 1e-12
    np.testing.assert_array_equal(dens[:, -1], capg[:, -1])  # the value's gradient is the same


def test_gaussian_reference_is_scipys_density_and_entropy():
    """The reference's log-density and entropy are the textbook ones (scipy.stats.norm)."""
    from scipy.stats import norm

    out, actions, _, _ = head_case(N=7, A=2)
    mu, var, _ = ref.gaussian_parts_ref(out, VAR_MIN)
    sd = np.sqrt(var)
    np.testing.assert_allclose(ref.gaussian_log_density_ref(actions, mu, var),
                               norm.logpdf(actions, mu, sd).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(ref.gaussian_entropy_ref(var), norm.entropy(mu, sd).sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("bounded", [False, True])
def test_gaussian_head_gradient_matches_finite_differences(bounded):
    """Every output column: mean (linear, or b tanh(m / b) for --bounded-mean), variance
    pre-activation (both softplus regimes), value."""
    out, actions, returns, weight = head_case(N=9, A=3, seed=4)
    mb = bounds_of(3, bounded)
    dout, _ = kernel_grad(out, actions, returns, weight, mean_bound=mb)
    out64 = out.astype(np.float64)
    _, _, V = ref.gaussian_parts_ref(out64, VAR_MIN)
    adv = returns.astype(np.float64) - V  # held constant, as the kernel does

    def loss(o):
        return ref.gaussian_loss_ref(o, actions, returns, weight, BETA, VALUE_COEF, VAR_MIN, adv=adv, mean_bound=mb)

    fd = ref.central_diff(loss, out64, np.arange(out64.size), 1e-6).reshape(out.shape)
    err = ref.rel_error(dout, fd, 1e-2 * np.abs(fd).max())
    assert err.max() < 1e-3 and err.mean() < 1e-4, (err.max(), err.mean())


def test_entropy_bonus_pushes_the_variance_up_and_nothing_else():
    """With adv = 0 (R = V) only the entropy term is left: it raises sigma^2 (drho < 0)."""
    out, actions, _, weight = head_case(N=7, A=2)
    returns = out[:, -1].copy()
    dout, stats = kernel_grad(out, actions, returns, weight, beta=0.1)
    live = weight > 0
    assert np.all(dout[live, :2] == 0.0) and np.all(dout[:, -1] == 0.0)
    assert np.all(dout[live, 2:4] < 0.0)


def test_sampler_draws_the_policy_and_clips_only_what_the_env_is_sent():
    E, A = 4000, 2
    out = np.zeros((E, 2 * A + 1), np.float32)
    out[:, 0], out[:, 1] = 0.7, -0.3
    out[:, 2], out[:, 3] = 0.5, -1.0  # sigma^2 = softplus(.) + var_min
    low, high = np.array([-1.0, -0.5], np.float32), np.array([1.0, 0.5], np.float32)
    actions = np.zeros((E, A), np.float32)
    sent = np.zeros((E, A), np.float32)
    state = krng.seed_state(3)
    linear = np.zeros(A, np.float32)
    krng.sample_gaussian(out, VAR_MIN, linear, low, high, state, actions, sent)
    var = ref.softplus_ref(out[0, 2:4]) + VAR_MIN
    se = np.sqrt(var / E)
    assert np.all(np.abs(actions.mean(axis=0) - out[0, :2]) < 4 * se)
    assert np.all(np.abs(actions.var(axis=0) / var - 1.0) < 0.08)
    # the loss's samples are unclipped (some lie outside the bounds); the env's are clipped copies
    assert (actions[:, 0] > 1.0).any() and (actions[:, 1] < -0.5).any()
    np.testing.assert_array_equal(sent, np.clip(actions, low, high))
    # the generator is the learner's own: the same state draws the same samples
    again, sent2 = np.zeros_like(actions), np.zeros_like(sent)
    krng.sample_gaussian(out, VAR_MIN, linear, low, high, krng.seed_state(3), again, sent2)
    np.testing.assert_array_equal(again, actions)
    # greedy: mu, clipped for the env
    krng.gaussian_greedy(out, linear, low, high, actions, sent)
    np.testing.assert_array_equal(actions, out[:, :2])
    np.testing.assert_array_equal(sent, np.clip(out[:, :2], low, high))


def test_bounded_mean_stays_within_the_bounds_and_is_the_linear_mean_near_zero():
    """--bounded-mean: mu = b tanh(m / b), b = 1 and 0.5 here; the sampler draws around it and
    greedy acting takes it; a pre-activation far past a bound gives a mean at the bound."""
    E, A = 4000, 2
    b = np.array([1.0, 0.5], np.float32)
    out = np.zeros((E, 2 * A + 1), np.float32)
    out[:, 0], out[:, 1] = 3.0, -0.2
    out[:, 2], out[:, 3] = 0.5, -1.0
    mu = b * np.tanh(out[0, :2] / b)
    low, high = -b, b
    actions, sent = np.zeros((E, A), np.float32), np.zeros((E, A), np.float32)
    krng.sample_gaussian(out, VAR_MIN, b, low, high, krng.seed_state(5), actions, sent)
    var = ref.softplus_ref(out[0, 2:4]) + VAR_MIN
    assert np.all(np.abs(actions.mean(axis=0) - mu) < 4 * np.sqrt(var / E))
    np.testing.assert_array_equal(sent, np.clip(actions, low, high))
    krng.gaussian_greedy(out, b, low, high, actions, sent)
    np.testing.assert_allclose(actions[0], mu, rtol=1e-6)
    assert 0.99 < actions[0, 0] <= 1.0  # m = 3: at the bound, not past it
    for m, bb in ((1e-3, 1.0), (-2e-3, 0.5), (50.0, 2.0), (-50.0, 2.0)):
        got, slope = kheads.gaussian_mean(m, bb)
        assert abs(got - bb * np.tanh(m / bb)) < 1e-12 and abs(got) <= bb
        assert abs(slope - (1.0 - np.tanh(m / bb) ** 2)) < 1e-12
    assert kheads.gaussian_mean(7.5, 0.0) == (7.5, 1.0)  # b = 0: the paper's linear mean


@pytest.mark.parametrize("hidden", [(7, 5), (9,)])
def test_gaussian_mlp_gradient_matches_finite_differences(hidden):
    """The whole net: MLP torso + Gaussian head, over T slots of E envs (fast path vs the
    float64 reference's central differences)."""
    obs_dim, A, T, E = 5, 2, 3, 7
    net = make_net((obs_dim,), A, head="gaussian", hidden=hidden)
    assert net.head_outputs == 2 * A + 1
    rs = np.random.default_rng(0)
    theta = net.init_params(0)
    for k, v in net.layout.views(theta).items():
        v[...] = rs.uniform(-0.5, 0.5, v.shape) if k.startswith("head") else v
        if k.endswith(".b"):
            v[...] = rs.uniform(-0.1, 0.1, v.shape)
    obs = rs.standard_normal((T, E, obs_dim)).astype(np.float32)
    N = T * E
    actions = rs.normal(0, 1.5, (N, A)).astype(np.float32)
    returns = rs.standard_normal(N).astype(np.float32)
    weight = np.full(N, 1.0 / E, np.float32)
    weight[E + 1] = 0.0
    grad = np.full(net.num_params, np.nan, np.float32)
    ws = net.workspace(T + 1, E, theta, grad)
    for t in range(T):
        net.forward(ws, obs[t], t)
    net.forward(ws, obs[0][::-1].copy(), T)  # a bootstrap slot the backward must not read
    out = net.outputs(ws, T).copy()
    stats = np.zeros(4)
    kheads.gaussian_head_backward(net.outputs(ws, T), actions, returns, weight, BETA, VALUE_COEF, VAR_MIN,
                                  np.zeros(A, np.float32), -np.ones(A, np.float32), np.ones(A, np.float32), False,
                                  net.dout(ws, T), stats)
    net.backward(ws, T)
    assert np.all(np.isfinite(grad))
    flat_obs = obs.reshape(N, obs_dim)
    theta64 = theta.astype(np.float64)
    out_ref = ref.net_forward_ref(net, theta64, flat_obs)
    np.testing.assert_allclose(out, out_ref, rtol=1e-4, atol=1e-5)
    adv = returns.astype(np.float64) - out_ref[:, 2 * A]

    def loss(th):
        return ref.net_loss_ref(net, th, flat_obs, actions, returns, weight, "gaussian", BETA, VALUE_COEF, adv=adv,
                                var_min=VAR_MIN)

    rs = np.random.default_rng(1)
    for spec in net.layout.specs:
        a, b = net.layout.offsets[spec.name]
        idx = a + rs.choice(b - a, size=min(20, b - a), replace=False)
        fd = ref.central_diff(loss, theta64, idx, 1e-5)
        err = ref.rel_error(grad[idx], fd, 1e-2 * max(float(np.abs(grad[a:b]).max()), 1e-8))
        assert err.max() < 1e-3 and err.mean() < 1e-4, (spec.name, err.max(), err.mean())


def test_gaussian_lstm_net_gradient_through_time_matches_finite_differences():
    """MLP -> LSTM (state zeroed where an episode starts) -> Gaussian head: the recurrent path
    a3c-lstm takes on MuJoCo, against central differences of a float64 reference."""
    T, E, A, D = 4, 3, 2, 4
    net = make_net((D,), A, "gaussian", hidden=(6,), lstm=5)
    rs = np.random.default_rng(0)
    theta = net.init_params(0)
    for k, v in net.layout.views(theta).items():
        v[...] += rs.uniform(-0.3, 0.3, v.shape)  # larger weights: gradients flow through time
    obs = rs.standard_normal((T, E, D)).astype(np.float32)
    reset = np.zeros((T, E), np.uint8)
    reset[2, 1] = 1
    actions = rs.normal(0, 1.5, (T * E, A)).astype(np.float32)
    returns = rs.standard_normal(T * E).astype(np.float32)
    weight = np.full(T * E, 1.0 / E, np.float32)
    grad = np.full(net.num_params, np.nan, np.float32)
    ws = net.workspace(T + 1, E, theta, grad)
    for t in range(T):
        ws.reset_in[t] = reset[t]
        net.forward(ws, obs[t], t)
    out = net.outputs(ws, T).copy()
    kheads.gaussian_head_backward(net.outputs(ws, T), actions, returns, weight, BETA, VALUE_COEF, VAR_MIN,
                                  np.zeros(A, np.float32), -np.ones(A, np.float32), np.ones(A, np.float32), False,
                                  net.dout(ws, T), np.zeros(4))
    net.backward(ws, T)
    assert np.isfinite(grad).all()

    def forward_ref(th):
        p = ref.named_params(net.layout, th)
        h = ref.relu_ref(ref.dense_ref(obs.reshape(T * E, D).astype(np.float64), p["fc1.W"], p["fc1.b"]))
        H = p["lstm.Wh"].shape[1]
        hs, _ = ref.lstm_forward_ref(h.reshape(T, E, -1), np.zeros((E, H)), np.zeros((E, H)), reset, p["lstm.Wx"],
                                     p["lstm.Wh"], p["lstm.b"])
        return ref.dense_ref(hs.reshape(T * E, H), p["head.W"], p["head.b"])

    theta64 = theta.astype(np.float64)
    out_ref = forward_ref(theta64)
    np.testing.assert_allclose(out, out_ref, rtol=1e-4, atol=1e-5)
    adv = returns.astype(np.float64) - out_ref[:, 2 * A]

    def loss(th):
        return ref.gaussian_loss_ref(forward_ref(th), actions, returns, weight, BETA, VALUE_COEF, VAR_MIN, adv=adv)

    for spec in net.layout.specs:
        a, b = net.layout.offsets[spec.name]
        idx = a + rs.choice(b - a, size=min(25, b - a), replace=False)
        fd = ref.central_diff(loss, theta64, idx, 1e-5)
        err = ref.rel_error(grad[idx], fd, 1e-2 * max(float(np.abs(grad[a:b]).max()), 1e-8))
        assert err.max() < 1e-3 and err.mean() < 1e-4, (spec.name, err.max(), err.mean())


def test_gaussian_head_starts_near_zero_mean_and_unit_scale_variance():
    net = make_net((11,), 3, head="gaussian", hidden=(16,))
    w = net.layout.views(net.init_params(0))
    bound = 1.0 / np.sqrt(16)  # the head's U(+-1/sqrt(fan_in)), before the x0.01 of the policy outputs
    assert np.abs(w["head.W"][:6]).max() <= 0.01 * bound * (1 + 1e-6)
    assert np.abs(w["head.W"][6]).max() > 0.1 * bound  # the value's row is not scaled down


# ----------------------------------------------------------------------------- observation statistics


def batches(seed, sizes, D=5):
    rs = np.random.default_rng(seed)
    scale = rs.uniform(0.1, 100.0, D)
    return [(rs.standard_normal((n, D)) * scale + rs.uniform(-50, 50, D)).astype(np.float32) for n in sizes]


def test_moments_merge_matches_numpy_on_random_batches():
    xs = batches(0, [1, 7, 40, 3, 128, 1, 13])
    count, mean, m2 = np.zeros(1), np.zeros(5), np.zeros(5)
    for x in xs:
        knorm.moments_merge(x, count, mean, m2)
    allx = np.concatenate(xs).astype(np.float64)
    assert count[0] == len(allx)
    np.testing.assert_allclose(mean, allx.mean(axis=0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(m2 / count[0], allx.var(axis=0), rtol=1e-9)


def test_normalize_clips_keeps_raw_and_reports_non_finite_rows():
    x = np.array([[1.0, 2.0], [3.0, 1000.0]], np.float32)
    mean, istd = np.array([1.0, 0.0], np.float32), np.array([0.5, 1.0], np.float32)
    raw, out = np.zeros_like(x), np.zeros_like(x)
    assert knorm.normalize_obs(x, mean, istd, 10.0, raw, out) == -1
    np.testing.assert_array_equal(raw, x)
    np.testing.assert_allclose(out, [[0.0, 2.0], [1.0, 10.0]])
    x[1, 0] = np.nan
    assert knorm.normalize_obs(x, mean, istd, 10.0, raw, out) == 1
    x[1, 0], x[0, 1] = 0.0, -np.inf
    assert knorm.normalize_obs(x, mean, istd, 10.0, raw, out) == 0


def test_obs_statistics_match_numpy_across_a_checkpoint_and_a_resume(tmp_path):
    """Merge batches, save the moments in a checkpoint, load them into a fresh normaliser
    (a resumed run), merge more: the result is NumPy's over all batches; the snapshot a
    learner normalises with is (x - mean) / sqrt(var + 1e-8)."""
    before, after = batches(1, [8, 40, 40, 5]), batches(2, [40, 1, 33])
    a = ObsNorm(5, enabled=True)
    for x in before:
        a.merge(x)
    path = str(tmp_path / "checkpoint.npz")
    ckpt.save(path, theta=np.zeros(3), rms_g=np.zeros(3), frames=1, wall_s=0.0, games=0, rng_states=np.zeros((1, 2)),
              config={}, layout_signature=[], extra=a.state())
    b = ObsNorm(5, enabled=True)
    b.load(ckpt.load(path)["extra"])
    for x in after:
        b.merge(x)
    allx = np.concatenate(before + after).astype(np.float64)
    np.testing.assert_allclose(b.mean, allx.mean(axis=0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(b.var, allx.var(axis=0), rtol=1e-9)
    mean32, istd32 = np.zeros(5, np.float32), np.zeros(5, np.float32)
    b.snapshot(mean32, istd32)
    np.testing.assert_allclose(mean32, allx.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(istd32, 1.0 / np.sqrt(allx.var(axis=0) + 1e-8), rtol=1e-6)


def test_obs_moments_combine_subtract_and_rebase_as_a_ray_node_does():
    """The moments of two sets together (``combine``) and of a set less a part of it
    (``difference``) are NumPy's; ``rebase`` (a Ray node taking the global statistics back)
    keeps what its learners merged during the round trip."""
    from fastasync.obsnorm import combine, difference

    a, b, c = (np.concatenate(x).astype(np.float64) for x in (batches(3, [9, 40]), batches(4, [1, 30]),
                                                               batches(5, [17])))

    def moments(x):
        return {"obs_count": np.array([len(x)], float), "obs_mean": x.mean(axis=0), "obs_m2": x.var(axis=0) * len(x)}

    def same(m, x):
        assert m["obs_count"][0] == len(x)
        np.testing.assert_allclose(m["obs_mean"], x.mean(axis=0), rtol=1e-9, atol=1e-8)
        np.testing.assert_allclose(m["obs_m2"] / len(x), x.var(axis=0), rtol=1e-7)

    same(combine(moments(a), moments(b)), np.concatenate([a, b]))
    same(difference(moments(np.concatenate([a, b])), moments(a)), b)
    empty = difference(moments(a), moments(a))
    assert empty["obs_count"][0] == 0 and not empty["obs_m2"].any()
    same(combine(moments(a), empty), a)
    same(combine(empty, moments(b)), b)
    # a node: its statistics were ``sent`` (a); its learners merged c meanwhile; the global ones
    # came back as a + b (another node's b): it holds a + b + c
    node = ObsNorm(5, enabled=True)
    node.merge(a.astype(np.float32))
    sent = node.state()
    node.merge(c.astype(np.float32))
    node.rebase(sent, combine(sent, moments(b)))
    same(node.state(), np.concatenate([a, b, c]))


def test_obs_statistics_that_do_not_fit_are_refused():
    a = ObsNorm(5, enabled=True)
    a.merge(batches(0, [4])[0])
    with pytest.raises(ValueError, match="size"):
        ObsNorm(4, enabled=True).load(a.state())
    with pytest.raises(ValueError, match="no observation statistics"):
        ObsNorm(5, enabled=True).load({})
    off = ObsNorm(5, enabled=False)  # disabled: the identity, nothing saved, nothing needed
    off.merge(batches(0, [4])[0])
    assert off.state() == {} and off.count[0] == 0


# ----------------------------------------------------------------------------- MuJoCo end to end

from click.testing import CliRunner  # noqa: E402

from fastasync import envs  # noqa: E402
from fastasync.cli import main  # noqa: E402

HAVE_GYM_MUJOCO = envs.gymnasium_has_mujoco()


@pytest.mark.parametrize("backend", ["envpool", pytest.param("gymnasium", marks=pytest.mark.skipif(
    not HAVE_GYM_MUJOCO, reason="the mujoco package is not installed"))])
def test_mujoco_env_in_both_backends(backend):
    info = envs.env_info("HalfCheetah-v4", backend)
    assert info.family == "mujoco" and not info.discrete and info.frame_skip == 1
    assert info.obs_shape == (17,) and info.action_shape == (6,) and info.action_dim == 6
    assert info.action_low == (-1.0,) * 6 and info.action_high == (1.0,) * 6
    with envs.make_env("HalfCheetah-v4", 3, seed=5, backend=backend) as env:
        obs = env.reset()
        assert obs.dtype == np.float32 and obs.shape == (3, 17)
        for _ in range(3):
            step = env.step(np.full((3, 6), 0.5, np.float32))
        assert step.obs.shape == (3, 17) and np.isfinite(step.obs).all() and step.reward.dtype == np.float32
        np.testing.assert_array_equal(step.reward, step.raw_reward)  # never clipped
        with pytest.raises(envs.EnvError, match="shape"):
            env.step(np.zeros((3, 5), np.float32))


def test_envs_lists_mujoco_with_sizes():
    r = CliRunner().invoke(main, ["envs", "--backend", "envpool"])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if "HalfCheetah-v4" in x)
    assert "obs  17" in line and "6-dim continuous actions in [-1, 1]" in line
    assert "frames = env steps" in r.output


def test_q_method_on_mujoco_is_refused_up_front(tmp_path):
    r = CliRunner().invoke(main, ["train", "--env", "Hopper-v4", "--algo", "onestep-q", "--run-dir", str(tmp_path / "x")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "continuous" in r.output and "a3c" in r.output
    assert not (tmp_path / "x").exists()


def _mujoco_run(run, *args):
    r = CliRunner().invoke(main, ["train", "--env", "HalfCheetah-v4", "--threads", "1", "--envs-per-thread", "3",
                                  "--seed", "2", "--run-dir", str(run), *args])
    assert r.exit_code == 0, r.output
    return ckpt.load(str(run))


@pytest.mark.parametrize("algo", ["a3c", "a3c-lstm"])
def test_mujoco_train_eval_resume_keeps_the_observation_statistics(tmp_path, algo):
    """Family defaults (obs-norm on): the checkpoint holds the running statistics of every
    observation the learner saw; resume continues them (they only grow), eval uses them."""
    from fastasync.config import resume_config
    from fastasync.trainer import Trainer

    run = tmp_path / algo
    ck = _mujoco_run(run, "--algo", algo, "--frames", "1500")
    cfg = ck["config"]
    from fastasync import config

    family = config.defaults_for("HalfCheetah-v4", algo)
    assert family["obs_norm"] and ("lstm_size" in family) == (algo == "a3c-lstm")
    for name, value in family.items():  # config.json records the family's values (but the frames given)
        assert cfg[config.flat_fields()[name][0]][name] == (1500 if name == "frames" else value), name
    n = ck["extra"]["obs_count"][0]
    assert n == ck["frames"]  # one observation per env step (the first of each segment ... the last)
    assert np.isfinite(ck["theta"]).all()
    # a resumed trainer starts from exactly the saved statistics
    trainer = Trainer(resume_config(ck, {"frames": 3000, "run_dir": str(run)}), resume=ck)
    np.testing.assert_array_equal(trainer.shared.obsnorm.mean, ck["extra"]["obs_mean"])
    np.testing.assert_array_equal(trainer.shared.obsnorm.m2, ck["extra"]["obs_m2"])
    for lr in trainer.learners:
        lr.env.close()
    r = CliRunner().invoke(main, ["train", "--resume", str(run), "--frames", "3000"])
    assert r.exit_code == 0, r.output
    ck2 = ckpt.load(str(run))
    assert ck2["extra"]["obs_count"][0] == ck2["frames"] > n
    for greedy in ("--greedy", "--sample"):
        r = CliRunner().invoke(main, ["eval", str(run), "--episodes", "2", greedy])
        assert r.exit_code == 0, r.output
        assert "2 games" in r.output


def test_atari_net_resumed_on_mujoco_is_refused(tmp_path):
    """A checkpoint of another net (an Atari one) under a MuJoCo config, and an Atari run
    resumed with a MuJoCo --env: one-line errors, exit 2."""
    run = tmp_path / "hc"
    ck = _mujoco_run(run, "--frames", "600")
    atari = make_net((4, 84, 84), 6, head="a3c")
    bad = tmp_path / "bad.npz"
    ckpt.save(str(bad), theta=atari.init_params(0), rms_g=atari.layout.zeros(), frames=600, wall_s=1.0, games=0,
              rng_states=ck["rng_states"], config=ck["config"], layout_signature=atari.layout.signature(),
              extra=ck["extra"])
    for cmd in (["train", "--resume", str(bad), "--frames", "2k", "--run-dir", str(tmp_path / "b")], ["eval", str(bad)]):
        r = CliRunner().invoke(main, cmd)
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert "different network" in r.output
    pong = dict(ck["config"], env=dict(ck["config"]["env"], env="Pong-v5"))
    ckpt.save(str(bad), theta=atari.init_params(0), rms_g=atari.layout.zeros(), frames=600, wall_s=1.0, games=0,
              rng_states=ck["rng_states"], config=pong, layout_signature=atari.layout.signature())
    r = CliRunner().invoke(main, ["train", "--resume", str(bad), "--env", "HalfCheetah-v4", "--frames", "2k",
                                  "--run-dir", str(tmp_path / "c")])
    assert r.exit_code == 2 and "cannot switch" in r.output and "Traceback" not in r.output


def test_non_finite_observation_stops_the_run_naming_env_and_step(tmp_path, monkeypatch):
    """An env that returns NaN: a one-line error naming the env and the step, exit 1, and
    the last good checkpoint (of the run before) kept as it was."""
    import fastasync.trainer as T

    run = tmp_path / "nan"
    ck = _mujoco_run(run, "--frames", "600")
    real = T.learner_env

    class NaNAfter:
        def __init__(self, env, steps):
            self.env, self.steps, self.info, self.num_envs = env, steps, env.info, env.num_envs

        def reset(self):
            return self.env.reset()

        def step(self, actions):
            step = self.env.step(actions)
            self.steps -= 1
            if self.steps == 0:
                step.obs[1, 3] = np.nan
            return step

        def close(self):
            self.env.close()

    monkeypatch.setattr(T, "learner_env", lambda *a, **k: NaNAfter(real(*a, **k), 7))
    r = CliRunner().invoke(main, ["train", "--resume", str(run), "--frames", "5000"])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert "HalfCheetah-v4 returned a non-finite observation" in r.output and "env 1" in r.output
    # the 7th step's observation is slot 7 of the resumed run's first segment (t_max 20)
    assert f"step 7 of the segment that started at frame {ck['frames']}" in r.output, r.output
    assert "last good checkpoint is kept" in r.output
    after = ckpt.load(str(run))
    assert after["frames"] == ck["frames"]
    np.testing.assert_array_equal(after["theta"], ck["theta"])


def test_bounded_mean_needs_finite_bounds_and_takes_the_larger_magnitude():
    """--bounded-mean: b per dimension is max(|low|, |high|); a Box with an infinite bound is
    refused with a message that names the env and its bounds, and either option on a head that
    is not the Gaussian one (where it would do nothing) is refused too."""
    from types import SimpleNamespace

    from fastasync.algorithms.a3c import GaussianA3C

    net = make_net((3,), 2, head="gaussian", hidden=(4,))

    def algo(bounded, low, high):
        cfg = SimpleNamespace(algo=SimpleNamespace(gamma=0.99, entropy=1e-3, value_coef=0.5, bounded_mean=bounded,
                                                  capg=False))
        info = SimpleNamespace(action_dim=2, action_low=np.array(low, np.float32),
                               action_high=np.array(high, np.float32), env_id="Box-v0")
        return GaussianA3C(cfg, net, info)

    assert algo(True, [-1.0, 0.0], [1.0, 0.5]).mean_bound.tolist() == [1.0, 0.5]
    assert algo(True, [-3.0, -0.25], [1.0, 0.0]).mean_bound.tolist() == [3.0, 0.25]
    assert algo(False, [-1.0, 0.0], [1.0, 0.5]).mean_bound.tolist() == [0.0, 0.0]  # the linear mean
    assert algo(False, [-np.inf, 0.0], [np.inf, 1.0]).mean_bound.tolist() == [0.0, 0.0]
    from fastasync.algorithms import check_discrete

    def check(algo_name, bounded, capg, discrete=False, low=(-np.inf, 0.0), high=(np.inf, 1.0)):
        info = SimpleNamespace(discrete=discrete, action_shape=(2,), action_dim=2, env_id="Box-v0",
                               action_low=np.array(low, np.float32), action_high=np.array(high, np.float32))
        check_discrete(info, algo_name, SimpleNamespace(bounded_mean=bounded, capg=capg))

    with pytest.raises(ValueError, match=r"--bounded-mean needs finite action bounds; Box-v0"):
        check("a3c", True, False)
    check("a3c", False, True)  # CAPG with an infinite bound: that side is never clipped
    check("a3c-lstm", True, True, low=(-1.0, 0.0), high=(1.0, 1.0))
    # on a softmax policy (discrete actions) the options would do nothing: refused, not ignored
    with pytest.raises(ValueError, match=r"--bounded-mean and --capg apply to the Gaussian policy"):
        check("a3c", True, True, discrete=True)
    with pytest.raises(ValueError, match=r"--capg applies to the Gaussian policy of a3c on Box actions; nstep-q"):
        check("nstep-q", False, True, discrete=True)
