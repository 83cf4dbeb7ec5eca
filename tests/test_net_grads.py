"""Whole-network gradients: the fast path against finite differences of the float64 reference.

Fast path: ``Net.forward`` over several time slots, the head loss kernel writing
``Net.dout``, then ``Net.backward`` into ``ws.grad``. Reference: ``reference.net_loss_ref``,
written from the parameter names and the paper's architecture, independent of nets.py.
For every parameter tensor, a random subset of entries is checked by central differences.
"""

import numpy as np
import pytest

import reference as ref
from fastasync.kernels import heads as kheads
from fastasync.nets import make_net

# float64 differences are accurate down to small steps; a step of 1e-4 already makes some
# conv1 weights push a pre-activation (as small as 2e-5 here) across its ReLU kink
FD_EPS = 1e-5
PER_TENSOR = 20
BETA, VALUE_COEF = 0.05, 0.5
MAX_TOL, MEAN_TOL = 1e-3, 1e-4  # measured: max ~5e-6, mean ~5e-7

# (obs_shape, num_actions, T slots, E envs, frame_center)
CASES = {
    "atari44": ((4, 44, 44), 5, 3, 3, 0.0),  # conv1 by space-to-depth (44 is a multiple of the stride)
    "atari42": ((4, 42, 42), 4, 2, 3, 0.0),  # conv1 by im2col
    "atari44-centred": ((4, 44, 44), 5, 3, 3, 0.4),  # frames x/255 - 0.4 (--frame-center)
    "atari42-centred": ((4, 42, 42), 4, 2, 3, 0.6),
    "mlp": ((5,), 3, 3, 7, 0.0),
}


def make_case(name, head, seed=0):
    obs_shape, A, T, E, center = CASES[name]
    net = make_net(obs_shape, A, head=head, frame_center=center)
    rs = np.random.default_rng(seed)
    theta = net.init_params(seed)
    views = net.layout.views(theta)
    for k, v in views.items():  # non-zero biases: ReLU patterns and bias gradients are exercised
        if k.endswith(".b"):
            v[...] = rs.uniform(-0.1, 0.1, v.shape)
    if len(obs_shape) == 3:
        obs = rs.integers(0, 256, (T, E, *obs_shape), dtype=np.uint8)
    else:
        obs = rs.standard_normal((T, E, *obs_shape)).astype(np.float32)
    N = T * E
    actions = rs.integers(0, A, N).astype(np.int32)
    targets = rs.standard_normal(N).astype(np.float32)
    weight = np.full(N, 1.0 / E, np.float32)
    weight[E + 1] = 0.0  # one masked (auto-reset) sample
    return net, theta, obs, actions, targets, weight


def fast_grad(net, theta, obs, actions, targets, weight, head):
    T, E = obs.shape[:2]
    grad = np.full(net.num_params, np.nan, np.float32)  # backward must overwrite every entry
    ws = net.workspace(T + 1, E, theta, grad)  # + the bootstrap slot, as a learner allocates it
    for t in range(T):
        net.forward(ws, obs[t], t)
    out = net.outputs(ws, T).copy()
    # a bootstrap forward of other frames into slot T: the backward over slots 0..T-1 must not read it
    bootstrap = np.random.default_rng(99).permutation(obs[0].reshape(-1)).reshape(obs[0].shape)
    net.forward(ws, bootstrap, T)
    stats = np.zeros(4)
    if head == "a3c":
        kheads.a3c_head_backward(net.outputs(ws, T), actions, targets, weight, BETA, VALUE_COEF, net.dout(ws, T), stats)
    else:
        kheads.q_head_backward(net.outputs(ws, T), actions, targets, weight, net.dout(ws, T), stats)
    net.backward(ws, T)
    return out, grad, stats


@pytest.mark.parametrize("head", ["a3c", "q"])
@pytest.mark.parametrize("name", list(CASES))
def test_net_gradient_matches_finite_differences(name, head):
    net, theta, obs, actions, targets, weight = make_case(name, head)
    T, E = obs.shape[:2]
    out, grad, stats = fast_grad(net, theta, obs, actions, targets, weight, head)
    assert np.all(np.isfinite(grad)), "backward left entries of ws.grad unwritten"

    flat_obs = obs.reshape(T * E, *obs.shape[2:])  # row t*E + e, as the workspace stores slots
    theta64 = theta.astype(np.float64)
    out_ref = ref.net_forward_ref(net, theta64, flat_obs)
    np.testing.assert_allclose(out, out_ref, rtol=1e-4, atol=1e-5 * np.abs(out_ref).max())

    adv = None
    if head == "a3c":
        adv = targets.astype(np.float64) - out_ref[:, net.num_actions]  # held constant, as in A3C

    def loss(th):
        return ref.net_loss_ref(net, th, flat_obs, actions, targets, weight, head, BETA, VALUE_COEF, adv=adv)

    loss0 = loss(theta64)
    reported = stats[0] + stats[1] - BETA * stats[2] if head == "a3c" else stats[0]
    assert abs(reported - loss0) <= 1e-4 * abs(loss0) + 1e-6

    rs = np.random.default_rng(1)
    report = []
    for spec in net.layout.specs:
        a, b = net.layout.offsets[spec.name]
        idx = a + rs.choice(b - a, size=min(PER_TENSOR, b - a), replace=False)
        fd = ref.central_diff(loss, theta64, idx, FD_EPS)
        g = grad[idx].astype(np.float64)
        floor = 1e-2 * max(float(np.abs(grad[a:b]).max()), 1e-8)
        err = ref.rel_error(g, fd, floor)
        report.append((spec.name, err.max(), err.mean()))
        assert err.max() < MAX_TOL, f"{spec.name}: max rel err {err.max():.2e}; all: {report}"
        assert err.mean() < MEAN_TOL, f"{spec.name}: mean rel err {err.mean():.2e}; all: {report}"


@pytest.mark.parametrize("head", ["a3c", "q"])
def test_atari84_forward_matches_reference(head):
    """The full-size paper net (4x84x84 -> 20x20x16 -> 9x9x32 -> 256) over two slots."""
    net = make_net((4, 84, 84), 6, head=head)
    assert net.num_params == 16 * 256 + 16 + 32 * 256 + 32 + 256 * 2592 + 256 + net.head_outputs * 257
    rs = np.random.default_rng(5)
    theta = net.init_params(3)
    for k, v in net.layout.views(theta).items():
        if k.endswith(".b"):
            v[...] = rs.uniform(-0.1, 0.1, v.shape)
    T, E = 2, 3
    obs = rs.integers(0, 256, (T, E, 4, 84, 84), dtype=np.uint8)
    ws = net.workspace(T, E, theta, net.layout.zeros())
    outs = [net.forward(ws, obs[t], t).copy() for t in range(T)]
    expect = ref.net_forward_ref(net, theta.astype(np.float64), obs.reshape(T * E, 4, 84, 84))
    got = np.concatenate(outs)
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-5 * np.abs(expect).max())
    np.testing.assert_array_equal(net.outputs(ws, T), got)


def test_bad_observations_are_clear_value_errors():
    net = make_net((4, 84, 84), 6)
    ws = net.workspace(2, 3, net.init_params(0), net.layout.zeros())
    with pytest.raises(ValueError, match=r"Net.forward: obs has shape \(3, 4, 84, 84\) float32, expected \(3, 4, 84, 84\) uint8"):
        net.forward(ws, np.zeros((3, 4, 84, 84), np.float32), 0)
    with pytest.raises(ValueError, match=r"expected \(3, 4, 84, 84\) uint8"):
        net.forward(ws, np.zeros((2, 4, 84, 84), np.uint8), 0)
    with pytest.raises(ValueError, match="slot 2 out of range"):
        net.forward(ws, np.zeros((3, 4, 84, 84), np.uint8), 2)
    strided = np.zeros((3, 4, 84, 168), np.uint8)[..., ::2]  # not contiguous: accepted, copied
    assert net.forward(ws, strided, 0).shape == (3, 7)
    with pytest.raises(ValueError, match="parameter array has shape"):
        net.workspace(2, 3, np.zeros(10, np.float32), net.layout.zeros())


def test_init_keeps_activation_scale_through_the_atari_torso():
    """He-uniform init: the fc features of fresh params are not vanishingly small.

    With U(+-1/sqrt(fan_in)) every ReLU layer shrank the rms ~2.5x (conv1 0.17 -> fc 0.02 on
    Pong frames) and Pong did not learn; He-uniform keeps fc within 2x of conv1.
    """
    net = make_net((4, 84, 84), 6)
    theta = net.init_params(0)
    p = ref.named_params(net.layout, theta.astype(np.float64))
    rs = np.random.default_rng(0)
    frames = np.full((8, 4, 84, 84), 87, np.uint8)  # Pong-like: flat background, small bright objects
    for i in range(8):
        y, x = rs.integers(0, 76, 2)
        frames[i, :, y : y + 8, x : x + 2] = 236
    h1 = ref.relu_ref(ref.conv_nchw_ref(frames, p["conv1.W"], p["conv1.b"], 8, 4, 1 / 255))
    h2 = ref.relu_ref(ref.conv_nhwc_ref(h1, p["conv2.W"], p["conv2.b"], 4, 2))
    h3 = ref.relu_ref(ref.dense_ref(h2.reshape(8, -1), p["fc.W"], p["fc.b"]))
    rms = [float(np.sqrt((h**2).mean())) for h in (h1, h2, h3)]
    assert rms[2] > 0.5 * rms[0], f"activation rms conv1/conv2/fc = {rms}"


def test_cases_take_both_first_layer_paths():
    nets = {name: make_net(CASES[name][0], CASES[name][1]) for name in ("atari44", "atari42")}
    assert nets["atari44"].layers[0].s2d and not nets["atari42"].layers[0].s2d


def atari_case(shape, head, slots, E, seed, center=0.0):
    """A fused Atari net, parameters with non-zero biases, and frames for ``slots`` slots."""
    net = make_net(shape, 6, head=head, frame_center=center)
    assert net.fused
    rs = np.random.default_rng(seed)
    theta = net.init_params(seed)
    for k, v in net.layout.views(theta).items():
        if k.endswith(".b"):
            v[...] = rs.uniform(-0.1, 0.1, v.shape)
    return net, theta, rs.integers(0, 256, (slots, E, *shape), dtype=np.uint8), rs


@pytest.mark.parametrize("center", [0.0, 0.45])
@pytest.mark.parametrize("shape", [(4, 84, 84), (4, 44, 44)])
@pytest.mark.parametrize("head", ["a3c", "q"])
def test_atari_one_call_forward_is_the_layer_by_layer_forward(shape, head, center):
    """The feed-forward Atari net runs a slot's forward as one kernel call
    (kernels/fused.py): every slot's output and every kept activation is bit for bit the
    layer-by-layer path's, and frames that are not C-contiguous or not writeable go layer by
    layer."""
    T, E = 3, 4
    net, theta, obs, _ = atari_case(shape, head, T, E, 7, center)
    one, layers = (net.workspace(T, E, theta, net.layout.zeros()) for _ in range(2))
    for t in (2, 0, 1):  # any slot order: each slot's buffers are its own
        got = net.forward(one, obs[t], t)
        np.testing.assert_array_equal(got, net.forward_layers(layers, obs[t], t))
        assert got is net.output(one, t)
    for b1, b2 in zip(one.bufs, layers.bufs):
        for key in ("x", "y"):
            if key in b1:
                np.testing.assert_array_equal(b1[key], b2[key])
    strided = np.asfortranarray(obs[0])  # not C-contiguous: the layer path copies it in
    np.testing.assert_array_equal(net.forward(one, strided, 0), net.forward_layers(layers, obs[0], 0))
    frozen = obs[1].copy()
    frozen.flags.writeable = False  # read-only (another Numba type): the layer path too
    np.testing.assert_array_equal(net.forward(one, frozen, 1), net.forward_layers(layers, obs[1], 1))


@pytest.mark.parametrize("center", [0.0, 0.45])
@pytest.mark.parametrize("shape", [(4, 84, 84), (4, 44, 44)])
@pytest.mark.parametrize("T", [1, 3])
def test_atari_one_call_backward_is_the_layer_by_layer_backward(shape, T, center):
    """The feed-forward Atari net's backward of a segment is one kernel call too
    (kernels/fused.py): every gradient and every hidden layer's output gradient is bit for bit
    the layer-by-layer path's, for a segment shorter than the workspace's slots as well."""
    slots, E = 4, 3
    net, theta, obs, rs = atari_case(shape, "a3c", slots, E, 11, center)
    grads = [np.full(net.num_params, np.nan, np.float32) for _ in range(2)]
    one, layers = (net.workspace(slots, E, theta, g) for g in grads)
    assert one.fused_backward_args is not None
    dout = rs.standard_normal((slots * E, net.head_outputs)).astype(np.float32)
    dout[rs.random(dout.shape) < 0.5] = 0.0
    for ws in (one, layers):
        for t in range(slots):
            net.forward(ws, obs[t], t)
        net.dout(ws, slots)[...] = dout
    net.backward(one, T)
    net.backward_layers(layers, T)
    assert np.isfinite(grads[0]).all()  # every entry written
    np.testing.assert_array_equal(grads[0], grads[1])
    for b1, b2 in zip(one.bufs, layers.bufs):
        np.testing.assert_array_equal(b1["dy"][: len(b1["dy"]) // slots * T], b2["dy"][: len(b2["dy"]) // slots * T])
    with pytest.raises(ValueError, match="Net.backward: T = 5 slots, expected 1..4"):
        net.backward(one, slots + 1)


def test_only_the_feed_forward_space_to_depth_atari_net_is_fused():
    assert not make_net((4, 42, 42), 4).fused  # conv1 by im2col
    assert not make_net((4, 84, 84), 6, lstm=8).fused
    assert not make_net((5,), 3).fused
    net = make_net((4, 42, 42), 4)
    ws = net.workspace(2, 2, net.init_params(0), net.layout.zeros())
    assert ws.fused_args is None and ws.fused_backward_args is None
    fused = make_net((4, 84, 84), 4)
    assert fused.workspace(2, 2, fused.init_params(0)).fused_backward_args is None  # forward-only


@pytest.mark.parametrize("kind", ["atari44", "atari42", "mlp-lstm"])
def test_forward_only_workspace_matches_and_allocates_no_backward_buffers(kind):
    """``net.workspace(slots, E, theta)`` (no gradient array: the Q methods' target net,
    evaluation) gives the same forward outputs as a full workspace, holds none of the
    backward's buffers, and refuses a backward pass with a clear error."""
    if kind == "mlp-lstm":
        net, (T, E) = make_net((5,), 3, lstm=6), (3, 4)
        obs = np.random.default_rng(1).standard_normal((T, E, 5)).astype(np.float32)
    else:
        shape, A, T, E, _ = CASES[kind]
        net = make_net(shape, A)
        obs = np.random.default_rng(1).integers(0, 256, (T, E, *shape), dtype=np.uint8)
    theta = net.init_params(2)
    full = net.workspace(T, E, theta, net.layout.zeros())
    fwd = net.workspace(T, E, theta)
    for t in range(T):
        if net.recurrent:
            full.reset_in[t] = fwd.reset_in[t] = t == 1
        np.testing.assert_array_equal(net.forward(fwd, obs[t], t), net.forward(full, obs[t], t))
    assert fwd.grad is None and fwd.g is None

    def nbytes(ws):
        return sum(v.nbytes for b in ws.bufs for v in b.values() if isinstance(v, np.ndarray))

    backward_only = {"dy", "dcols", "no_dx", "dcat", "dWq", "dz", "hprev", "dh", "dc", "gates", "zseq"}
    assert all(not (backward_only & set(b)) for b in fwd.bufs)
    assert any("dy" in b for b in full.bufs) and nbytes(fwd) < nbytes(full)
    with pytest.raises(ValueError, match="Net.backward: this workspace is forward-only"):
        net.backward(fwd, T)
    with pytest.raises(ValueError, match="Net.dout: this workspace is forward-only"):
        net.dout(fwd, T)


def test_q_target_net_workspace_is_forward_only():
    """The Q methods' target net only ever runs forward: its workspace has no gradient buffers."""
    from types import SimpleNamespace

    from fastasync.algorithms import make_algorithm
    from fastasync.config import build
    from fastasync.envs import env_info
    from fastasync.kernels.rng import seed_state

    cfg = build({"env": "Pong-v5", "algo": "nstep-q"})
    net = make_net((4, 84, 84), 6, "q")
    algo = make_algorithm("nstep-q", cfg, net, env_info("Pong-v5", "envpool"))
    learner = SimpleNamespace(rng_state=seed_state(0), E=8, T=5, shared=SimpleNamespace(target=net.init_params(0)))
    algo.bind(learner)
    ws = algo.target_ws
    assert not ws.backward and ws.grad is None and ws.slots == 6
    assert all("dy" not in b for b in ws.bufs)
    full = net.workspace(6, 8, learner.shared.target, net.layout.zeros())
    saved = sum(v.nbytes for b in full.bufs for v in b.values() if isinstance(v, np.ndarray)) + net.layout.size * 4
    saved -= sum(v.nbytes for b in ws.bufs for v in b.values() if isinstance(v, np.ndarray))
    assert saved > 5e6  # the gradient array (2.7 MB) and every backward buffer (2.6 MB)
