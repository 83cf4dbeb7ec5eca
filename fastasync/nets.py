"""Network specs built from kernel layers, and per-learner workspaces.

A :class:`Net` is a stack of layers over one :class:`~fastasync.params.Layout`. It owns no
arrays: a learner asks it for a :class:`Workspace` once (every activation and gradient
buffer for ``slots`` time steps of ``E`` envs, and the scratch of one slot or one sample,
allocated up front), then calls

* ``net.forward(ws, obs, t)`` while acting: the forward pass for the E envs at time slot
  ``t``; every activation is kept in the workspace, so the backward pass reuses them
  instead of running a second forward. The paper's feed-forward Atari net runs it as ONE
  kernel call (``kernels/fused.py``: one GIL hand-back per slot instead of nine, which
  16 learner threads felt; bit for bit the layer loop's result), other nets layer by layer;
* ``net.backward(ws, dout)`` after a segment: gradients of the whole segment (slots
  ``0..T-1``: the dense layers' ``T*E`` rows in one GEMM each, conv2 slot by slot and conv1
  sample by sample, their columns / blocks gathered again from the kept inputs) into
  ``ws.grad``; for the Atari net one kernel call too.

Weights are read from ``ws.theta`` (the learner's snapshot of the shared parameters), and
gradients go to ``ws.grad``; both are flat arrays in the net's layout. A workspace made
without a gradient array (``net.workspace(slots, E, theta)``: the Q methods' target net,
evaluation) is forward-only: none of the backward's buffers are allocated (with the gradient
array, 5.3 MB less for the Atari net at 6 slots of 8 envs) and ``net.backward`` on it is a
ValueError.

Nets (``make_net``):
* ``atari``: the paper's feed-forward Atari net (Mnih et al. 2013/2016): uint8 4x84x84 ->
  conv 16@8x8/4 -> conv 32@4x4/2 -> fc 256 -> head, ReLU after every hidden layer.
* ``mlp``: obs vector -> dense 64 -> dense 64 -> head, for classic-control envs.
* with ``lstm=N`` (a3c-lstm): an LSTM of N cells between the torso and the head; its state
  is carried across segments and reset per env where ``ws.reset_in`` says so.
The head has ``A + 1`` outputs for actor-critic (logits and value), ``2A + 1`` for the
Gaussian policy on an A-dimensional continuous action (means, variance pre-activations,
value; ``kernels/heads.py``) and ``A`` for Q methods.
"""

from __future__ import annotations

import numpy as np

from .kernels import conv as kconv
from .kernels import dense as kdense
from .kernels import fused as kfused
from .kernels import lstm as klstm
from .kernels.checks import check_array
from .params import Layout, ParamSpec


# He-uniform for layers followed by a ReLU: U(-sqrt(6/fan_in), +sqrt(6/fan_in)) keeps the
# activations' scale through the torso. With U(+-1/sqrt(fan_in)) (Torch's default) the Atari
# net's fc features came out at rms 0.02 and varied across Pong frames by ~6e-4, so the head
# saw nearly constant features and, with RMSProp's eps = 0.1, the policy did not move for
# millions of frames (bench/RESULTS-history.md, 2026-11-27).
RELU_GAIN = 6.0**0.5


class Conv:
    """Valid convolution + ReLU. ``first``: reads channels-first input (uint8 frames) scaled,
    and ``center``: minus center (the frames x*scale - center; see ``kernels.conv.centered_bias``)."""

    def __init__(self, name, in_shape, out_channels, kernel, stride, first=False, scale=1.0, center=0.0):
        self.name, self.first, self.scale = name, first, float(scale)
        if center and not first:
            raise ValueError(f"{name}: only the first layer centres its input")
        self.center = float(center)
        self.kW, self.kb = f"{name}.W", f"{name}.b"  # parameter names, built once (hot loop)
        self.k, self.stride, self.oc = kernel, stride, out_channels
        if first:
            c, h, w = in_shape
        else:
            h, w, c = in_shape
        self.in_shape = tuple(in_shape)
        self.oh, self.ow = kconv.out_size(h, kernel, stride), kconv.out_size(w, kernel, stride)
        if self.oh < 1 or self.ow < 1:
            raise ValueError(f"{name}: input {in_shape} is smaller than the {kernel}x{kernel} kernel")
        self.K = c * kernel * kernel
        self.out_shape = (self.oh, self.ow, out_channels)
        self.relu = True
        # first layer with k a multiple of the stride (the paper's 8x8/4): space-to-depth
        # and a q x q stride-1 convolution of the blocks instead of im2col (kernels/conv.py)
        self.s2d = first and kernel % stride == 0 and h % stride == 0 and w % stride == 0
        if self.s2d:
            self.c_in, self.q = c, kernel // stride
            self.hs, self.ws = h // stride, w // stride
            self.depth = c * stride * stride

    def param_specs(self):
        return [
            ParamSpec(f"{self.name}.W", (self.oc, self.K), "uniform", fan_in=self.K, gain=RELU_GAIN),
            ParamSpec(f"{self.name}.b", (self.oc,), "zeros"),
        ]

    def flops(self):
        """Multiply-adds x 2 of one sample's forward pass."""
        return 2 * self.oh * self.ow * self.K * self.oc

    def alloc(self, slots, E, need_dx, backward=True):
        """Buffers of one learner. Columns are one slot's and the first layer's space-to-depth
        blocks one sample's, gathered again in the backward; what the backward needs of every
        slot is the layer's input: the first layer keeps a copy of its frames (uint8), a later
        layer reads the previous layer's outputs. ``backward=False``: the forward's only."""
        p = self.oh * self.ow
        y = np.zeros((slots * E * p, self.oc), np.float32)
        buf = dict(y=y, E=E, y_t=[y[t * E * p : (t + 1) * E * p] for t in range(slots)])
        if backward:
            buf["dy"] = np.zeros_like(y)
        if self.center:
            buf["b_eff"] = np.zeros(self.oc, np.float32)
        if self.first:
            x = np.zeros((slots * E, *self.in_shape), np.uint8)
            buf.update(x=x, x_t=[x[t * E : (t + 1) * E] for t in range(slots)])
        if self.s2d:
            n, qq = self.hs * self.ws, self.q * self.q
            buf.update(  # one sample's scratch: see conv_s2d_forward, conv_s2d_backward
                S=np.zeros((n, self.depth), np.float32),
                # the products of every shift: only for q != 2 (q = 2 goes by dot products)
                ycat=np.zeros((n, qq * self.oc) if self.q != 2 else (1, 1), np.float32),
                Wq=np.zeros((qq, self.oc, self.depth), np.float32),
            )
            if backward:
                buf.update(
                    dcat=np.zeros((n, qq * self.oc), np.float32),
                    dWq=np.zeros((qq, self.oc, self.depth), np.float32),
                )
            return buf
        buf["cols"] = np.zeros((E * p, self.K), np.float32)
        if backward:
            buf.update(
                dcols=np.zeros((E * p, self.K), np.float32) if need_dx else np.zeros((1, 1), np.float32),
                no_dx=np.zeros((1, 1, 1, 1), np.float32),  # typed stand-in for dx when there is none
            )
        return buf

    def bias(self, w, buf):
        """The bias the kernels add: b, or with centred frames b - center * rowsum(W), refreshed
        from the (shared, changing) parameters at every forward."""
        if not self.center:
            return w[self.kb]
        kconv.centered_bias(w[self.kW], w[self.kb], self.center, buf["b_eff"])
        return buf["b_eff"]

    def center_grad(self, g):
        """With centred frames: the kernels' dW (of the uncentred input) made the centred layer's."""
        if self.center:
            kconv.centered_weight_grad(g[self.kW], g[self.kb], self.center)

    def _forward_s2d(self, w, buf, x, t):
        kconv.s2d_weights(w[self.kW], self.c_in, self.k, self.stride, buf["Wq"])
        y = buf["y_t"][t]
        kconv.conv_s2d_forward(x, self.stride, self.scale, buf["Wq"], self.bias(w, buf), self.q, self.oh, self.ow,
                               buf["S"], buf["ycat"], y)
        return y

    def _backward_s2d(self, g, buf, rows):
        p = self.oh * self.ow
        y, dy = buf["y"][: rows * p], buf["dy"][: rows * p]
        kdense.relu_backward(y, dy)
        kconv.conv_s2d_backward(dy, buf["x"][:rows], self.stride, self.scale, self.oh, self.ow, self.q,
                                buf["S"], buf["dcat"], buf["dWq"], g[self.kb])
        kconv.s2d_weights_backward(buf["dWq"], self.c_in, self.k, self.stride, g[self.kW])
        self.center_grad(g)

    def forward(self, w, buf, x, t):
        if self.first:  # keep the frames for the backward (and read them contiguous)
            xt = buf["x_t"][t]
            xt[...] = x
            x = xt
        if self.s2d:
            return self._forward_s2d(w, buf, x, t)
        cols = buf["cols"]
        if self.first:
            kconv.im2col_nchw(x, self.k, self.k, self.stride, self.scale, cols)
        else:
            kconv.im2col_nhwc(x, self.k, self.k, self.stride, cols)
        y = buf["y_t"][t]
        kdense.dense_forward(cols, w[self.kW], self.bias(w, buf), y)
        kdense.relu_forward(y)
        return y

    def y_view(self, y2d, E):
        """The output rows of E samples viewed as (E, OH, OW, OC)."""
        return y2d.reshape(E, self.oh, self.ow, self.oc)

    def dx_view(self, prev_dy, rows):
        return prev_dy.reshape(rows, *self.in_shape)

    def backward(self, w, g, buf, rows, x_all, dx):
        """``rows`` = T*E samples; x_all: the previous layer's outputs for them (None for the
        first layer); dx: the previous layer's dy viewed (T*E, H, W, C), or None."""
        if self.s2d:  # only ever the first layer: no input gradient
            return self._backward_s2d(g, buf, rows)
        p = self.oh * self.ow
        y, dy = buf["y"][: rows * p], buf["dy"][: rows * p]
        kdense.relu_backward(y, dy)
        x = buf["x"][:rows] if self.first else x_all.reshape(rows, *self.in_shape)
        need_dx = dx is not None
        kconv.conv_backward(x, self.first, self.scale, dy, w[self.kW], buf["E"], self.k, self.k, self.stride,
                            buf["cols"], buf["dcols"], g[self.kW], g[self.kb], dx if need_dx else buf["no_dx"], need_dx)
        self.center_grad(g)


class Dense:
    """Fully connected layer (+ ReLU unless it is the head). ``first``: owns an input buffer."""

    def __init__(self, name, n_in, n_out, relu=True, first=False):
        self.name, self.n_in, self.n_out, self.relu, self.first = name, n_in, n_out, relu, first
        self.kW, self.kb = f"{name}.W", f"{name}.b"
        self.out_shape = (n_out,)

    def param_specs(self):
        return [
            ParamSpec(f"{self.name}.W", (self.n_out, self.n_in), "uniform", fan_in=self.n_in,
                      gain=RELU_GAIN if self.relu else 1.0),
            ParamSpec(f"{self.name}.b", (self.n_out,), "zeros"),
        ]

    def flops(self):
        return 2 * self.n_in * self.n_out

    def alloc(self, slots, E, need_dx, backward=True):
        y = np.zeros((slots * E, self.n_out), np.float32)
        buf = dict(y=y, y_t=[y[t * E : (t + 1) * E] for t in range(slots)])
        if backward:
            buf["dy"] = np.zeros_like(y)
        if self.first:
            x = np.zeros((slots * E, self.n_in), np.float32)
            buf.update(x=x, x_t=[x[t * E : (t + 1) * E] for t in range(slots)])
        return buf

    def forward(self, w, buf, x, t):
        if self.first:
            xt = buf["x_t"][t]
            xt[...] = x.reshape(xt.shape)
            x = xt
        y = buf["y_t"][t]
        kdense.dense_forward(x.reshape(y.shape[0], self.n_in), w[self.kW], w[self.kb], y)
        if self.relu:
            kdense.relu_forward(y)
        return y

    def y_view(self, y2d, E):
        return y2d

    def dx_view(self, prev_dy, rows):
        return prev_dy.reshape(rows, self.n_in)

    def backward(self, w, g, buf, rows, x_all, dx):
        if x_all is None:
            x_all = buf["x"][:rows]
        else:
            x_all = x_all.reshape(rows, self.n_in)
        y, dy = buf["y"][:rows], buf["dy"][:rows]
        if self.relu:
            kdense.relu_backward(y, dy)
        need_dx = dx is not None
        dxx = dx if need_dx else y  # unused placeholder when need_dx is False
        kdense.dense_backward(x_all, w[self.kW], dy, g[self.kW], g[self.kb], dxx, need_dx)


class Workspace:
    """Every buffer one learner needs for one net, allocated once; ``grad=None``: forward only."""

    def __init__(self, net, slots, E, theta, grad=None):
        self.slots, self.E = slots, E
        self.obs_shape = (E, *net.obs_shape)
        self.theta, self.grad = theta, grad
        self.backward = grad is not None
        self.w = net.layout.views(theta)
        self.g = net.layout.views(grad) if self.backward else None
        self.bufs = [
            layer.alloc(slots, E, need_dx=i > 0 and self.backward, backward=self.backward)
            for i, layer in enumerate(net.layers)
        ]
        # recurrent nets: reset_in[t, e] = 1 when a new episode of env e starts at slot t
        lstm = [b for layer, b in zip(net.layers, self.bufs) if isinstance(layer, LSTM)]
        self.reset_in = lstm[0]["reset"] if lstm else None
        # the Atari net's one-call forward (every argument but the frames, per slot) and backward
        self.fused_args = [net.fused_args(self, t) for t in range(slots)] if net.fused else None
        self.fused_backward_args = net.fused_backward_args(self) if net.fused and self.backward else None


def _need_backward(ws, fn):
    if not ws.backward:
        raise ValueError(f"{fn}: this workspace is forward-only (made without a gradient array)")


class Net:
    """A stack of layers; the last one is the linear head."""

    def __init__(self, kind, obs_shape, num_actions, layers, head_outputs):
        self.kind = kind
        self.recurrent = any(isinstance(layer, LSTM) for layer in layers)
        self.obs_shape = tuple(obs_shape)
        self.obs_dtype = np.dtype(np.uint8 if len(obs_shape) == 3 else np.float32)
        self.num_actions = num_actions
        self.head_outputs = head_outputs
        self.layers = layers
        self.layout = Layout([s for layer in layers for s in layer.param_specs()])
        self.fused = _is_atari_ff(layers)
        # the fused calls read conv1's centred bias, refreshed around them (None: x/255, nothing to do)
        self.centred = layers[0] if self.fused and layers[0].center else None
        self.head = "a3c" if head_outputs == num_actions + 1 else "q"  # make_net sets it ("gaussian" too)

    @property
    def num_params(self):
        return self.layout.size

    def flops_per_sample(self):
        """Forward FLOPs of one observation (2 x multiply-adds of the GEMM-shaped work)."""
        return sum(layer.flops() for layer in self.layers)

    def init_params(self, seed):
        """Fresh parameters; the policy outputs of an actor-critic head (logits, or the Gaussian's
        means and variance pre-activations) start small (weights x0.01)."""
        flat = self.layout.init(seed)
        views = self.layout.views(flat)
        for layer in self.layers:
            if hasattr(layer, "init_fixup"):
                layer.init_fixup(views)
        head = self.layers[-1].name
        if self.head == "gaussian":  # means and variances start near mu = 0, sigma^2 = softplus(0) = 0.69
            self.layout.views(flat)[f"{head}.W"][: 2 * self.num_actions] *= 0.01
        elif self.head_outputs == self.num_actions + 1:
            self.layout.views(flat)[f"{head}.W"][: self.num_actions] *= 0.01
        return flat

    def workspace(self, slots, E, theta, grad=None):
        """Buffers for ``slots`` time slots of ``E`` envs; without ``grad``, forward passes only."""
        return Workspace(self, slots, E, theta, grad)

    def forward(self, ws, obs, t):
        """Forward pass of E observations at time slot t; returns the head output (E, outputs).

        obs: (E, *obs_shape), uint8 frames for the conv net, float32 vectors for the MLP;
        anything else is a ValueError naming the expected shape (checked here, never in a kernel).
        """
        if obs.shape != ws.obs_shape or obs.dtype != self.obs_dtype:
            check_array("Net.forward: obs", obs, ws.obs_shape, self.obs_dtype, contiguous=False)
        if not 0 <= t < ws.slots:
            raise ValueError(f"Net.forward: slot {t} out of range 0..{ws.slots - 1}")
        if ws.fused_args is not None and obs.flags.c_contiguous and obs.flags.writeable:
            if self.centred is not None:
                self.centred.bias(ws.w, ws.bufs[0])  # the bias the fused call reads, from the current W
            kfused.atari_forward(obs, *ws.fused_args[t])  # one GIL hand-back for the whole slot
            return ws.bufs[-1]["y_t"][t]
        return self.forward_layers(ws, obs, t)

    def forward_layers(self, ws, obs, t):
        """``forward`` layer by layer (any net; the Atari net's reference for its one-call path)."""
        x = obs
        E = ws.E
        for layer, buf in zip(self.layers, ws.bufs):
            y = layer.forward(ws.w, buf, x, t)
            x = layer.y_view(y, E)
        return x

    def fused_args(self, ws, t):
        """Arguments of ``kernels.fused.atari_forward`` after the frames, for slot t."""
        c1, c2, fc, head = self.layers
        b1, b2, bf, bh = ws.bufs
        w = ws.w
        return (
            b1["x_t"][t], w[c1.kW], b1["b_eff"] if c1.center else w[c1.kb], c1.c_in, c1.k, c1.stride, c1.scale, b1["Wq"], c1.q, c1.oh, c1.ow,
            b1["S"], b1["ycat"], b1["y_t"][t],
            c2.k, c2.stride, b2["cols"], w[c2.kW], w[c2.kb], b2["y_t"][t],
            w[fc.kW], w[fc.kb], bf["y_t"][t], w[head.kW], w[head.kb], bh["y_t"][t],
        )

    def fused_backward_args(self, ws):
        """Arguments of ``kernels.fused.atari_backward`` after T and E: whole buffers."""
        c1, c2, fc, head = self.layers
        b1, b2, bf, bh = ws.bufs
        w, g = ws.w, ws.g
        return (
            b1["x"], c1.c_in, c1.k, c1.stride, c1.scale, c1.oh, c1.ow, c1.q, b1["S"], b1["dcat"], b1["dWq"],
            g[c1.kW], g[c1.kb], b1["y"], b1["dy"],
            c2.k, c2.stride, c2.scale, b2["cols"], b2["dcols"], w[c2.kW], g[c2.kW], g[c2.kb], b2["y"], b2["dy"],
            w[fc.kW], g[fc.kW], g[fc.kb], bf["y"], bf["dy"], w[head.kW], g[head.kW], g[head.kb], bh["dy"],
        )

    def output(self, ws, t):
        """The head output stored for slot t (E, outputs)."""
        return ws.bufs[-1]["y_t"][t]

    def outputs(self, ws, T):
        """Head outputs of slots 0..T-1 as one (T*E, outputs) array (a view)."""
        return ws.bufs[-1]["y"][: T * ws.E]

    def dout(self, ws, T):
        """Where the loss writes dL/d(head output) for slots 0..T-1: (T*E, outputs)."""
        _need_backward(ws, "Net.dout")
        return ws.bufs[-1]["dy"][: T * ws.E]

    def backward(self, ws, T):
        """Backpropagate ``self.dout(ws, T)`` (filled by the loss) through slots 0..T-1 into ws.grad."""
        _need_backward(ws, "Net.backward")
        if not 1 <= T <= ws.slots:
            raise ValueError(f"Net.backward: T = {T} slots, expected 1..{ws.slots}")
        if ws.fused_backward_args is not None:
            kfused.atari_backward(T, ws.E, *ws.fused_backward_args)  # one GIL hand-back for the segment
            if self.centred is not None:
                self.centred.center_grad(ws.g)
            return
        self.backward_layers(ws, T)

    def backward_layers(self, ws, T):
        """``backward`` layer by layer (any net; the Atari net's reference for its one-call path)."""
        rows = T * ws.E
        for i in range(len(self.layers) - 1, -1, -1):
            layer, buf = self.layers[i], ws.bufs[i]
            x_all = dx = None
            if i > 0:
                pbuf = ws.bufs[i - 1]
                n = pbuf["y"].shape[0] // ws.slots * T  # rows of the previous layer's output for T slots
                x_all, dx = pbuf["y"][:n], layer.dx_view(pbuf["dy"][:n], rows)
            layer.backward(ws.w, ws.g, buf, rows, x_all, dx)

    def reset_state(self, ws):
        """Zero the recurrent state (a fresh start for every env)."""
        for layer, buf in zip(self.layers, ws.bufs):
            if isinstance(layer, LSTM):
                for k in ("y", "c", "h0", "c0"):
                    buf[k][...] = 0.0

    def begin_segment(self, ws):
        """Carry recurrent state into a new segment (no-op for feed-forward nets)."""
        for layer, buf in zip(self.layers, ws.bufs):
            if isinstance(layer, LSTM):
                layer.begin_segment(buf, ws.slots - 1)


class LSTM:
    """LSTM layer (gates i, f, g, o; kernels/lstm.py) with per-env state carried across segments.

    While acting, slot t starts from the state after slot t-1 (slot 0: the state after the
    previous segment's slot T-1, kept in ``h0``/``c0``), zeroed for envs whose
    ``ws.reset_in[t]`` is set (a new episode starts at that slot). The backward pass reruns
    the sequence forward over slots 0..T-1 to get the gates, then truncated BPTT.
    """

    def __init__(self, name, n_in, size):
        self.name, self.n_in, self.H = name, n_in, size
        self.kWx, self.kWh, self.kb = f"{name}.Wx", f"{name}.Wh", f"{name}.b"
        self.out_shape = (size,)
        self.relu = False

    def param_specs(self):
        H = self.H
        return [
            ParamSpec(f"{self.name}.Wx", (4 * H, self.n_in), "uniform", fan_in=self.n_in),
            ParamSpec(f"{self.name}.Wh", (4 * H, H), "uniform", fan_in=H),
            ParamSpec(f"{self.name}.b", (4 * H,), "zeros"),
        ]

    def init_fixup(self, views):
        """Forget-gate bias 1 (remember by default)."""
        views[f"{self.name}.b"][self.H : 2 * self.H] = 1.0

    def flops(self):
        return 2 * (self.n_in + self.H) * 4 * self.H

    def alloc(self, slots, E, need_dx, backward=True):
        H, T = self.H, slots - 1
        y = np.zeros((slots * E, H), np.float32)
        c = np.zeros((slots * E, H), np.float32)
        buf = dict(
            y=y, c=c,
            y_t=[y[t * E : (t + 1) * E] for t in range(slots)],
            c_t=[c[t * E : (t + 1) * E] for t in range(slots)],
            h0=np.zeros((E, H), np.float32), c0=np.zeros((E, H), np.float32),
            hs=np.zeros((E, H), np.float32), cs=np.zeros((E, H), np.float32),
            zstep=np.zeros((2, E, 4 * H), np.float32),
            reset=np.zeros((slots, E), np.uint8),
            reset_t=None,
        )
        buf["reset_t"] = [buf["reset"][t] for t in range(slots)]
        if backward:  # the backward reruns the sequence (zseq, gates), then truncated BPTT
            buf.update(
                dy=np.zeros_like(y),
                zseq=np.zeros((E, 4 * H), np.float32), gates=np.zeros((T, E, 4 * H), np.float32),
                dz=np.zeros((T, E, 4 * H), np.float32), hprev=np.zeros((T, E, H), np.float32),
                dh=np.zeros((E, H), np.float32), dc=np.zeros((E, H), np.float32),
            )
        return buf

    def begin_segment(self, buf, T):
        buf["h0"][...] = buf["y_t"][T - 1]
        buf["c0"][...] = buf["c_t"][T - 1]

    def forward(self, w, buf, x, t):
        hp = buf["h0"] if t == 0 else buf["y_t"][t - 1]
        cp = buf["c0"] if t == 0 else buf["c_t"][t - 1]
        klstm.state_in(hp, cp, buf["reset_t"][t], buf["hs"], buf["cs"])
        klstm.lstm_step(x, buf["hs"], buf["cs"], w[self.kWx], w[self.kWh], w[self.kb], buf["zstep"],
                        buf["y_t"][t], buf["c_t"][t])
        return buf["y_t"][t]

    def y_view(self, y2d, E):
        return y2d

    def dx_view(self, prev_dy, rows):
        return prev_dy.reshape(rows, self.n_in)

    def backward(self, w, g, buf, rows, x_all, dx):
        E = buf["h0"].shape[0]
        T = rows // E
        H = self.H
        x = x_all.reshape(T, E, self.n_in)
        reset = buf["reset"][:T]
        c_seq = buf["c"][:rows].reshape(T, E, H)
        h_seq = buf["y"][:rows].reshape(T, E, H)
        gates = buf["gates"][:T]
        klstm.lstm_forward(x, buf["h0"], buf["c0"], reset, w[self.kWx], w[self.kWh], w[self.kb], buf["zseq"],
                           gates, c_seq, h_seq)
        dxx = dx.reshape(T, E, self.n_in) if dx is not None else np.zeros((T, E, self.n_in), np.float32)
        klstm.lstm_backward(x, buf["h0"], buf["c0"], reset, w[self.kWx], w[self.kWh], gates, c_seq, h_seq,
                            buf["dy"][:rows].reshape(T, E, H), g[self.kWx], g[self.kWh], g[self.kb], dxx,
                            buf["dz"][:T], buf["dh"], buf["dc"], buf["hprev"][:T])


def _is_atari_ff(layers):
    """conv (first, space-to-depth) -> conv -> fc (ReLU) -> linear head: the paper's
    feed-forward Atari net, which ``kernels.fused.atari_forward`` runs in one call."""
    kinds = [type(layer) for layer in layers]
    if kinds != [Conv, Conv, Dense, Dense]:
        return False
    c1, c2, fc, head = layers
    return c1.first and c1.s2d and not c2.first and fc.relu and not fc.first and not head.relu and not head.first


def atari_net(num_actions, head_outputs, obs_shape=(4, 84, 84), lstm=0, center=0.0):
    c1 = Conv("conv1", obs_shape, 16, 8, 4, first=True, scale=1.0 / 255.0, center=center)
    c2 = Conv("conv2", c1.out_shape, 32, 4, 2)
    layers = [c1, c2, Dense("fc", int(np.prod(c2.out_shape)), 256)]
    n_in = 256
    if lstm:
        layers.append(LSTM("lstm", n_in, lstm))
        n_in = lstm
    layers.append(Dense("head", n_in, head_outputs, relu=False))
    return Net("atari-lstm" if lstm else "atari", obs_shape, num_actions, layers, head_outputs)


def mlp_net(num_actions, head_outputs, obs_shape, hidden=(64, 64), lstm=0):
    layers, n_in = [], int(np.prod(obs_shape))
    for i, h in enumerate(hidden):
        layers.append(Dense(f"fc{i + 1}", n_in, h, first=(i == 0)))
        n_in = h
    if lstm:
        if not hidden:
            raise ValueError("an LSTM net needs at least one hidden layer before the LSTM")
        layers.append(LSTM("lstm", n_in, lstm))
        n_in = lstm
    layers.append(Dense("head", n_in, head_outputs, relu=False, first=not layers))
    return Net("mlp-lstm" if lstm else "mlp", obs_shape, num_actions, layers, head_outputs)


def make_net(obs_shape, num_actions, head="a3c", hidden=(64, 64), lstm=0, frame_center=0.0):
    """The net for an observation shape: conv net for image stacks, MLP for vectors.

    ``head``: "a3c" (A logits + 1 value), "gaussian" (A means, A variance pre-activations,
    1 value; ``num_actions`` is then the action's dimension A) or "q" (A values); ``lstm``:
    LSTM cells after the torso (0 = feed-forward); ``frame_center``: the conv net sees its
    frames as x/255 - frame_center (0: the paper's x/255).
    """
    outputs = {"a3c": num_actions + 1, "gaussian": 2 * num_actions + 1}.get(head, num_actions)
    if len(obs_shape) == 3:
        net = atari_net(num_actions, outputs, obs_shape, lstm, frame_center)
    else:
        net = mlp_net(num_actions, outputs, obs_shape, hidden, lstm)
    net.head = head
    return net
