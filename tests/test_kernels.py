"""Every fast kernel against its float64 reference (tests/reference.py), on odd sizes.

Forward kernels must agree with the reference to float32 precision; every backward kernel
must agree with central finite differences of the float64 reference loss (max and mean
relative-error bounds, as umap's test_umap_grads.py does), and with the reference's
hand-derived gradient.
"""

import math
import threading

import numpy as np
import pytest
from scipy import stats as sstats

import reference as ref
from fastasync.kernels import blas as kblas
from fastasync.kernels import conv as kconv
from fastasync.kernels import dense as kdense
from fastasync.kernels import heads as kheads
from fastasync.kernels import optim as koptim
from fastasync.kernels import rng as krng
from fastasync.kernels.checks import check_array

RTOL = 1e-4
FD_EPS = 1e-5  # float64 references are smooth except at ReLU kinks, which the tests avoid
FD_MAX, FD_MEAN = 1e-3, 1e-4


def assert_close(fast, slow, rtol=RTOL, atol_frac=1e-5):
    """Elementwise agreement, with an absolute floor proportional to the largest magnitude."""
    slow = np.asarray(slow, np.float64)
    atol = atol_frac * max(float(np.abs(slow).max(initial=0.0)), 1e-12)
    np.testing.assert_allclose(np.asarray(fast, np.float64), slow, rtol=rtol, atol=atol)


def assert_grad_fd(analytic, fd, max_tol=FD_MAX, mean_tol=FD_MEAN, what=""):
    """max and mean relative error of an analytic gradient against finite differences."""
    analytic, fd = np.asarray(analytic, np.float64).ravel(), np.asarray(fd, np.float64).ravel()
    floor = 1e-2 * max(float(np.abs(fd).max(initial=0.0)), 1e-8)
    err = ref.rel_error(analytic, fd, floor)
    assert err.max() < max_tol, f"{what}: max rel err {err.max():.2e} (mean {err.mean():.2e})"
    assert err.mean() < mean_tol, f"{what}: mean rel err {err.mean():.2e}"


def sample_idx(rng, size, n):
    return rng.choice(size, size=min(n, size), replace=False)


def away_from_zero(rng, shape, margin=0.05):
    """Normal values with |z| >= margin, so that finite differences never cross a ReLU kink."""
    z = rng.standard_normal(shape)
    return np.where(np.abs(z) < margin, np.sign(z + 1e-12) * margin, z)


# --------------------------------------------------------------------------- GEMM


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,K,N", [(7, 13, 5), (1, 2592, 9), (40, 3, 1), (257, 64, 33)])
def test_gemm_matches_float64_for_every_transpose(rng, trans_a, trans_b, M, K, N):
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    c = np.full((M, N), np.nan, np.float32)  # overwritten, never accumulated into
    kblas.gemm(a, trans_a, b, trans_b, c)
    expect = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    assert_close(c, expect, rtol=1e-4, atol_frac=1e-5)


def test_gemm_reads_row_slices_with_their_row_stride(rng):
    """Column blocks of a wider array (row stride > width) are valid operands and outputs."""
    big_a = rng.standard_normal((9, 20)).astype(np.float32)
    big_b = rng.standard_normal((6, 30)).astype(np.float32)
    big_c = np.zeros((9, 40), np.float32)
    a, b, c = big_a[:, 3:9], big_b[:, 5:12], big_c[:, 10:17]
    kblas.gemm(a, False, b, False, c)
    assert_close(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5)
    assert not big_c[:, :10].any() and not big_c[:, 17:].any()  # nothing outside the block written


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_acc_adds_into_row_slices(rng, trans_a, trans_b):
    """c += op(a) @ op(b) on a column block of a wider array; K = 0 leaves c as it was."""
    M, K, N = 7, 11, 5
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    big_c = rng.standard_normal((M, 20)).astype(np.float32)
    before = big_c.copy()
    c = big_c[:, 4 : 4 + N]
    kblas.gemm_acc(a, trans_a, b, trans_b, c)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    expect = before[:, 4 : 4 + N] + (a64.T if trans_a else a64) @ (b64.T if trans_b else b64)
    assert_close(c, expect, rtol=1e-5)
    np.testing.assert_array_equal(big_c[:, :4], before[:, :4])
    np.testing.assert_array_equal(big_c[:, 4 + N :], before[:, 4 + N :])
    empty_a, empty_b = np.zeros((M, 1), np.float32)[:, :0], np.zeros((1, N), np.float32)[:0]  # K = 0, unit column stride
    kblas.gemm_acc(empty_a, False, empty_b, False, c)
    assert_close(c, expect, rtol=1e-5)


def test_gemm_rejects_shapes_that_do_not_chain(rng):
    a = np.zeros((4, 5), np.float32)
    b = np.zeros((6, 3), np.float32)
    c = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="do not chain"):
        kblas.gemm(a, False, b, False, c)
    with pytest.raises(ValueError, match="do not chain"):
        kblas.gemm(a, False, np.zeros((5, 3), np.float32), False, np.zeros((4, 4), np.float32))


# --------------------------------------------------------------------------- convolution

# (B, C, H, W, OC, k, stride): the paper's conv1 shape plus odd ones
NCHW_CASES = [(3, 4, 23, 19, 5, 5, 2), (7, 3, 17, 21, 7, 3, 1), (3, 4, 44, 44, 16, 8, 4)]
# (B, H, W, C, OC, k, stride)
NHWC_CASES = [(3, 23, 19, 5, 7, 5, 2), (7, 11, 13, 3, 9, 3, 1), (3, 10, 10, 16, 32, 4, 2)]


def fast_conv_nchw(x, W, b, k, s, scale):
    B, C, H, Wd = x.shape
    OH, OW = kconv.out_size(H, k, s), kconv.out_size(Wd, k, s)
    cols = np.empty((B * OH * OW, C * k * k), np.float32)
    kconv.im2col_nchw(x, k, k, s, scale, cols)
    y = np.empty((B * OH * OW, W.shape[0]), np.float32)
    kdense.dense_forward(cols, W, b, y)
    return cols, y.reshape(B, OH, OW, -1)


def fast_conv_nhwc(x, W, b, k, s):
    B, H, Wd, C = x.shape
    OH, OW = kconv.out_size(H, k, s), kconv.out_size(Wd, k, s)
    cols = np.empty((B * OH * OW, k * k * C), np.float32)
    kconv.im2col_nhwc(x, k, k, s, cols)
    y = np.empty((B * OH * OW, W.shape[0]), np.float32)
    kdense.dense_forward(cols, W, b, y)
    return cols, y.reshape(B, OH, OW, -1)


@pytest.mark.parametrize("case", NCHW_CASES)
def test_im2col_nchw_matches_reference(rng, case):
    B, C, H, W, OC, k, s = case
    x = rng.integers(0, 256, (B, C, H, W), dtype=np.uint8)
    expect = ref.im2col_nchw_ref(x, k, s, scale=1 / 255)
    cols = np.full(expect.shape, np.nan, np.float32)
    kconv.im2col_nchw(x, k, k, s, 1 / 255, cols)
    assert_close(cols, expect, rtol=1e-6)


@pytest.mark.parametrize("case", NHWC_CASES)
def test_im2col_col2im_nhwc_match_reference(rng, case):
    B, H, W, C, OC, k, s = case
    x = rng.standard_normal((B, H, W, C)).astype(np.float32)
    expect = ref.im2col_nhwc_ref(x, k, s)
    cols = np.full(expect.shape, np.nan, np.float32)
    kconv.im2col_nhwc(x, k, k, s, cols)
    np.testing.assert_array_equal(cols, expect.astype(np.float32))

    dcols = rng.standard_normal(expect.shape).astype(np.float32)
    dx = np.full(x.shape, np.nan, np.float32)  # col2im must overwrite, not accumulate into garbage
    kconv.col2im_nhwc(dcols, k, k, s, dx)
    assert_close(dx, ref.col2im_nhwc_ref(dcols, x.shape, k, s), rtol=1e-5)
    # adjoint identity: <im2col(x), dcols> == <x, col2im(dcols)>
    lhs = float((expect * dcols.astype(np.float64)).sum())
    rhs = float((x.astype(np.float64) * dx.astype(np.float64)).sum())
    assert math.isclose(lhs, rhs, rel_tol=1e-5, abs_tol=1e-4)


def sparse_by_slot(rng, dy, slots):
    """dy with its first slot dense (the sgemm path), the second 10% nonzero (the sparse
    path, as a trained net's ReLU masks give) and any third all zero; checks the paths."""
    per = dy.shape[0] // slots
    parts = dy.reshape(slots, per, -1)
    parts[1] *= rng.random(parts[1].shape) < 0.1
    parts[2:] = 0.0
    assert not kdense.sparse_pays(parts[0]) and all(kdense.sparse_pays(p) for p in parts[1:])
    return dy


@pytest.mark.parametrize("case", NHWC_CASES)
def test_conv_backward_slot_by_slot_matches_reference(rng, case):
    """dW, db, dx = col2im(dy @ W) over 3 slots of B samples, each slot's columns gathered
    again into a one-slot scratch; run twice: nothing accumulates across calls. One slot's
    dy is dense, one mostly zeros, one all zeros (sparse_by_slot)."""
    B, H, W, C, OC, k, s = case
    slots = 3
    OH, OW = (H - k) // s + 1, (W - k) // s + 1
    x = rng.standard_normal((slots * B, H, W, C)).astype(np.float32)
    dy = sparse_by_slot(rng, rng.standard_normal((slots * B * OH * OW, OC)).astype(np.float32), slots)
    Wt = rng.standard_normal((OC, k * k * C)).astype(np.float32)
    cols, dcols = (np.full((B * OH * OW, k * k * C), np.nan, np.float32) for _ in range(2))
    dW, db = np.full(Wt.shape, np.nan, np.float32), np.full(OC, np.nan, np.float32)
    dx = np.full(x.shape, np.nan, np.float32)
    for _ in range(2):
        kconv.conv_backward(x, False, 1.0, dy, Wt, B, k, k, s, cols, dcols, dW, db, dx, True)
    rW, rb, rx = ref.conv_nhwc_backward_ref(x, Wt, dy.reshape(slots * B, OH, OW, OC), k, s)
    assert_close(dW, rW, rtol=1e-4)
    assert_close(db, rb, rtol=1e-4)
    assert_close(dx, rx, rtol=1e-4)


def test_conv_backward_rejects_what_it_cannot_do():
    """No slot (or a ragged one) and an input gradient for channels-first frames are errors,
    not a silently stale dW."""
    B, H, W, C, OC, k, s = NHWC_CASES[0]
    OH, OW = (H - k) // s + 1, (W - k) // s + 1
    x = np.zeros((2 * B, H, W, C), np.float32)
    dy = np.zeros((2 * B * OH * OW, OC), np.float32)
    Wt = np.zeros((OC, k * k * C), np.float32)
    cols = np.zeros((B * OH * OW, k * k * C), np.float32)
    dW, db, dx = np.zeros_like(Wt), np.zeros(OC, np.float32), np.zeros_like(x)
    with pytest.raises(ValueError, match="slots of B samples"):
        kconv.conv_backward(x[: B - 1], False, 1.0, dy[:0], Wt, B, k, k, s, cols, cols, dW, db, dx, True)
    with pytest.raises(ValueError, match="slots of B samples"):
        kconv.conv_backward(x[: B + 1], False, 1.0, dy, Wt, B, k, k, s, cols, cols, dW, db, dx, True)
    frames = np.zeros((B, C, H, W), np.uint8)
    with pytest.raises(ValueError, match="channels-first"):
        kconv.conv_backward(frames, True, 1.0, dy[: B * OH * OW], Wt, B, k, k, s, cols, cols, dW, db,
                            np.zeros((1, 1, 1, 1), np.float32), True)


@pytest.mark.parametrize("case", NCHW_CASES)
def test_conv_backward_first_layer_slot_by_slot_matches_reference(rng, case):
    """The im2col first layer (uint8 frames, scaled; no input gradient), over 2 slots."""
    B, C, H, W, OC, k, s = case
    slots = 2
    OH, OW = (H - k) // s + 1, (W - k) // s + 1
    x = rng.integers(0, 256, (slots * B, C, H, W), dtype=np.uint8)
    dy = sparse_by_slot(rng, rng.standard_normal((slots * B * OH * OW, OC)).astype(np.float32), slots)
    Wt = rng.standard_normal((OC, C * k * k)).astype(np.float32)
    cols = np.full((B * OH * OW, C * k * k), np.nan, np.float32)
    dW, db = np.full(Wt.shape, np.nan, np.float32), np.full(OC, np.nan, np.float32)
    no_dx = np.zeros((1, 1, 1, 1), np.float32)
    for _ in range(2):
        kconv.conv_backward(x, True, 1 / 255, dy, Wt, B, k, k, s, cols, np.zeros((1, 1), np.float32), dW, db,
                            no_dx, False)
    rW, rb = ref.conv_nchw_backward_ref(x, Wt, dy.reshape(slots * B, OH, OW, OC), k, s, scale=1 / 255)
    assert_close(dW, rW, rtol=1e-4)
    assert_close(db, rb, rtol=1e-4)


@pytest.mark.parametrize("case", NCHW_CASES)
def test_conv_nchw_forward_matches_reference(rng, case):
    B, C, H, W, OC, k, s = case
    x = rng.integers(0, 256, (B, C, H, W), dtype=np.uint8)
    Wt = (rng.standard_normal((OC, C * k * k)) / math.sqrt(C * k * k)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    _, y = fast_conv_nchw(x, Wt, b, k, s, 1 / 255)
    assert_close(y, ref.conv_nchw_ref(x, Wt, b, k, s, scale=1 / 255))


@pytest.mark.parametrize("case", NHWC_CASES)
def test_conv_nhwc_forward_matches_reference(rng, case):
    B, H, W, C, OC, k, s = case
    x = rng.standard_normal((B, H, W, C)).astype(np.float32)
    Wt = (rng.standard_normal((OC, k * k * C)) / math.sqrt(k * k * C)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    _, y = fast_conv_nhwc(x, Wt, b, k, s)
    assert_close(y, ref.conv_nhwc_ref(x, Wt, b, k, s))


@pytest.mark.parametrize("case", NHWC_CASES)
def test_conv_nhwc_backward_matches_fd(rng, case):
    """dW, db (dense_backward on the columns) and dx (col2im) of L = sum(conv(x) * G)."""
    B, H, W, C, OC, k, s = case
    x = rng.standard_normal((B, H, W, C)).astype(np.float32)
    Wt = (rng.standard_normal((OC, k * k * C)) / math.sqrt(k * k * C)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    cols, y = fast_conv_nhwc(x, Wt, b, k, s)
    G = rng.standard_normal(y.shape).astype(np.float32)

    dW = np.full(Wt.shape, np.nan, np.float32)
    db = np.full(b.shape, np.nan, np.float32)
    dcols = np.full(cols.shape, np.nan, np.float32)
    kdense.dense_backward(cols, Wt, G.reshape(-1, OC), dW, db, dcols, True)
    dx = np.full(x.shape, np.nan, np.float32)
    kconv.col2im_nhwc(dcols, k, k, s, dx)

    rW, rb, rx = ref.conv_nhwc_backward_ref(x, Wt, G, k, s)
    assert_close(dW, rW)
    assert_close(db, rb)
    assert_close(dx, rx)

    x64, W64, b64, G64 = (a.astype(np.float64) for a in (x, Wt, b, G))
    n = 40
    iW, ib, ix = sample_idx(rng, W64.size, n), sample_idx(rng, OC, n), sample_idx(rng, x64.size, n)
    fW = ref.central_diff(lambda w_: (ref.conv_nhwc_ref(x64, w_, b64, k, s) * G64).sum(), W64, iW, FD_EPS)
    fb = ref.central_diff(lambda b_: (ref.conv_nhwc_ref(x64, W64, b_, k, s) * G64).sum(), b64, ib, FD_EPS)
    fx = ref.central_diff(lambda x_: (ref.conv_nhwc_ref(x_, W64, b64, k, s) * G64).sum(), x64, ix, FD_EPS)
    assert_grad_fd(dW.ravel()[iW], fW, what="conv dW")
    assert_grad_fd(db[ib], fb, what="conv db")
    assert_grad_fd(dx.ravel()[ix], fx, what="conv dx")
    # the reference's own backward formula against the same differences
    assert_grad_fd(rW.ravel()[iW], fW, 1e-6, 1e-7, "ref conv dW")
    assert_grad_fd(rx.ravel()[ix], fx, 1e-6, 1e-7, "ref conv dx")


@pytest.mark.parametrize("case", NCHW_CASES[:2])
def test_conv_nchw_backward_matches_fd(rng, case):
    """First layer: dW, db (no dx: its input is the uint8 frame)."""
    B, C, H, W, OC, k, s = case
    x = rng.integers(0, 256, (B, C, H, W), dtype=np.uint8)
    Wt = (rng.standard_normal((OC, C * k * k)) / math.sqrt(C * k * k)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    cols, y = fast_conv_nchw(x, Wt, b, k, s, 1 / 255)
    G = rng.standard_normal(y.shape).astype(np.float32)
    dW = np.full(Wt.shape, np.nan, np.float32)
    db = np.full(b.shape, np.nan, np.float32)
    placeholder = np.zeros((1, 1), np.float32)
    kdense.dense_backward(cols, Wt, G.reshape(-1, OC), dW, db, placeholder, False)
    assert placeholder[0, 0] == 0.0

    rW, rb = ref.conv_nchw_backward_ref(x, Wt, G, k, s, scale=1 / 255)
    assert_close(dW, rW)
    assert_close(db, rb)

    W64, b64, G64 = (a.astype(np.float64) for a in (Wt, b, G))
    iW, ib = sample_idx(rng, W64.size, 40), sample_idx(rng, OC, 40)
    fW = ref.central_diff(lambda w_: (ref.conv_nchw_ref(x, w_, b64, k, s, 1 / 255) * G64).sum(), W64, iW, FD_EPS)
    fb = ref.central_diff(lambda b_: (ref.conv_nchw_ref(x, W64, b_, k, s, 1 / 255) * G64).sum(), b64, ib, FD_EPS)
    assert_grad_fd(dW.ravel()[iW], fW, what="conv1 dW")
    assert_grad_fd(db[ib], fb, what="conv1 db")


@pytest.mark.parametrize(
    "B,C,H,W,OC,k,s",
    [
        (3, 4, 20, 24, 5, 8, 4),  # q = 2: OW 5 (one 4-wide group + 1), odd OC
        (2, 2, 10, 8, 3, 4, 2),  # q = 2: OW 3 (no 4-wide group)
        (1, 4, 44, 48, 16, 8, 4),  # q = 2: OH 10, OW 11 (two groups + 3), the paper's channels
        (2, 3, 12, 12, 4, 6, 2),  # q = 3: the sgemm and shift-combine path
    ],
)
def test_space_to_depth_conv_matches_reference_over_slots(rng, B, C, H, W, OC, k, s):
    """The first layer by space-to-depth (the net's path for 8x8/4): forward of each slot,
    then dW, db over all slots (blocks rebuilt sample by sample from the frames), against the
    float64 reference convolution."""
    q, Hs, Ws = k // s, H // s, W // s
    OH, OW = (H - k) // s + 1, (W - k) // s + 1
    D = C * s * s
    slots = 2
    x = rng.integers(0, 256, (slots, B, C, H, W), dtype=np.uint8)
    Wt = (rng.standard_normal((OC, C * k * k)) / math.sqrt(C * k * k)).astype(np.float32)
    b = rng.standard_normal(OC).astype(np.float32)
    Wq = np.full((q * q, OC, D), np.nan, np.float32)
    kconv.s2d_weights(Wt, C, k, s, Wq)
    S1 = np.full((Hs * Ws, D), np.nan, np.float32)  # one sample's scratch
    ycat = np.full((Hs * Ws, q * q * OC), np.nan, np.float32)
    y = np.full((slots * B * OH * OW, OC), np.nan, np.float32)
    per = B * OH * OW
    for t in range(slots):
        kconv.conv_s2d_forward(x[t], s, 1 / 255, Wq, b, q, OH, OW, S1, ycat, y[t * per : (t + 1) * per])
    xs = x.reshape(slots * B, C, H, W)
    expect = np.maximum(ref.conv_nchw_ref(xs, Wt, b, k, s, scale=1 / 255), 0)
    assert_close(y.reshape(expect.shape), expect)

    # dense gradients for even samples (q = 2: the sgemm path), ReLU-like zeros for odd ones:
    # 2 of 3 channels and a quarter of the positions (the sparse dot path, which skips zeros)
    G = rng.standard_normal(y.shape).astype(np.float32).reshape(slots * B, OH * OW, OC)
    G[1::2, :, np.arange(OC) % 3 != 0] = 0.0
    G[1::2, rng.random(OH * OW) < 0.25, :] = 0.0
    if q == 2 and OW >= 4:
        paths = [bool(kconv._q2_sparse_pays(g, OH, OW)) for g in G]
        assert paths == [m % 2 == 1 for m in range(slots * B)]
    G = G.reshape(y.shape)
    dcat = np.zeros((Hs * Ws, q * q * OC), np.float32)  # one sample's scratch
    dWq = np.full((q * q, OC, D), np.nan, np.float32)
    db = np.full(OC, np.nan, np.float32)
    S1[...] = np.nan  # the backward rebuilds each sample's blocks from the frames
    for _ in range(2):  # twice: nothing accumulates across calls
        kconv.conv_s2d_backward(G, xs, s, 1 / 255, OH, OW, q, S1, dcat, dWq, db)
    dW = np.full(Wt.shape, np.nan, np.float32)
    kconv.s2d_weights_backward(dWq, C, k, s, dW)
    rW, rb = ref.conv_nchw_backward_ref(xs, Wt, G.reshape(slots * B, OH, OW, OC), k, s, scale=1 / 255)
    assert_close(dW, rW)
    assert_close(db, rb)


# --------------------------------------------------------------------------- dense, relu


@pytest.mark.parametrize("density", [0.1, 0.0])
@pytest.mark.parametrize("N,I,O", [(3, 13, 7), (40, 2592, 256), (40, 37, 5)])
def test_dense_backward_of_a_mostly_zero_dy(rng, N, I, O, density):
    """A ReLU layer's dy in a trained net is mostly zeros: the sparse path (nonzeros only)
    gives the reference's gradients, overwrites what it must, and touches no dx when told."""
    x = rng.standard_normal((N, I)).astype(np.float32)
    W = (rng.standard_normal((O, I)) / math.sqrt(I)).astype(np.float32)
    G = (rng.standard_normal((N, O)) * (rng.random((N, O)) < density)).astype(np.float32)
    assert kdense.sparse_pays(G)
    dW, db, dx = (np.full(s, np.nan, np.float32) for s in (W.shape, (O,), x.shape))
    for _ in range(2):  # twice: nothing accumulates across calls
        kdense.dense_backward(x, W, G, dW, db, dx, True)
    rW, rb, rx = ref.dense_backward_ref(x, W, G)
    assert_close(dW, rW)
    assert_close(db, rb)
    assert_close(dx, rx)
    untouched = np.full(x.shape, 7.0, np.float32)
    kdense.dense_backward(x, W, G, dW, db, untouched, False)
    assert (untouched == 7.0).all()
    assert_close(dW, rW)


# N <= kdense.SMALL_ROWS go through the dot-product kernel (4x2 blocks, odd O, leftover
# rows); (8, 2592, 256) is the acting fc; more rows, through the sgemm
@pytest.mark.parametrize("N,I,O", [(3, 13, 7), (7, 37, 5), (1, 2592, 256), (8, 2592, 256),
                                   (kdense.SMALL_ROWS, 40, 9), (kdense.SMALL_ROWS + 1, 40, 9)])
def test_dense_forward_backward(rng, N, I, O):
    x = rng.standard_normal((N, I)).astype(np.float32)
    W = (rng.standard_normal((O, I)) / math.sqrt(I)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    y = np.full((N, O), np.nan, np.float32)
    kdense.dense_forward(x, W, b, y)
    assert_close(y, ref.dense_ref(x, W, b))

    G = rng.standard_normal((N, O)).astype(np.float32)
    dW, db, dx = (np.full(s, np.nan, np.float32) for s in (W.shape, b.shape, x.shape))
    kdense.dense_backward(x, W, G, dW, db, dx, True)
    rW, rb, rx = ref.dense_backward_ref(x, W, G)
    assert_close(dW, rW)
    assert_close(db, rb)
    assert_close(dx, rx)

    x64, W64, b64, G64 = (a.astype(np.float64) for a in (x, W, b, G))
    iW, ib, ix = sample_idx(rng, W.size, 40), sample_idx(rng, O, 40), sample_idx(rng, x.size, 40)
    fW = ref.central_diff(lambda w_: (ref.dense_ref(x64, w_, b64) * G64).sum(), W64, iW, FD_EPS)
    fb = ref.central_diff(lambda b_: (ref.dense_ref(x64, W64, b_) * G64).sum(), b64, ib, FD_EPS)
    fx = ref.central_diff(lambda x_: (ref.dense_ref(x_, W64, b64) * G64).sum(), x64, ix, FD_EPS)
    assert_grad_fd(dW.ravel()[iW], fW, what="dense dW")
    assert_grad_fd(db[ib], fb, what="dense db")
    assert_grad_fd(dx.ravel()[ix], fx, what="dense dx")


@pytest.mark.parametrize("shape", [(7,), (3, 5), (3, 7, 5, 9)])
def test_relu_forward_backward(rng, shape):
    z = away_from_zero(rng, shape).astype(np.float32)
    y = z.copy()
    kdense.relu_forward(y)
    np.testing.assert_array_equal(y, ref.relu_ref(z).astype(np.float32))

    G = rng.standard_normal(shape).astype(np.float32)
    dz = G.copy()
    kdense.relu_backward(y, dz)
    np.testing.assert_array_equal(dz, ref.relu_backward_ref(z, G).astype(np.float32))

    z64, G64 = z.astype(np.float64), G.astype(np.float64)
    idx = np.arange(z.size)
    fd = ref.central_diff(lambda z_: (ref.relu_ref(z_) * G64).sum(), z64, idx, 1e-3)
    assert_grad_fd(dz.ravel(), fd, 1e-6, 1e-7, "relu")


# --------------------------------------------------------------------------- heads


def a3c_inputs(rng, N, A, zero_rows=()):
    out = rng.standard_normal((N, A + 1)).astype(np.float32)
    actions = rng.integers(0, A, N).astype(np.int32)
    returns = rng.standard_normal(N).astype(np.float32)
    weight = rng.uniform(0.1, 1.0, N).astype(np.float32)
    weight[list(zero_rows)] = 0.0
    return out, actions, returns, weight


@pytest.mark.parametrize("N,A,beta,value_coef", [(3, 2, 0.01, 0.5), (7, 6, 0.1, 0.5), (40, 18, 0.5, 0.25)])
def test_a3c_head_matches_reference_and_fd(rng, N, A, beta, value_coef):
    out, actions, returns, weight = a3c_inputs(rng, N, A, zero_rows=(1,))
    dout = np.full(out.shape, np.nan, np.float32)
    stats = np.full(4, np.nan)
    kheads.a3c_head_backward(out, actions, returns, weight, beta, value_coef, dout, stats)

    assert np.all(dout[1] == 0.0)  # a masked row gives no gradient
    expect = ref.a3c_grad_ref(out, actions, returns, weight, beta, value_coef)
    assert_close(dout, expect)
    np.testing.assert_allclose(stats, ref.a3c_stats_ref(out, actions, returns, weight, beta, value_coef), rtol=1e-5)

    # finite differences of the reference LOSS (advantage held constant in the policy term)
    # check both the formula (reference gradient) and the kernel
    out64 = out.astype(np.float64)
    adv = returns.astype(np.float64) - out64[:, A]

    def loss(o):
        return ref.a3c_loss_ref(o, actions, returns, weight, beta, value_coef, adv=adv)

    fd = ref.central_diff(loss, out64, np.arange(out.size), 1e-6)
    assert_grad_fd(expect, fd, 1e-6, 1e-7, "a3c formula")
    assert_grad_fd(dout, fd, what="a3c kernel")
    # the loss the stats report is the reference loss
    assert math.isclose(stats[0] + stats[1] - beta * stats[2], loss(out64), rel_tol=1e-5, abs_tol=1e-6)


def test_a3c_head_extreme_logits_finite(rng):
    out, actions, returns, weight = a3c_inputs(rng, 5, 4)
    out[:, :4] *= 200.0  # exp would overflow without the max shift
    dout = np.zeros_like(out)
    stats = np.zeros(4)
    kheads.a3c_head_backward(out, actions, returns, weight, 0.01, 0.5, dout, stats)
    assert np.all(np.isfinite(dout)) and np.all(np.isfinite(stats))
    assert_close(dout, ref.a3c_grad_ref(out, actions, returns, weight, 0.01, 0.5), rtol=1e-3)


@pytest.mark.parametrize("N,A", [(3, 2), (7, 5), (40, 18)])
def test_q_head_matches_reference_and_fd(rng, N, A):
    q = rng.standard_normal((N, A)).astype(np.float32)
    actions = rng.integers(0, A, N).astype(np.int32)
    targets = rng.standard_normal(N).astype(np.float32)
    weight = rng.uniform(0.1, 1.0, N).astype(np.float32)
    weight[N // 2] = 0.0
    dq = np.full(q.shape, np.nan, np.float32)
    stats = np.full(4, np.nan)
    kheads.q_head_backward(q, actions, targets, weight, dq, stats)
    expect = ref.q_grad_ref(q, actions, targets, weight)
    assert_close(dq, expect)
    assert np.all(dq[N // 2] == 0.0)
    assert math.isclose(stats[0], ref.q_loss_ref(q, actions, targets, weight), rel_tol=1e-5)
    assert stats[1] == 0.0 and stats[2] == 0.0
    assert math.isclose(stats[3], float(weight.astype(np.float64).sum()), rel_tol=1e-6)

    q64 = q.astype(np.float64)
    fd = ref.central_diff(lambda q_: ref.q_loss_ref(q_, actions, targets, weight), q64, np.arange(q.size), 1e-6)
    assert_grad_fd(expect, fd, 1e-6, 1e-7, "q formula")
    assert_grad_fd(dq, fd, what="q kernel")


# --------------------------------------------------------------------------- optimiser


def test_grad_norm_matches_reference(rng):
    g = rng.standard_normal(1001).astype(np.float32)
    # fastmath lets LLVM form each square in float32 (relative error <= 6e-8 per term, all
    # terms positive); the SUM is float64 (next test)
    assert math.isclose(koptim.grad_norm(g), ref.grad_norm_ref(g), rel_tol=1e-7)


def test_grad_norm_accumulates_in_float64():
    """1 + n * 1e-8: each small square is below float32's resolution at 1.0."""
    n = 1_000_000
    g = np.full(n, 1e-4, np.float32)
    g[0] = 1.0
    expect = math.sqrt(1.0 + (n - 1) * float(np.float32(1e-4)) ** 2)
    assert abs(koptim.grad_norm(g) - expect) < 1e-9
    assert abs(expect - 1.0) > 1e-3  # a float32 accumulator would return ~1.0


def test_clip_grad_norm_under_the_norm_is_untouched(rng):
    g = rng.standard_normal(37).astype(np.float32)
    before = g.copy()
    norm = koptim.clip_grad_norm(g, 1e3)
    np.testing.assert_array_equal(g, before)
    assert math.isclose(norm, ref.grad_norm_ref(before), rel_tol=1e-7)
    assert koptim.clip_grad_norm(g, 0.0) == norm  # max_norm <= 0: no clipping
    np.testing.assert_array_equal(g, before)


@pytest.mark.parametrize("size,max_norm", [(7, 0.5), (1001, 40.0)])
def test_clip_grad_norm_over_the_norm(rng, size, max_norm):
    g = (rng.standard_normal(size) * 10).astype(np.float32)
    before = g.copy()
    norm = koptim.clip_grad_norm(g, max_norm)
    expect, enorm = ref.clip_grad_norm_ref(before, max_norm)
    assert math.isclose(norm, enorm, rel_tol=1e-7)
    np.testing.assert_array_max_ulp(g, expect.astype(np.float32), maxulp=1)
    assert math.isclose(ref.grad_norm_ref(g), max_norm, rel_tol=1e-5)


def test_clip_grad_norm_nan_is_reported_and_left(rng):
    g = rng.standard_normal(9).astype(np.float32)
    g[4] = np.nan
    before = g.copy()
    assert math.isnan(koptim.clip_grad_norm(g, 1.0))
    np.testing.assert_array_equal(g, before)
    assert not koptim.all_finite(g)
    assert koptim.all_finite(np.ones(3, np.float32))


@pytest.mark.parametrize("size", [1, 7, 1001])
def test_rmsprop_matches_formula(rng, size):
    theta = rng.standard_normal(size).astype(np.float32)
    g = rng.uniform(0, 1, size).astype(np.float32)
    lr, alpha, eps = 7e-4, 0.99, 0.1
    for _ in range(3):
        grad = rng.standard_normal(size).astype(np.float32)
        et, eg = ref.rmsprop_ref(theta, g, grad, lr, alpha, eps)
        koptim.rmsprop_apply(theta, g, grad, lr, alpha, eps)
        # the float64 formula, rounded once to float32: at most 1 ulp apart (fastmath may fuse)
        np.testing.assert_array_max_ulp(g, eg.astype(np.float32), maxulp=1)
        np.testing.assert_array_max_ulp(theta, et.astype(np.float32), maxulp=1)
    # a zero gradient leaves theta alone and decays g
    g0, t0 = g.copy(), theta.copy()
    koptim.rmsprop_apply(theta, g, np.zeros(size, np.float32), lr, alpha, eps)
    np.testing.assert_array_equal(theta, t0)
    np.testing.assert_allclose(g, alpha * g0.astype(np.float64), rtol=1e-6)


def test_rmsprop_hogwild_two_threads_same_arrays():
    """Two threads hammer the SAME theta and g without a lock: no crash, all finite, it moved."""
    P, iters = 100_003, 300
    theta = np.zeros(P, np.float32)
    g = np.zeros(P, np.float32)
    koptim.rmsprop_apply(theta, g, np.zeros(P, np.float32), 1e-3, 0.99, 0.1)  # compile first
    errors = []

    def work(seed):
        try:
            r = np.random.default_rng(seed)
            grads = [r.standard_normal(P).astype(np.float32) for _ in range(4)]
            for i in range(iters):
                koptim.rmsprop_apply(theta, g, grads[i % 4], 1e-3, 0.99, 0.1)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert koptim.all_finite(theta) and koptim.all_finite(g)
    assert np.all(g > 0) and np.abs(theta).max() > 0


def test_copy_into(rng):
    src = rng.standard_normal(11).astype(np.float32)
    dst = np.zeros_like(src)
    koptim.copy_into(dst, src)
    np.testing.assert_array_equal(dst, src)


# --------------------------------------------------------------------------- rng


def test_seed_state_reproducible():
    a, b, c = krng.seed_state(42), krng.seed_state(42), krng.seed_state(43)
    assert a.dtype == np.uint64 and a.shape == (2,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    sa = [krng.next_u64(a) for _ in range(10)]
    sb = [krng.next_u64(b) for _ in range(10)]
    sc = [krng.next_u64(c) for _ in range(10)]
    assert sa == sb and sa != sc
    assert np.any(krng.seed_state(0) != 0)


def test_uniform_range_and_mean():
    st = krng.seed_state(7)
    u = np.array([krng.uniform(st) for _ in range(20000)])
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01  # sd of the mean ~0.002
    assert abs(u.var() - 1 / 12) < 0.005
    r = np.array([krng.randint(st, 5) for _ in range(5000)])
    assert set(r.tolist()) == set(range(5))


def test_sample_softmax_frequencies():
    logits = np.array([0.3, -1.2, 2.0, 0.0, 1.1], np.float32)
    A, E = len(logits), 50_000
    out = np.zeros((E, A + 1), np.float32)  # an extra (value) column must be ignored
    out[:, :A] = logits
    out[:, A] = 100.0
    actions = np.full(E, -1, np.int32)
    krng.sample_softmax(out, A, krng.seed_state(3), actions)
    assert actions.min() >= 0 and actions.max() < A
    p = np.exp(ref.log_softmax_ref(logits[None])[0])
    counts = np.bincount(actions, minlength=A)
    assert sstats.chisquare(counts, p * E).pvalue > 1e-3
    assert np.abs(counts / E - p).max() < 0.01


def test_epsilon_greedy():
    rs = np.random.default_rng(0)
    E, A = 20_000, 6
    q = rs.standard_normal((E, A)).astype(np.float32)
    actions = np.full(E, -1, np.int32)
    krng.epsilon_greedy(q, 0.0, krng.seed_state(1), actions)
    np.testing.assert_array_equal(actions, q.argmax(axis=1))

    krng.epsilon_greedy(q, 1.0, krng.seed_state(2), actions)
    counts = np.bincount(actions, minlength=A)
    assert sstats.chisquare(counts).pvalue > 1e-3

    krng.epsilon_greedy(q, 0.3, krng.seed_state(4), actions)
    greedy = (actions == q.argmax(axis=1)).mean()
    assert abs(greedy - (0.7 + 0.3 / A)) < 0.02


# --------------------------------------------------------------------------- checks


def test_check_array_accepts_and_returns():
    a = np.zeros((16, 3), np.float32)
    assert check_array("dense_forward: W", a, (16, 3), np.float32) is a
    assert check_array("dense_forward: W", a, (None, 3), np.float32) is a
    check_array("f: x", a.T, (3, 16), np.float32, contiguous=False)


def test_check_array_message():
    with pytest.raises(ValueError) as e:
        check_array("dense_forward: W", np.zeros((8, 3)), (16, 3), np.float32)
    assert str(e.value) == "dense_forward: W has shape (8, 3) float64, expected (16, 3) float32 C-contiguous"


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((16, 3), np.float64),  # dtype
        np.zeros((16, 4), np.float32),  # shape
        np.zeros((16, 3, 1), np.float32),  # ndim
        np.zeros((3, 16), np.float32).T,  # layout
        [[0.0] * 3] * 16,  # not an array
    ],
)
def test_check_array_rejects(arr):
    with pytest.raises(ValueError, match=r"^im2col: cols "):
        check_array("im2col: cols", arr, (16, 3), np.float32)

