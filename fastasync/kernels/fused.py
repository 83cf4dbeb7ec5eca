"""The paper's feed-forward Atari net's forward pass of one slot, and its backward pass of a
segment, each as ONE kernel call.

``nets.Net.forward`` runs a net layer by layer from Python: for the Atari net that is eight
kernel calls and a NumPy copy per slot, each one a hand-back of the GIL and a take again,
with the layer loop's Python in between holding it. At 16 learner threads of one process the
GIL is busy often enough that these takes wait (bench/RESULTS-history.md, 2026-11-27 17:51: the forward's
time per agent step doubled from 1 to 16 threads, the backward's grew by a quarter). Here
the same kernels are called in the same order from one compiled function, so a slot's
forward takes and gives the GIL once and computes bit for bit what the layer-by-layer path
does (tests/test_net_grads.py compares the two).

The backward of a segment was eight kernel calls (each layer's ReLU mask, then its gradients),
so the same holds for ``atari_backward``: the layers' ``backward`` kernels in
``nets.Net.backward_layers``' order from one compiled function (tests/test_net_grads.py: the
same gradients, bit for bit, and by finite differences).

Layers: conv1 8x8/4 by space-to-depth (``conv_s2d_forward``, q = 2), conv2 by im2col +
sgemm, fc, the linear head; ReLU after every hidden layer. Shapes are those of
``nets.Conv``/``nets.Dense``'s buffers of one slot.
"""

from ._jit import jit
from .conv import conv_backward, conv_s2d_backward, conv_s2d_forward, im2col_nhwc, s2d_weights, s2d_weights_backward
from .dense import dense_backward, dense_forward, relu_backward, relu_forward
from .optim import copy_into


@jit
def atari_forward(obs, xt, W1, b1, c_in, k1, s1, scale, Wq, q, OH1, OW1, S, ycat, y1,
                  k2, s2, cols2, W2, b2, y2, Wfc, bfc, yfc, Wh, bh, yh):
    """One slot of E envs through conv1, conv2, fc and the head.

    obs (E, C, H, W) uint8 C-contiguous frames, copied into ``xt`` (the slot's kept frames, C-contiguous);
    conv1: W1 (OC1, C*k1*k1), b1, Wq/S/ycat its space-to-depth scratch, y1 (E*OH1*OW1, OC1);
    conv2: k2/s2, cols2 (E*OH2*OW2, k2*k2*OC1), W2, b2, y2 (E*OH2*OW2, OC2);
    fc: Wfc (F, OH2*OW2*OC2), bfc, yfc (E, F); head: Wh (O, F), bh, yh (E, O). Every output
    is overwritten; y1, y2 and yfc are kept for the backward pass.
    """
    E = xt.shape[0]
    # a flat loop: 8 us for a slot's 8 x 4 x 84 x 84 frames, where Numba's 4-D
    # ``xt[...] = obs`` took 90-130 us (NumPy's copy: 8)
    copy_into(xt.reshape(-1), obs.reshape(-1))
    s2d_weights(W1, c_in, k1, s1, Wq)
    conv_s2d_forward(xt, s1, scale, Wq, b1, q, OH1, OW1, S, ycat, y1)
    im2col_nhwc(y1.reshape(E, OH1, OW1, y1.shape[1]), k2, k2, s2, cols2)
    dense_forward(cols2, W2, b2, y2)
    relu_forward(y2)
    dense_forward(y2.reshape(E, Wfc.shape[1]), Wfc, bfc, yfc)
    relu_forward(yfc)
    dense_forward(yfc, Wh, bh, yh)



@jit
def atari_backward(T, E, x1, c_in, k1, s1, scale1, OH1, OW1, q, S, dcat, dWq, dW1, db1, y1, dy1,
                   k2, s2, scale2, cols2, dcols2, W2, dW2, db2, y2, dy2,
                   Wfc, dWfc, dbfc, yfc, dyfc, Wh, dWh, dbh, dyh):
    """Gradients of slots 0..T-1 (T*E samples) of the net ``atari_forward`` ran, into dW*/db*.

    The buffers are the workspace's whole ones (every slot): x1 the kept frames, y1/y2/yfc the
    kept activations (rows slot-major as the forward wrote them), dyh the loss's gradient at
    the head's outputs; dy1/dy2/dyfc receive the hidden layers' output gradients. conv1's
    scratch S/dcat/dWq and conv2's cols2/dcols2 are one sample's / one slot's. Every dW*/db*
    is overwritten.
    """
    rows = T * E
    n1 = rows * OH1 * OW1
    F2 = Wfc.shape[1]  # conv2's outputs per sample, flattened
    n2 = rows * (F2 // y2.shape[1])
    dense_backward(yfc[:rows], Wh, dyh[:rows], dWh, dbh, dyfc[:rows], True)
    relu_backward(yfc[:rows], dyfc[:rows])
    dense_backward(y2[:n2].reshape(rows, F2), Wfc, dyfc[:rows], dWfc, dbfc, dy2[:n2].reshape(rows, F2), True)
    relu_backward(y2[:n2], dy2[:n2])
    OC1 = y1.shape[1]
    conv_backward(y1[:n1].reshape(rows, OH1, OW1, OC1), False, scale2, dy2[:n2], W2, E, k2, k2, s2, cols2, dcols2,
                  dW2, db2, dy1[:n1].reshape(rows, OH1, OW1, OC1), True)
    relu_backward(y1[:n1], dy1[:n1])
    conv_s2d_backward(dy1[:n1], x1[:rows], s1, scale1, OH1, OW1, q, S, dcat, dWq, db1)
    s2d_weights_backward(dWq, c_in, k1, s1, dW1)
