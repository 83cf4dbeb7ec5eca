"""Play full games with a trained agent: true scores (unclipped, whole games, no life loss)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from . import checkpoint as ckpt
from .config import TrainConfig
from .envs.base import last_frame
from .envs.families import FAMILIES


@dataclass
class Agent:
    cfg: TrainConfig
    net: object
    theta: np.ndarray
    info: object
    backend: str
    frames: int
    extra: dict = None  # the checkpoint's extra arrays (observation statistics among them)


def load_agent(path: str, backend: str = "auto") -> Agent:
    """Load a checkpoint (run dir or .npz) and rebuild its net; raises CheckpointError."""
    from .algorithms import build_net
    from .config import ConfigError
    from .envs import view_options, default_backend, env_info
    ck = ckpt.load(path)
    try:
        cfg = TrainConfig.from_dict(ck["config"])
    except (ConfigError, TypeError) as exc:
        raise ckpt.CheckpointError(f"checkpoint {ck['path']} has an unusable config: {exc}") from None
    if backend == "auto":
        backend = cfg.env.backend if cfg.env.backend != "auto" else default_backend()
    info = env_info(cfg.env.env, backend, **view_options(cfg.env))
    net = build_net(cfg, info)
    ckpt.check_matches(ck, net.layout)
    if info.vector_obs:  # the observation statistics it was trained with must be there (and fit)
        from .obsnorm import ObsNorm

        try:
            ObsNorm(int(np.prod(info.obs_shape)), cfg.env.obs_norm).load(ck["extra"], f"checkpoint {ck['path']}")
        except ValueError as exc:
            raise ckpt.CheckpointError(str(exc)) from None
    return Agent(cfg, net, ck["theta"], info, backend, ck["frames"], ck["extra"])


def frozen_obsnorm(agent: Agent):
    """The training run's observation statistics (vector observations; None for pixels),
    for an actor to normalise with, frozen: nothing merges into them."""
    if not agent.info.vector_obs:
        return None
    from .obsnorm import ObsNorm

    stats = ObsNorm(int(np.prod(agent.info.obs_shape)), agent.cfg.env.obs_norm)
    stats.load(agent.extra or {})
    return stats


def agent_actor(agent: Agent, algo, E: int, rng_state, obsnorm, nonfinite):
    """The :class:`~fastasync.acting.Actor` that plays ``E`` envs with a trained agent (eval
    and ``Policy``): a forward-only workspace on its parameters (slot 0 acts; 2 slots carry
    the LSTM state from step to step), ``obsnorm`` (``frozen_obsnorm``), the evaluation
    choices (``act_eval``, or greedy) with the generator ``rng_state``."""
    from .acting import Actor

    theta = np.ascontiguousarray(agent.theta, np.float32)
    return Actor(agent.net, algo, E, theta, rng_state, slots=2, obsnorm=obsnorm, nonfinite=nonfinite)


def _nonfinite_in_eval(env_id):
    def nonfinite(obs, env, t, frames):
        return ValueError(f"{env_id} returned a non-finite observation during evaluation")

    return nonfinite


def evaluate(agent: Agent, episodes: int = 10, greedy=None, seed: int = 12345, gif: str | None = None,
             max_envs: int = 8, recorder=None, stop=None) -> dict:
    """Play ``episodes`` full games; returns {'scores', 'lengths', 'greedy', 'policy'}.

    Each env plays a fixed quota of games so that short games are not over-represented.
    ``greedy=None`` picks the method's default: sample the policy for actor-critic,
    argmax for Q methods.

    ``recorder``: a :class:`fastasync.video.GameRecorder` (``video.recorder_for``), which then
    records every game (the game's own screen, in colour, at its own speed, the score so far
    in a corner). The games are then played one after another by one env of the gymnasium
    backend, the one that shows its screen, and the result's ``video`` holds what was
    written (``path``, ``frames``, ``fps``, per game ``scores`` and ``game_frames``): the
    recorded games are the games scored. ``stop``: an Event; once set, play ends and no
    video is written (``video`` None).
    """
    from .algorithms import make_algorithm
    from .envs import view_options, make_env
    from .kernels.rng import seed_state

    cfg, info = agent.cfg, agent.info
    if gif and info.vector_obs:
        raise ValueError(f"--gif needs an env with image observations (Atari, ViZDoom, CarRacing); "
                         f"{cfg.env.env} has vector observations")
    backend = agent.backend
    if recorder is not None:  # the env that shows its screen, one game after another
        backend, max_envs = "gymnasium", 1
    algo = make_algorithm(cfg.algo.algo, cfg, agent.net, info)
    if greedy is None:
        greedy = algo.head == "q"
    E = min(episodes, max_envs)
    quota = np.full(E, episodes // E)
    quota[: episodes % E] += 1
    try:
        env = make_env(
            cfg.env.env, E, seed=seed, backend=backend, episodic_life=False, reward_clip=False,
            noop_max=cfg.env.noop_max, max_episode_frames=cfg.env.max_episode_frames, **view_options(cfg.env),
            screen=None if recorder is None else recorder.screen,
        )
    except BaseException:
        if recorder is not None:
            recorder.abort()
        raise
    score = np.zeros(E)
    length = np.zeros(E, np.int64)
    prev_done = np.zeros(E, bool)
    prev_reset = np.zeros(E, bool)
    scores, lengths, frames = [], [], []
    recording = bool(gif)
    recorded = None
    try:
        actor = agent_actor(agent, algo, E, seed_state(seed), frozen_obsnorm(agent), _nonfinite_in_eval(cfg.env.env))
        obs = env.reset()
        while (quota > 0).any():
            if stop is not None and stop.is_set():
                break
            if recording:
                frames.append(last_frame(obs[0]))
            # recurrent nets: the state after the last step, reset where a new episode starts
            step = env.step(actor.act(obs, prev_reset, greedy))
            score += step.raw_reward
            length += ~prev_done
            if recorder is not None and not prev_done[0]:  # an agent step of env 0 (not its reset step)
                recorder.step(step.raw_reward[0], bool(step.game_over[0]))
            prev_reset = prev_done
            prev_done = step.terminated | step.truncated
            for e in np.flatnonzero(step.game_over):
                if quota[e] > 0:
                    scores.append(score[e])
                    lengths.append(int(length[e]))
                    quota[e] -= 1
                if e == 0 and recording:
                    recording = False
                score[e], length[e] = 0.0, 0
            obs = step.obs
        if recorder is not None and not (quota > 0).any():
            recorded, recorder = recorder.close(), None
    finally:
        env.close()
        if recorder is not None:  # stopped, or failed: nothing is left behind
            recorder.abort()
    if gif:
        write_gif(gif, frames, fps=max(1, FAMILIES.get(info.family, FAMILIES['atari']).fps // info.frame_skip))
    policy = "greedy" if greedy else algo.eval_policy  # how the actions were picked, for the report
    out = dict(scores=np.array(scores), lengths=np.array(lengths), greedy=greedy, policy=policy)
    if recorded is not None or recorder is not None:
        out["video"] = recorded
    return out


EVAL_FILE = "eval.json"  # the games of a run's final checkpoint, beside it (``fastasync eval --save``)


def save_eval(run_dir: str, frames: int, res: dict, seed: int) -> str:
    """Write ``res`` (``evaluate``'s result) as RUN_DIR/eval.json, atomically: the checkpoint's
    ``frames`` (so that a later checkpoint makes it stale), the policy, seed, games and their
    scores and lengths, the mean, median, min and max. Returns the path."""
    s = np.asarray(res["scores"], float)
    doc = {"frames": int(frames), "policy": res["policy"], "greedy": bool(res["greedy"]), "seed": int(seed),
           "games": int(s.size), "mean": float(s.mean()), "median": float(np.median(s)), "min": float(s.min()),
           "max": float(s.max()), "scores": s.tolist(), "lengths": [int(x) for x in res["lengths"]]}
    path = os.path.join(run_dir, EVAL_FILE)
    ckpt.atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path


def read_eval(run_dir: str, frames: int | None = None) -> dict | None:
    """RUN_DIR/eval.json as written by ``save_eval``, or None where there is none, it cannot be
    read, or (``frames`` given) it is of another checkpoint than the one at ``frames``."""
    try:
        with open(os.path.join(run_dir, EVAL_FILE)) as fh:
            doc = json.load(fh)
        ok = (isinstance(doc, dict) and isinstance(doc.get("games"), int) and doc["games"] > 0
              and isinstance(doc.get("mean"), (int, float)))
    except (OSError, ValueError):
        return None
    if not ok or (frames is not None and doc.get("frames") != frames):
        return None
    return doc


def write_gif(path: str, frames, fps: int = 15, scale: int = 2) -> None:
    """Animated GIF of grey (H, W) or RGB (H, W, 3) uint8 frames, written atomically."""
    from PIL import Image

    imgs = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in frames]
    if not imgs:
        raise ValueError("no frames to write")

    def write(fh):
        imgs[0].save(fh, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)

    ckpt.atomic_write_bytes(path, write)
