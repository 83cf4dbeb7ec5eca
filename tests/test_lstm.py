"""LSTM kernels vs the float64 reference (tests/reference_lstm.py) and finite differences."""

import numpy as np
import pytest

from fastasync.kernels.lstm import (
    check_lstm_backward,
    check_lstm_forward,
    check_lstm_step,
    lstm_backward,
    lstm_forward,
    lstm_step,
)
from reference_lstm import finite_diff, lstm_forward_ref, lstm_loss_ref

# (T, B, I, H): odd sizes catch indexing bugs that square powers of two hide
SIZES = [(5, 3, 5, 4), (5, 7, 11, 9), (6, 3, 11, 4), (5, 7, 5, 9)]
f32 = np.float32


def _problem(T, B, I, H, seed=0, resets=((2, 1),)):
    """Random float32 inputs; ``resets`` lists (t, b) episode boundaries (plus b=0 at t=0)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(f32)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(f32)
    c0 = rng.standard_normal((B, H)).astype(f32)
    reset = np.zeros((T, B), np.uint8)
    reset[0, 0] = 1
    for t, b in resets:
        reset[t, b % B] = 1
    Wx = (rng.standard_normal((4 * H, I)) / np.sqrt(I)).astype(f32)
    Wh = (rng.standard_normal((4 * H, H)) / np.sqrt(H)).astype(f32)
    b = (0.5 * rng.standard_normal(4 * H)).astype(f32)
    return x, h0, c0, reset, Wx, Wh, b


def _forward(x, h0, c0, reset, Wx, Wh, b):
    T, B, _ = x.shape
    H = h0.shape[1]
    z = np.empty((B, 4 * H), f32)
    gates = np.empty((T, B, 4 * H), f32)
    c_seq = np.empty((T, B, H), f32)
    h_seq = np.empty((T, B, H), f32)
    args = (x, h0, c0, reset, Wx, Wh, b, z, gates, c_seq, h_seq)
    check_lstm_forward(*args)
    lstm_forward(*args)
    return gates, c_seq, h_seq


def _backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, dh_seq, fill=np.nan):
    T, B, I = x.shape
    H = h0.shape[1]
    outs = [np.full(s, fill, f32) for s in ((4 * H, I), (4 * H, H), (4 * H,), (T, B, I))]
    scratch = [np.full(s, fill, f32) for s in ((T, B, 4 * H), (B, H), (B, H), (T, B, H))]
    args = (x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, dh_seq, *outs, *scratch)
    check_lstm_backward(*args)
    lstm_backward(*args)
    return outs  # dWx, dWh, db, dx


@pytest.mark.parametrize("T,B,I,H", SIZES)
def test_forward_matches_reference(T, B, I, H):
    x, h0, c0, reset, Wx, Wh, b = _problem(T, B, I, H, seed=T * B + I + H, resets=((2, 1), (3, B - 1)))
    gates, c_seq, h_seq = _forward(x, h0, c0, reset, Wx, Wh, b)
    h_ref, c_ref = lstm_forward_ref(x, h0, c0, reset, Wx, Wh, b)
    np.testing.assert_allclose(h_seq, h_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c_seq, c_ref, rtol=1e-4, atol=1e-5)
    # gates hold the activations: i, f, o in (0, 1), g in (-1, 1)
    sig = np.concatenate([gates[..., : 2 * H], gates[..., 3 * H :]], axis=-1)
    assert np.all((sig >= 0) & (sig <= 1)) and np.all(np.abs(gates[..., 2 * H : 3 * H]) <= 1)


def test_forward_reset_ignores_entering_state():
    T, B, I, H = 5, 3, 5, 4
    x, h0, c0, reset, Wx, Wh, b = _problem(T, B, I, H)
    _, c1, h1 = _forward(x, h0, c0, reset, Wx, Wh, b)
    h0b, c0b = h0.copy(), c0.copy()
    h0b[0] += 3.0  # env 0 resets at t=0: its entering state must not matter
    c0b[0] -= 2.0
    _, c2, h2 = _forward(x, h0b, c0b, reset, Wx, Wh, b)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(c1, c2)
    h0b[2] += 1.0  # env 2 does not reset: it must
    _, _, h3 = _forward(x, h0b, c0b, reset, Wx, Wh, b)
    assert not np.allclose(h3[:, 2], h1[:, 2])


@pytest.mark.parametrize("in_place", [False, True])
def test_step_equals_one_forward_step(in_place):
    T, B, I, H = 4, 7, 11, 9
    x, h0, c0, reset, Wx, Wh, b = _problem(T, B, I, H, resets=((2, 3),))
    _, c_seq, h_seq = _forward(x, h0, c0, reset, Wx, Wh, b)
    t = 3  # step t from the state after step t-1 (no reset at t)
    h = h_seq[t - 1].copy()
    c = c_seq[t - 1].copy()
    z = np.empty((2, B, 4 * H), f32)
    h_out, c_out = (h, c) if in_place else (np.empty_like(h), np.empty_like(c))
    args = (np.ascontiguousarray(x[t]), h, c, Wx, Wh, b, z, h_out, c_out)
    check_lstm_step(*args)
    lstm_step(*args)
    np.testing.assert_allclose(h_out, h_seq[t], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(c_out, c_seq[t], rtol=1e-6, atol=1e-6)


def _rel_err(got, want):
    """|got - want| / (|want| + 1e-2 * max|want|): relative, with a floor for tiny entries."""
    denom = np.abs(want) + 1e-2 * np.max(np.abs(want)) + 1e-12
    return np.abs(got - want) / denom


@pytest.mark.parametrize("T,B,I,H", SIZES[:3])
def test_backward_matches_finite_differences(T, B, I, H):
    x, h0, c0, reset, Wx, Wh, b = _problem(T, B, I, H, seed=7 + H, resets=((2, 1), (3, 2)))
    G = np.random.default_rng(1).standard_normal((T, B, H)).astype(f32)
    gates, c_seq, h_seq = _forward(x, h0, c0, reset, Wx, Wh, b)
    dWx, dWh, db, dx = _backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, G)

    # float64 copies of the SAME float32 values, perturbed one entry at a time
    x64, h064, c064, Wx64, Wh64, b64, G64 = (a.astype(np.float64) for a in (x, h0, c0, Wx, Wh, b, G))

    def loss():
        return lstm_loss_ref(x64, h064, c064, reset, Wx64, Wh64, b64, G64)

    for name, got, param in (("dWx", dWx, Wx64), ("dWh", dWh, Wh64), ("db", db, b64), ("dx", dx, x64)):
        want = finite_diff(loss, param, eps=1e-6)
        err = _rel_err(got.astype(np.float64), want)
        assert err.max() < 1e-2, f"{name}: max rel err {err.max():.2e}"
        assert err.mean() < 1e-3, f"{name}: mean rel err {err.mean():.2e}"


def test_backward_reset_cuts_gradient():
    T, B, I, H, r, e = 5, 3, 5, 4, 2, 1
    x, h0, c0, reset, Wx, Wh, b = _problem(T, B, I, H, resets=((r, e),))
    gates, c_seq, h_seq = _forward(x, h0, c0, reset, Wx, Wh, b)
    rng = np.random.default_rng(3)
    G = rng.standard_normal((T, B, H)).astype(f32)
    G[:r, e] = 0.0  # env e only gets loss at and after its episode boundary
    dx = _backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, G)[3]
    assert np.all(dx[:r, e] == 0.0), "gradient leaked across the reset"
    assert np.all(np.abs(dx[r:, e]).sum(axis=-1) > 0)
    # other envs, without a reset, do pass gradient back to early steps
    G2 = G.copy()
    G2[:r] = 0.0
    dx2 = _backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, G2)[3]
    assert np.all(dx2[:r, e] == 0.0)
    assert np.all(np.abs(dx2[:r, 2]).sum(axis=-1) > 0)
    # dx before the reset is unchanged whatever dh after it is
    G3 = G.copy()
    G3[:r, e] = rng.standard_normal((r, H))
    G4 = G3.copy()
    G4[r:, e] = rng.standard_normal((T - r, H))
    dx3 = _backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, G3)[3]
    dx4 = _backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, G4)[3]
    np.testing.assert_array_equal(dx3[:r, e], dx4[:r, e])


def test_backward_overwrites_outputs():
    T, B, I, H = 5, 3, 5, 4
    x, h0, c0, reset, Wx, Wh, b = _problem(T, B, I, H)
    gates, c_seq, h_seq = _forward(x, h0, c0, reset, Wx, Wh, b)
    G = np.random.default_rng(2).standard_normal((T, B, H)).astype(f32)
    a = _backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, G, fill=np.nan)
    z = _backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, G, fill=0.0)
    for ga, gz in zip(a, z):
        np.testing.assert_array_equal(ga, gz)


def test_checks_name_the_bad_array():
    T, B, I, H = 5, 3, 5, 4
    x, h0, c0, reset, Wx, Wh, b = _problem(T, B, I, H)
    z = np.empty((B, 4 * H), f32)
    gates = np.empty((T, B, 4 * H), f32)
    c_seq = np.empty((T, B, H), f32)
    h_seq = np.empty((T, B, H), f32)
    good = dict(x=x, h0=h0, c0=c0, reset=reset, Wx=Wx, Wh=Wh, b=b, z=z, gates=gates, c_seq=c_seq, h_seq=h_seq)
    check_lstm_forward(**good)

    def bad(**change):
        return {**good, **change}

    msg = r"lstm_forward: Wx has shape \(8, 5\) float32, expected \(16, 5\) float32 C-contiguous"
    with pytest.raises(ValueError, match=msg):
        check_lstm_forward(**bad(Wx=np.zeros((8, 5), f32)))
    with pytest.raises(ValueError, match=r"lstm_forward: b .* expected \(16,\) float32"):
        check_lstm_forward(**bad(b=np.zeros(16, np.float64)))
    with pytest.raises(ValueError, match=r"lstm_forward: Wh .*\(not C-contiguous\), expected \(16, 4\)"):
        check_lstm_forward(**bad(Wh=np.asfortranarray(Wh)))
    with pytest.raises(ValueError, match=r"lstm_forward: reset .* expected \(5, 3\) uint8"):
        check_lstm_forward(**bad(reset=reset.astype(bool)))
    with pytest.raises(ValueError, match=r"lstm_forward: x has shape \(3, 5\), expected \(T, B, I\)"):
        check_lstm_forward(**bad(x=x[0]))
    with pytest.raises(ValueError, match=r"lstm_forward: gates has shape \(5, 3, 4\)"):
        check_lstm_forward(**bad(gates=np.empty((T, B, H), f32)))

    with pytest.raises(ValueError, match=r"lstm_step: z has shape \(3, 16\) float32, expected \(2, 3, 16\)"):
        check_lstm_step(x[0], h0, c0, Wx, Wh, b, z, h0.copy(), c0.copy())

    dh_seq = np.zeros((T, B, H), f32)
    bwd = [np.empty(s, f32) for s in ((4 * H, I), (4 * H, H), (4 * H,), (T, B, I), (T, B, 4 * H), (B, H), (B, H), (T, B, H))]
    check_lstm_backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, dh_seq, *bwd)
    bwd[4] = np.empty((B, 4 * H), f32)
    with pytest.raises(ValueError, match=r"lstm_backward: dz has shape \(3, 16\) float32, expected \(5, 3, 16\)"):
        check_lstm_backward(x, h0, c0, reset, Wx, Wh, gates, c_seq, h_seq, dh_seq, *bwd)
