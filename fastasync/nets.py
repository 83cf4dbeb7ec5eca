"""Network specs built from kernel layers, and per-learner workspaces.

A :class:`Net` is a stack of layers over one :class:`~fastasync.params.Layout`. It owns no
arrays: a learner asks it for a :class:`Workspace` once (every activation, column and
gradient buffer for ``slots`` time steps of ``E`` envs, allocated up front), then calls

* ``net.forward(ws, obs, t)`` while acting: the forward pass for the E envs at time slot
  ``t``; every activation is kept in the workspace, so the backward pass reuses them
  instead of running a second forward;
* ``net.backward(ws, dout)`` after a segment: gradients of the whole segment (slots
  ``0..T-1``, ``T*E`` rows in one GEMM per layer) into ``ws.grad``.

Weights are read from ``ws.theta`` (the learner's snapshot of the shared parameters), and
gradients go to ``ws.grad``; both are flat arrays in the net's layout.

Nets (``make_net``):
* ``atari``: the paper's feed-forward Atari net (Mnih et al. 2013/2016): uint8 4x84x84 ->
  conv 16@8x8/4 -> conv 32@4x4/2 -> fc 256 -> head, ReLU after every hidden layer.
* ``mlp``: obs vector -> dense 64 -> dense 64 -> head, for classic-control envs.
The head has ``A + 1`` outputs for actor-critic (logits and value) and ``A`` for Q methods.
"""

from __future__ import annotations

import numpy as np

from .kernels import conv as kconv
from .kernels import dense as kdense
from .params import Layout, ParamSpec


class Conv:
    """Valid convolution + ReLU. ``first``: reads channels-first input (uint8 frames) scaled."""

    def __init__(self, name, in_shape, out_channels, kernel, stride, first=False, scale=1.0):
        self.name, self.first, self.scale = name, first, float(scale)
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

    def param_specs(self):
        return [
            ParamSpec(f"{self.name}.W", (self.oc, self.K), "uniform", fan_in=self.K),
            ParamSpec(f"{self.name}.b", (self.oc,), "zeros"),
        ]

    def flops(self):
        """Multiply-adds x 2 of one sample's forward pass."""
        return 2 * self.oh * self.ow * self.K * self.oc

    def alloc(self, slots, E, need_dx):
        p = self.oh * self.ow
        cols = np.zeros((slots * E * p, self.K), np.float32)
        y = np.zeros((slots * E * p, self.oc), np.float32)
        buf = dict(
            cols=cols,
            y=y,
            dy=np.zeros_like(y),
            dcols=np.zeros_like(cols) if need_dx else np.zeros((1, 1), np.float32),
            cols_t=[cols[t * E * p : (t + 1) * E * p] for t in range(slots)],
            y_t=[y[t * E * p : (t + 1) * E * p] for t in range(slots)],
        )
        return buf

    def forward(self, w, buf, x, t):
        cols = buf["cols_t"][t]
        if self.first:
            kconv.im2col_nchw(x, self.k, self.k, self.stride, self.scale, cols)
        else:
            kconv.im2col_nhwc(x, self.k, self.k, self.stride, cols)
        y = buf["y_t"][t]
        kdense.dense_forward(cols, w[f"{self.name}.W"], w[f"{self.name}.b"], y)
        kdense.relu_forward(y)
        return y

    def y_view(self, y2d, E):
        """The output rows of E samples viewed as (E, OH, OW, OC)."""
        return y2d.reshape(E, self.oh, self.ow, self.oc)

    def backward(self, w, g, buf, rows, dx):
        """``rows`` = T*E samples; dx: the previous layer's dy viewed (T*E, H, W, C), or None."""
        p = self.oh * self.ow
        y, dy, cols = buf["y"][: rows * p], buf["dy"][: rows * p], buf["cols"][: rows * p]
        kdense.relu_backward(y, dy)
        need_dx = dx is not None
        dcols = buf["dcols"][: rows * p] if need_dx else buf["dcols"]
        kdense.dense_backward(cols, w[f"{self.name}.W"], dy, g[f"{self.name}.W"], g[f"{self.name}.b"], dcols, need_dx)
        if need_dx:
            kconv.col2im_nhwc(dcols, self.k, self.k, self.stride, dx)


class Dense:
    """Fully connected layer (+ ReLU unless it is the head). ``first``: owns an input buffer."""

    def __init__(self, name, n_in, n_out, relu=True, first=False):
        self.name, self.n_in, self.n_out, self.relu, self.first = name, n_in, n_out, relu, first
        self.out_shape = (n_out,)

    def param_specs(self):
        return [
            ParamSpec(f"{self.name}.W", (self.n_out, self.n_in), "uniform", fan_in=self.n_in),
            ParamSpec(f"{self.name}.b", (self.n_out,), "zeros"),
        ]

    def flops(self):
        return 2 * self.n_in * self.n_out

    def alloc(self, slots, E, need_dx):
        y = np.zeros((slots * E, self.n_out), np.float32)
        buf = dict(y=y, dy=np.zeros_like(y), y_t=[y[t * E : (t + 1) * E] for t in range(slots)])
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
        kdense.dense_forward(x.reshape(y.shape[0], self.n_in), w[f"{self.name}.W"], w[f"{self.name}.b"], y)
        if self.relu:
            kdense.relu_forward(y)
        return y

    def y_view(self, y2d, E):
        return y2d

    def backward(self, w, g, buf, rows, dx, x_all):
        y, dy = buf["y"][:rows], buf["dy"][:rows]
        if self.relu:
            kdense.relu_backward(y, dy)
        need_dx = dx is not None
        dxx = dx if need_dx else y  # unused placeholder when need_dx is False
        kdense.dense_backward(x_all, w[f"{self.name}.W"], dy, g[f"{self.name}.W"], g[f"{self.name}.b"], dxx, need_dx)


class Workspace:
    """Every buffer one learner needs for one net, allocated once."""

    def __init__(self, net, slots, E, theta, grad):
        self.slots, self.E = slots, E
        self.theta, self.grad = theta, grad
        self.w = net.layout.views(theta)
        self.g = net.layout.views(grad)
        self.bufs = [layer.alloc(slots, E, need_dx=i > 0) for i, layer in enumerate(net.layers)]


class Net:
    """A stack of layers; the last one is the linear head."""

    def __init__(self, kind, obs_shape, num_actions, layers, head_outputs):
        self.kind = kind
        self.obs_shape = tuple(obs_shape)
        self.num_actions = num_actions
        self.head_outputs = head_outputs
        self.layers = layers
        self.layout = Layout([s for layer in layers for s in layer.param_specs()])

    @property
    def num_params(self):
        return self.layout.size

    def flops_per_sample(self):
        """Forward FLOPs of one observation (2 x multiply-adds of the GEMM-shaped work)."""
        return sum(layer.flops() for layer in self.layers)

    def init_params(self, seed):
        """Fresh parameters; the policy logits of an actor-critic head start small (x0.01)."""
        flat = self.layout.init(seed)
        if self.head_outputs == self.num_actions + 1:
            head = self.layers[-1].name
            self.layout.views(flat)[f"{head}.W"][: self.num_actions] *= 0.01
        return flat

    def workspace(self, slots, E, theta, grad):
        return Workspace(self, slots, E, theta, grad)

    def forward(self, ws, obs, t):
        """Forward pass of E observations at time slot t; returns the head output (E, outputs)."""
        x = obs
        E = ws.E
        for layer, buf in zip(self.layers, ws.bufs):
            y = layer.forward(ws.w, buf, x, t)
            x = layer.y_view(y, E)
        return x

    def output(self, ws, t):
        """The head output stored for slot t (E, outputs)."""
        return ws.bufs[-1]["y_t"][t]

    def outputs(self, ws, T):
        """Head outputs of slots 0..T-1 as one (T*E, outputs) array (a view)."""
        return ws.bufs[-1]["y"][: T * ws.E]

    def dout(self, ws, T):
        """Where the loss writes dL/d(head output) for slots 0..T-1: (T*E, outputs)."""
        return ws.bufs[-1]["dy"][: T * ws.E]

    def backward(self, ws, T):
        """Backpropagate ``self.dout(ws, T)`` (filled by the loss) through slots 0..T-1 into ws.grad."""
        rows = T * ws.E
        n = len(self.layers)
        for i in range(n - 1, -1, -1):
            layer, buf = self.layers[i], ws.bufs[i]
            if i > 0:
                prev, pbuf = self.layers[i - 1], ws.bufs[i - 1]
                prev_y = pbuf["y"][: rows * _rows_per_sample(prev)]
                prev_dy = pbuf["dy"][: rows * _rows_per_sample(prev)]
            if isinstance(layer, Conv):
                dx = prev_dy.reshape(rows, *prev.out_shape) if i > 0 else None
                layer.backward(ws.w, ws.g, buf, rows, dx)
            else:
                if i > 0:
                    x_all = prev_y.reshape(rows, layer.n_in)
                    dx = prev_dy.reshape(rows, layer.n_in)
                else:
                    x_all, dx = buf["x"][:rows], None
                layer.backward(ws.w, ws.g, buf, rows, dx, x_all)


def _rows_per_sample(layer):
    return layer.oh * layer.ow if isinstance(layer, Conv) else 1


def atari_net(num_actions, head_outputs, obs_shape=(4, 84, 84)):
    c1 = Conv("conv1", obs_shape, 16, 8, 4, first=True, scale=1.0 / 255.0)
    c2 = Conv("conv2", c1.out_shape, 32, 4, 2)
    fc = Dense("fc", int(np.prod(c2.out_shape)), 256)
    head = Dense("head", 256, head_outputs, relu=False)
    return Net("atari", obs_shape, num_actions, [c1, c2, fc, head], head_outputs)


def mlp_net(num_actions, head_outputs, obs_shape, hidden=(64, 64)):
    layers, n_in = [], int(np.prod(obs_shape))
    for i, h in enumerate(hidden):
        layers.append(Dense(f"fc{i + 1}", n_in, h, first=(i == 0)))
        n_in = h
    layers.append(Dense("head", n_in, head_outputs, relu=False, first=not hidden))
    return Net("mlp", obs_shape, num_actions, layers, head_outputs)


def make_net(obs_shape, num_actions, head="a3c", hidden=(64, 64)):
    """The net for an observation shape: conv net for image stacks, MLP for vectors."""
    outputs = num_actions + 1 if head == "a3c" else num_actions
    if len(obs_shape) == 3:
        return atari_net(num_actions, outputs, obs_shape)
    return mlp_net(num_actions, outputs, obs_shape, hidden)
