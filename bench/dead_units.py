"""How many units of a pixel net's torso still pass anything: a dead-ReLU census of a run.

    python bench/dead_units.py RUN_DIR [RUN_DIR ...] [--steps 300] [--init]

For each run: loads its checkpoint's policy, plays ``--steps`` uniformly random actions in one
env of the run's own (the same preprocessing), feeds all those frames through the net layer
by layer and reports, per layer, the share of units that are ever positive (alive on at
least one frame and position), the share of all outputs that are positive, and how much the
outputs vary across frames. ``--init``: the same for freshly initialised parameters (seed 0)
of the run's net. A unit that is never positive passes no gradient and never comes back;
a net whose conv1 is dead gives the same outputs for every frame.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def frames_of(policy, steps, seed=1):
    env = policy.env()
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        out.append(np.asarray(obs).copy())
        if policy.info.discrete:
            action = int(rng.integers(policy.num_actions))
        else:
            action = rng.uniform(policy.info.action_low, policy.info.action_high).astype(np.float32)
        obs, _r, term, trunc, _info = env.step(action)
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return np.ascontiguousarray(np.stack(out))


def census(net, theta, frames):
    """Per layer: (name, units, share of units ever positive, share of outputs positive,
    mean over units of the outputs' std across frames, whether the layer ends in a ReLU).
    Only a ReLU layer's unit can die; a linear head or an LSTM that is never positive is not dead."""
    ws = net.workspace(1, len(frames), np.ascontiguousarray(theta, np.float32))
    net.forward_layers(ws, frames, 0)
    rows = []
    for layer, buf in zip(net.layers, ws.bufs):
        y = buf["y_t"][0]
        y = y.reshape(len(frames), -1, y.shape[-1])  # (frames, positions, units)
        rows.append((layer.name, y.shape[-1], float((y > 0).any(axis=(0, 1)).mean()), float((y > 0).mean()),
                     float(y.reshape(len(frames), -1).std(axis=0).mean()), bool(layer.relu)))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--init", action="store_true", help="census of freshly initialised parameters instead")
    args = ap.parse_args(argv)
    import fastasync

    for run in args.runs:
        policy = fastasync.load(run)
        net = policy._agent.net
        if len(policy.observation_shape) != 3:
            print(f"{run}: not a pixel net", file=sys.stderr)
            continue
        frames = frames_of(policy, args.steps)
        theta = net.init_params(0) if args.init else policy._agent.theta
        center = net.layers[0].center
        print(f"{run} ({'init' if args.init else f'{policy.frames:,} frames'}; frames x/255 - {center:g}, "
              f"mean pixel {frames.mean() / 255:.3f})")
        print("  layer   units  ever on  outputs > 0  std across frames")
        for name, units, alive, pos, std, relu in census(net, theta, frames):
            ever = f"{alive:7.0%}" if relu else " linear"
            print(f"  {name:6s} {units:6d}  {ever}  {pos:11.1%}  {std:.2g}")


if __name__ == "__main__":
    main()
