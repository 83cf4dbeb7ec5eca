"""2-D convolution (stride, no padding) as im2col + sgemm, and the first layer by space-to-depth.

Layouts, chosen so that a GEMM covers a whole slot of samples with no copies between layers:

* The first layer reads envpool's frames as they come, ``uint8 (B, C, H, W)``, and scales by
  ``scale`` (1/255) while gathering its patches: no float copy of the input is ever made.
  Its columns are ordered ``(c, ky, kx)`` so the innermost gather loop is contiguous, and its
  weight is ``W (OC, C*KH*KW)`` in that order (PyTorch's ``(OC, C, KH, KW)`` flattened).
* Every later layer is channels-last, ``float32 (B, H, W, C)``; its columns are ordered
  ``(ky, kx, c)`` and its weight is ``W (OC, KH*KW*C)``.
* A convolution's output is the GEMM result ``(B*OH*OW, OC)``, which *is* ``(B, OH, OW, OC)``
  channels-last: the next layer reads it without a copy.

Forward: ``cols = im2col(x)``; ``y = cols @ W.T + b`` (``dense_forward``).
Backward (``conv_backward``), slot by slot: the slot's columns gathered again (the forward's
are not kept: less memory for the learners to share in cache), ``dW += dy.T @ cols``,
``db += sum dy``, ``dcols = dy @ W``, ``dx = col2im(dcols)``.
"""

import numpy as np

from ._jit import jit
from .blas import gemm, gemm_acc
from .dense import dense_grads


def out_size(n, k, stride):
    """Output length of a valid (no padding) convolution along one axis."""
    return (n - k) // stride + 1


@jit
def im2col_nchw(x, kh, kw, stride, scale, cols):
    """Gather patches of a C-contiguous channels-first batch (uint8 or float), scaled.

    x: (B, C, H, W); cols: (B*OH*OW, C*KH*KW) float32, row ``(b*OH + oy)*OW + ox``,
    column ``(c*KH + ky)*KW + kx``; cols = x[b, c, oy*s+ky, ox*s+kx] * scale.
    Flat indexing, and the paper's 8-wide kernel rows unrolled so they vectorise
    (2.5x faster than the plain loop nest on the 84x84 frames).
    """
    B, C, H, W = x.shape
    OH = (H - kh) // stride + 1
    OW = (W - kw) // stride + 1
    K = C * kh * kw
    sc = np.float32(scale)
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    for b in range(B):
        for oy in range(OH):
            for ox in range(OW):
                d = ((b * OH + oy) * OW + ox) * K
                for c in range(C):
                    for ky in range(kh):
                        s = ((b * C + c) * H + oy * stride + ky) * W + ox * stride
                        if kw == 8:
                            cf[d] = np.float32(xf[s]) * sc
                            cf[d + 1] = np.float32(xf[s + 1]) * sc
                            cf[d + 2] = np.float32(xf[s + 2]) * sc
                            cf[d + 3] = np.float32(xf[s + 3]) * sc
                            cf[d + 4] = np.float32(xf[s + 4]) * sc
                            cf[d + 5] = np.float32(xf[s + 5]) * sc
                            cf[d + 6] = np.float32(xf[s + 6]) * sc
                            cf[d + 7] = np.float32(xf[s + 7]) * sc
                        else:
                            for kx in range(kw):
                                cf[d + kx] = np.float32(xf[s + kx]) * sc
                        d += kw


@jit
def im2col_nhwc(x, kh, kw, stride, cols):
    """Gather patches of a channels-last float32 batch.

    x: (B, H, W, C); cols: (B*OH*OW, KH*KW*C), column ``(ky*KW + kx)*C + c``. For each
    kernel row ky the KW*C values are contiguous in x and in cols: one slice copy (a
    memmove; 1.8x faster than the element loop on conv2's patches).
    """
    B, H, W, C = x.shape
    OH = (H - kh) // stride + 1
    OW = (W - kw) // stride + 1
    L = kw * C
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    d = 0
    for b in range(B):
        for oy in range(OH):
            for ox in range(OW):
                for ky in range(kh):
                    s = ((b * H + oy * stride + ky) * W + ox * stride) * C
                    cf[d : d + L] = xf[s : s + L]
                    d += L


@jit
def col2im_nhwc(dcols, kh, kw, stride, dx):
    """Scatter-add patch gradients back to a channels-last input: the adjoint of im2col_nhwc.

    dcols: (B*OH*OW, KH*KW*C); dx: (B, H, W, C) C-contiguous (written through a flat view),
    OVERWRITTEN (zeroed, then accumulated). For each kernel row ky the KW*C values are
    contiguous in dcols and in dx: one vectorised add over two row views (the element-indexed
    4-D loop it replaced did not vectorise: conv2's 8-env slot 166 -> 25 us).
    """
    B, H, W, C = dx.shape
    OH = (H - kh) // stride + 1
    OW = (W - kw) // stride + 1
    L = kw * C
    flat = dx.reshape(-1)
    flat[:] = 0.0
    r = 0
    for b in range(B):
        for oy in range(OH):
            for ox in range(OW):
                row = dcols[r]
                for ky in range(kh):
                    s = ((b * H + oy * stride + ky) * W + ox * stride) * C
                    dst = flat[s : s + L]
                    src = row[ky * L : (ky + 1) * L]
                    for k in range(L):
                        dst[k] += src[k]
                r += 1


@jit
def conv_backward(x, nchw, scale, dy, W, B, kh, kw, stride, cols, dcols, dW, db, dx, need_dx):
    """Gradients of an im2col convolution, one slot of B samples at a time.

    x: the layer's input over n slots, (n*B, H, W, C) channels-last float32, or, when
    ``nchw``, the first layer's (n*B, C, H, W) frames (scaled by ``scale`` as in the forward);
    dy: (n*B*OH*OW, OC) output gradient (ReLU mask applied); W: (OC, K).
    cols, dcols: (>= B*OH*OW, K) scratch for ONE slot: each slot's columns are gathered again
    here instead of being kept from the forward (conv2's columns of a 5-slot segment of 8
    Atari envs were 4 MB, and the learners' working sets spill out of the shared L3).
    dW (OC, K), db (OC,) OVERWRITTEN; dx (n*B, ...) like x, OVERWRITTEN when ``need_dx``
    (= col2im(dy @ W), channels-last only: the first layer has no input gradient); dx
    C-contiguous (it is written through a flat view).
    """
    n = x.shape[0] // B
    if B < 1 or n < 1 or x.shape[0] != n * B or dy.shape[0] % n != 0:
        raise ValueError("conv_backward: x needs n >= 1 slots of B samples and dy n equal blocks of rows")
    if nchw and need_dx:
        raise ValueError("conv_backward: no input gradient for channels-first frames")
    per = dy.shape[0] // n  # rows of one slot
    c, d = cols[:per], dcols[:per]
    for t in range(n):
        xt = x[t * B : (t + 1) * B]
        if nchw:
            im2col_nchw(xt, kh, kw, stride, scale, c)
        else:
            im2col_nhwc(xt, kh, kw, stride, c)
        # the slot's dW, db added to the earlier slots' (sgemms, or its nonzeros when sparse)
        dense_grads(c, W, dy[t * per : (t + 1) * per], dW, db, d, need_dx, t > 0)
        if need_dx:
            col2im_nhwc(d, kh, kw, stride, dx[t * B : (t + 1) * B])


# -- centred frames --------------------------------------------------------------------------
#
# The first layer may see its frames centred, x*scale - c, without a kernel of its own: with
# b_eff = b - c * rowsum(W) the usual kernels' W @ (x*scale) + b_eff is W @ (x*scale - c) + b,
# and the gradients follow: d/db is the same, d/dW = (the kernels' dW) - c * db.


@jit
def centered_bias(W, b, c, out):
    """out[o] = b[o] - c * sum_k W[o, k]: the bias that centres the first layer's input by c."""
    for o in range(W.shape[0]):
        s = 0.0
        for k in range(W.shape[1]):
            s += W[o, k]
        out[o] = b[o] - c * s


@jit
def centered_weight_grad(dW, db, c):
    """dW[o, k] -= c * db[o], in place: dW of the centred layer from the kernels' dW."""
    for o in range(dW.shape[0]):
        d = c * db[o]
        for k in range(dW.shape[1]):
            dW[o, k] -= d


# -- first layer by space-to-depth ------------------------------------------------------------
#
# A k x k convolution with stride s, k = q*s (the paper's 8x8 stride 4: q = 2), equals a q x q
# stride-1 convolution of the input rearranged into s x s blocks ("space to depth"):
# S[b, i, j, (c, ry, rx)] = x[b, c, i*s + ry, j*s + rx]. Stored as rows (b*Hs + i)*Ws + j,
# the rows of S shifted by dy*Ws + dx line up with the output rows, so the convolution is q*q
# sgemms on contiguous views: no im2col. S holds every input pixel once (im2col of the
# 84x84 frames holds each four times); it is built for one sample at a time, in the forward
# and again in the backward from the kept frames, and the q*q products go into one sgemm
# (the shifts are summed after it). Each output row is computed for all Ws columns j of the
# sample's block (j >= OW are junk and dropped).
# The paper's q = 2 skips the sgemm in the forward (``_s2d_q2_dots``: the four shifted block
# rows dotted with the weights in one loop, 4 outputs x 2 channels at a time, ReLU fused;
# no products matrix) and, for a sample whose output gradient is mostly the ReLU's zeros, in
# the backward (``_s2d_q2_grad``, which skips them): conv1 forward 0.93 -> 0.75 ms per 8-env
# slot and backward 4.1 -> 2.3 ms per 40-sample segment inside the 2-thread trainer.


@jit
def space_to_depth(x, s, scale, S):
    """x: (B, C, H, W) C-contiguous (uint8 or float); S: (B*Hs*Ws, C*s*s) float32, written:
    S[(b*Hs + i)*Ws + j, (c*s + ry)*s + rx] = x[b, c, i*s + ry, j*s + rx] * scale, Hs = H//s.

    The paper's stride 4 goes one S row at a time, its 4-wide pieces through views with a
    constant trip count (1.5x faster than flat indexing, whose possibly negative indices keep
    LLVM from vectorising); any other stride, one input row segment at a time."""
    B, C, H, W = x.shape
    Hs, Ws = H // s, W // s
    sc = np.float32(scale)
    if s == 4:
        for b in range(B):
            for i in range(Hs):
                for j in range(Ws):
                    Sr = S[(b * Hs + i) * Ws + j]
                    for c in range(C):
                        for ry in range(4):
                            xr = x[b, c, i * 4 + ry, j * 4 : j * 4 + 4]
                            d = Sr[c * 16 + ry * 4 : c * 16 + ry * 4 + 4]
                            for rx in range(4):
                                d[rx] = np.float32(xr[rx]) * sc
        return
    D = C * s * s
    xf = x.reshape(-1)
    Sf = S.reshape(-1)
    for b in range(B):
        for i in range(Hs):
            for c in range(C):
                for ry in range(s):
                    src = ((b * C + c) * H + i * s + ry) * W
                    dst = (b * Hs + i) * Ws * D + (c * s + ry) * s
                    for j in range(Ws):
                        for rx in range(s):
                            Sf[dst + rx] = np.float32(xf[src + rx]) * sc
                        dst += D
                        src += s


@jit
def _s2d_permute(W, Wq, C, k, s, to_blocks):
    """W[o, (c*k + dy*s + ry)*k + dx*s + rx] <-> Wq[dy*q + dx, o, (c*s + ry)*s + rx], q = k//s:
    copies W into Wq when ``to_blocks``, else Wq into W (a permutation: its own adjoint)."""
    q = k // s
    OC = W.shape[0]
    for dy in range(q):
        for dx in range(q):
            for o in range(OC):
                m = 0
                for c in range(C):
                    for ry in range(s):
                        for rx in range(s):
                            i = (c * k + dy * s + ry) * k + dx * s + rx
                            if to_blocks:
                                Wq[dy * q + dx, o, m] = W[o, i]
                            else:
                                W[o, i] = Wq[dy * q + dx, o, m]
                            m += 1


@jit
def s2d_weights(W, C, k, s, Wq):
    """Rearrange W (OC, C*k*k), columns (c, ky, kx), into Wq (q*q, OC, C*s*s), q = k//s."""
    _s2d_permute(W, Wq, C, k, s, True)


@jit
def s2d_weights_backward(dWq, C, k, s, dW):
    """The adjoint of s2d_weights: dW (OC, C*k*k) OVERWRITTEN from dWq."""
    _s2d_permute(dW, dWq, C, k, s, False)


@jit
def conv_s2d_forward(x, s, scale, Wq, b, q, OH, OW, S, ycat, y):
    """y = ReLU(conv(x * scale) + b) of B samples by space-to-depth, one sample at a time.

    x: (B, C, H, W) C-contiguous frames; Wq: (q*q, OC, C*s*s) from s2d_weights; S (Hs*Ws,
    C*s*s): ONE sample's blocks, so they stay in the core's L2 (a whole 8-env slot's are
    0.9 MB, and after an env step they came back from L3); ycat (Hs*Ws, q*q*OC): one
    sample's products, used only when q != 2; y: (B*OH*OW, OC), written.
    Per sample: blocks (space_to_depth), then for the paper's q = 2 the 2x2 stride-1
    convolution of the blocks by dot products (``_s2d_q2_dots``); any other q: ycat = S @
    Wq.reshape(q*q*OC, D).T (every shift's product in one sgemm), then ``s2d_combine`` sums
    the shifted column blocks. Every shifted row a valid output reads lies inside its
    sample's Hs*Ws block rows.
    """
    B, C, H, W = x.shape
    Hs, Ws = H // s, W // s
    Q, OC, D = Wq.shape
    Wf = Wq.reshape(Q * OC, D)
    p = OH * OW
    for bb in range(B):
        space_to_depth(x[bb : bb + 1], s, scale, S)
        if q == 2:
            _s2d_q2_dots(S, Wq, b, Ws, OH, OW, y[bb * p : (bb + 1) * p])
        else:
            gemm(S, False, Wf, True, ycat)
            s2d_combine(ycat, b, q, 1, Hs, Ws, OH, OW, y[bb * p : (bb + 1) * p])


@jit
def _s2d_q2_dots(S, Wq, b, Ws, OH, OW, y):
    """One sample: y[i*OW + j, o] = max(b[o] + sum_d S[(i + d//2)*Ws + j + d%2] . Wq[d, o], 0).

    4 output positions x 2 channels per pass over the D block columns, all four shifts in
    one loop body (8 vector accumulators; 10 block rows and 8 weight rows, all in L1): no
    products matrix, no combine pass (conv1 of 8 Atari envs 0.75 -> 0.67 ms alone).
    Leftover positions (OW % 4) and an odd last channel go one dot product at a time.
    """
    OC, D = Wq.shape[1], Wq.shape[2]
    zero = np.float32(0.0)
    for i in range(OH):
        top = i * Ws
        bot = top + Ws
        j = 0
        while j + 4 <= OW:
            t0, t1, t2, t3, t4 = S[top + j], S[top + j + 1], S[top + j + 2], S[top + j + 3], S[top + j + 4]
            u0, u1, u2, u3, u4 = S[bot + j], S[bot + j + 1], S[bot + j + 2], S[bot + j + 3], S[bot + j + 4]
            r = i * OW + j
            o = 0
            while o + 2 <= OC:
                w0, w1, w2, w3 = Wq[0, o], Wq[1, o], Wq[2, o], Wq[3, o]
                v0, v1, v2, v3 = Wq[0, o + 1], Wq[1, o + 1], Wq[2, o + 1], Wq[3, o + 1]
                a0 = a1 = a2 = a3 = c0 = c1 = c2 = c3 = zero
                for k in range(D):
                    a0 += t0[k] * w0[k] + t1[k] * w1[k] + u0[k] * w2[k] + u1[k] * w3[k]
                    c0 += t0[k] * v0[k] + t1[k] * v1[k] + u0[k] * v2[k] + u1[k] * v3[k]
                    a1 += t1[k] * w0[k] + t2[k] * w1[k] + u1[k] * w2[k] + u2[k] * w3[k]
                    c1 += t1[k] * v0[k] + t2[k] * v1[k] + u1[k] * v2[k] + u2[k] * v3[k]
                    a2 += t2[k] * w0[k] + t3[k] * w1[k] + u2[k] * w2[k] + u3[k] * w3[k]
                    c2 += t2[k] * v0[k] + t3[k] * v1[k] + u2[k] * v2[k] + u3[k] * v3[k]
                    a3 += t3[k] * w0[k] + t4[k] * w1[k] + u3[k] * w2[k] + u4[k] * w3[k]
                    c3 += t3[k] * v0[k] + t4[k] * v1[k] + u3[k] * v2[k] + u4[k] * v3[k]
                bo, bv = b[o], b[o + 1]
                y[r, o], y[r, o + 1] = max(a0 + bo, zero), max(c0 + bv, zero)
                y[r + 1, o], y[r + 1, o + 1] = max(a1 + bo, zero), max(c1 + bv, zero)
                y[r + 2, o], y[r + 2, o + 1] = max(a2 + bo, zero), max(c2 + bv, zero)
                y[r + 3, o], y[r + 3, o + 1] = max(a3 + bo, zero), max(c3 + bv, zero)
                o += 2
            if o < OC:
                for jj in range(4):
                    y[r + jj, o] = _s2d_q2_dot(S, Wq, b, top + j + jj, Ws, o)
            j += 4
        while j < OW:
            r = i * OW + j
            for o in range(OC):
                y[r, o] = _s2d_q2_dot(S, Wq, b, top + j, Ws, o)
            j += 1


@jit
def _s2d_q2_dot(S, Wq, b, row, Ws, o):
    """One output of _s2d_q2_dots: max(b[o] + the four shifted rows' dot products, 0)."""
    a = b[o]
    for d in range(4):
        sr = S[row + (d // 2) * Ws + d % 2]
        wr = Wq[d, o]
        for k in range(sr.shape[0]):
            a += sr[k] * wr[k]
    return max(a, np.float32(0.0))


@jit
def s2d_combine(ycat, b, q, B, Hs, Ws, OH, OW, y):
    """y[(bb*OH + i)*OW + j, o] = max(b[o] + sum_d ycat[(bb*Hs + i)*Ws + j + off_d, d*OC + o], 0),
    off_d = (d // q)*Ws + d % q: the valid outputs, bias and ReLU (row views, so the channel
    loops vectorise). The paper's q = 2 does not come here (``_s2d_q2_dots``)."""
    OC = y.shape[1]
    r = 0
    for bb in range(B):
        for i in range(OH):
            src = (bb * Hs + i) * Ws
            for j in range(OW):
                yr = y[r]
                for o in range(OC):
                    yr[o] = b[o]
                for d in range(q * q):
                    c = ycat[src + j + (d // q) * Ws + d % q, d * OC : (d + 1) * OC]
                    for o in range(OC):
                        yr[o] += c[o]
                for o in range(OC):
                    yr[o] = max(yr[o], np.float32(0.0))
                r += 1


@jit
def conv_s2d_backward(dy, x, s, scale, OH, OW, q, S, dcat, dWq, db):
    """Weight and bias gradients of the space-to-depth convolution, one sample at a time.

    dy: (N*OH*OW, OC) gradient at the outputs of N samples (ReLU mask applied); x: their
    frames (N, C, H, W), as the forward read them; S: (Hs*Ws, C*s*s) scratch for ONE
    sample's blocks, rebuilt here from x (the forward does not keep them). dcat: (Hs*Ws,
    q*q*OC) scratch for ONE sample, 0 except where this kernel writes (the same places every
    sample and call): column block d holds the sample's dy shifted down by off_d, so one
    sgemm dcat.T @ S gives every shift's weight gradient of the sample, accumulated over the
    samples. Sample by sample, both scratches stay in the core's L2 (113 KB each for the
    Atari frames; a slot's were 0.9 MB), and the K = 441 sgemm runs faster than a slot's.
    For q = 2, a sample whose dy is mostly zeros (``_q2_sparse_pays``) goes by
    ``_s2d_q2_grad`` instead, which skips them; the sums are the same.
    dWq (q*q, OC, C*s*s) and db (OC,) OVERWRITTEN.
    """
    OC = dy.shape[1]
    p = OH * OW
    Q = q * q
    Ws = x.shape[3] // s
    if x.shape[0] < 1 or dy.shape[0] != x.shape[0] * p:
        raise ValueError("conv_s2d_backward: dy needs OH*OW rows for each of x's (>= 1) samples")
    dW = dWq.reshape(Q * OC, dWq.shape[2])
    for o in range(OC):
        db[o] = 0.0
    dW[...] = 0.0
    for m in range(x.shape[0]):
        space_to_depth(x[m : m + 1], s, scale, S)
        r = m * p
        if q == 2 and _q2_sparse_pays(dy[r : r + p], OH, OW):
            _s2d_q2_grad(dy[r : r + p], S, Ws, OH, OW, dWq, db)
            continue
        for i in range(OH):
            for j in range(OW):
                dyr = dy[r]
                for o in range(OC):
                    db[o] += dyr[o]
                for d in range(Q):  # row views: the channel loops vectorise
                    c = dcat[i * Ws + j + (d // q) * Ws + d % q, d * OC : (d + 1) * OC]
                    for o in range(OC):
                        c[o] = dyr[o]
                r += 1
        gemm_acc(dcat, True, S, False, dW)


@jit
def _q2_sparse_pays(dy, OH, OW):
    """Whether ``_s2d_q2_grad`` beats the sgemm for one sample's dy (OH*OW, OC): when at most
    half of its (4 positions x channel) groups hold a nonzero gradient. Its time grows with
    the busy groups: with all of them busy it takes 1.7x the sgemm's; with Pong's ReLU masks
    (35% of conv1's outputs active at init, 6% in a trained net: 65% and 94% of the groups
    all zero) 0.4x and 0.3x (bench/RESULTS-history.md, 2026-11-27 16:21)."""
    OC = dy.shape[1]
    busy = 0
    total = 0
    for i in range(OH):
        j = 0
        while j + 4 <= OW:
            p = i * OW + j
            g0, g1, g2, g3 = dy[p], dy[p + 1], dy[p + 2], dy[p + 3]
            for o in range(OC):
                if g0[o] != 0.0 or g1[o] != 0.0 or g2[o] != 0.0 or g3[o] != 0.0:
                    busy += 1
            total += OC
            j += 4
    return 2 * busy <= total


@jit
def _s2d_q2_grad(dy, S, Ws, OH, OW, dWq, db):
    """One sample of the q = 2 weight gradient, ADDED to dWq and db:
    dWq[d, o] += sum_p dy[p, o] * S[(i + d//2)*Ws + j + d%2] over the outputs p = i*OW + j.

    4 output positions at a time: their 10 block rows (in L1) go, for each channel, into
    the channel's 4 shifts' weight-gradient rows in one pass (16 products per 14 loads); a
    channel whose 4 gradients are all 0 (the ReLU's zeros) is skipped, which changes no sum.
    Leftover positions (OW % 4) go one at a time.
    """
    OC, D = dWq.shape[1], dWq.shape[2]
    for i in range(OH):
        top = i * Ws
        bot = top + Ws
        j = 0
        while j + 4 <= OW:
            p = i * OW + j
            g0, g1, g2, g3 = dy[p], dy[p + 1], dy[p + 2], dy[p + 3]
            t0, t1, t2, t3, t4 = S[top + j], S[top + j + 1], S[top + j + 2], S[top + j + 3], S[top + j + 4]
            u0, u1, u2, u3, u4 = S[bot + j], S[bot + j + 1], S[bot + j + 2], S[bot + j + 3], S[bot + j + 4]
            for o in range(OC):
                a0, a1, a2, a3 = g0[o], g1[o], g2[o], g3[o]
                db[o] += a0 + a1 + a2 + a3
                if a0 == 0.0 and a1 == 0.0 and a2 == 0.0 and a3 == 0.0:
                    continue
                w0, w1, w2, w3 = dWq[0, o], dWq[1, o], dWq[2, o], dWq[3, o]
                for k in range(D):
                    w0[k] += a0 * t0[k] + a1 * t1[k] + a2 * t2[k] + a3 * t3[k]
                    w1[k] += a0 * t1[k] + a1 * t2[k] + a2 * t3[k] + a3 * t4[k]
                    w2[k] += a0 * u0[k] + a1 * u1[k] + a2 * u2[k] + a3 * u3[k]
                    w3[k] += a0 * u1[k] + a1 * u2[k] + a2 * u3[k] + a3 * u4[k]
            j += 4
        while j < OW:
            p = i * OW + j
            g = dy[p]
            for o in range(OC):
                db[o] += g[o]
            for d in range(4):
                sr = S[(i + d // 2) * Ws + j + d % 2]
                for o in range(OC):
                    a = g[o]
                    if a == 0.0:
                        continue
                    w = dWq[d, o]
                    for k in range(D):
                        w[k] += a * sr[k]
            j += 1
