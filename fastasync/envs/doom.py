"""ViZDoom scenarios: a first-person 3D world from pixels, the stand-in for the paper's
Labyrinth. envpool's batched C++ ViZDoom, or the ``vizdoom`` package's own engine behind the
Python batch where envpool is missing.

Reward: the scenario's own, not envpool's
-----------------------------------------
envpool replaces a scenario's reward by a shaping of its own: weighted changes of game
variables (``reward_config``: health, ammo, kills, ...). In MyWayHome that shaping is zero
on every step, and the step that ends the episode on the goal returns no reward at all
(envpool writes reward 0 once the game has no state). fastasync rebuilds the scenario's
reward from what the env reports, which both backends report alike:

    r_t = living_reward * tics_t + end_reward * [the episode ended before its time limit]

with ``tics_t = frame_skip`` (4) per agent step and the scenario's values (from its .cfg
and its map script; ViZDoom's own total reward of an episode is the sum of these,
``tests/test_doom.py`` checks it against the engine):

============================  ==============  ============================================
scenario                      living / tic    end before the 2,100-tic limit
============================  ==============  ============================================
MyWayHome-v1                  -0.0001         +1: the vest is reached (the map script)
HealthGathering-v1            +1              -100: the player died (death_penalty)
HealthGatheringSupreme-v1     +1              -100: the player died
============================  ==============  ============================================

A step that ends the episode counts its 4 tics in full (ViZDoom stops within it: at most
3 tics of living reward off). This sum is the **true score** (episodes.csv, eval). The
training reward is the same divided by ``|end|``, so that the event that ends an episode
is worth 1 (HealthGathering: +0.04 a step alive, -1 for a death; MyWayHome unchanged),
then clipped to [-1, 1] under ``reward_clip``. Unscaled, HealthGathering's +1 a tic made
returns of ~100 to ~400: the value loss's gradients (norm ~4,000 before clipping) took the
policy's entropy to 0 within 3k frames. ``doom_reward = "envpool"`` trains on envpool's
shaping instead (the score is still the scenario's).

What a user reads: MyWayHome's score is > 0 exactly when the vest was reached (the living
cost of a whole episode is 0.21); HealthGathering's length (agent steps x 4 tics) is the
survival time, 2,100 tics when the whole episode was survived. ``outcome`` says which.

Observation and actions
-----------------------
RGB (as the paper's Labyrinth agent: colour tells items apart there), the 320x240 screen
area-resized to 84x84, 4 frames stacked oldest first: (12, 84, 84) uint8, channels
R, G, B of each frame. Frame skip 4 (the action is repeated for 4 tics; frames counted are
tics). Actions are envpool's combined discrete set built from the scenario's buttons
(``action_table``): every combination where at most one of each opposite pair (turn left or
right, move forward or backward, strafe left or right) is pressed; MyWayHome's 5 buttons
give 18 actions, HealthGathering's 3 give 6. Episodes end at 2,100 tics (525 agent steps),
a truncation: the value bootstraps there.

The status bar (``doom_hud``, the family's default): the scenarios' .cfg turn Doom's HUD
off, and then nothing on screen tells the health left, on which HealthGathering's death
alone depends. With it the bottom 32 of 240 rows (13 of 84) show the health, armour and the
face as a player sees them. envpool reads the screen settings from the .cfg only, so it gets
a copy with ``render_hud = true`` (``hud_config``); the vizdoom package sets it directly.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass

import numpy as np

FRAME_SKIP = 4
STACK = 4
SIZE = 84
EPISODE_TICS = 2100  # every scenario here: its .cfg's episode_timeout
MAX_STEPS = EPISODE_TICS // FRAME_SKIP  # 525 agent steps, envpool's default for ViZDoom
INSTALL = "pip install vizdoom"


@dataclass(frozen=True)
class Scenario:
    cfg: str  # the scenario's .cfg / .wad name
    living: float  # reward per tic while the episode runs
    end: float  # reward when the episode ends before its time limit
    outcome: str  # what a user reads: "goal" (ended early = reached) or "survival" (ran the full time)

    @property
    def train_scale(self) -> float:
        """Training reward = scenario reward x this: the episode-ending event is worth 1."""
        return 1.0 / abs(self.end)


DOOM = {
    "MyWayHome-v1": Scenario("my_way_home", -0.0001, 1.0, "goal"),
    "HealthGathering-v1": Scenario("health_gathering", 1.0, -100.0, "survival"),
    "HealthGatheringSupreme-v1": Scenario("health_gathering_supreme", 1.0, -100.0, "survival"),
}


def scenario_reward(scenario: Scenario, terminated: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The scenario's reward of one agent step for each env: (E,) float32.

    ``terminated``: (E,) bool, the episode ended this step before its time limit (a reset
    step, the first of an episode, is never terminated and gets 0 from the caller).
    """
    term = np.asarray(terminated, dtype=bool)
    r = np.full(term.shape, scenario.living * FRAME_SKIP, np.float32) if out is None else out
    if out is not None:
        r[...] = scenario.living * FRAME_SKIP
    r[term] += np.float32(scenario.end)
    return r


def outcome(env_id: str, score: float, length: int) -> bool | None:
    """Did the episode succeed? MyWayHome: the vest reached (score > 0); HealthGathering:
    the full 2,100 tics survived (``length`` agent steps). None for other envs."""
    sc = DOOM.get(env_id)
    if sc is None:
        return None
    if sc.outcome == "goal":
        return bool(score > 0)
    return bool(length * FRAME_SKIP >= EPISODE_TICS)


def outcome_name(env_id: str) -> str | None:
    sc = DOOM.get(env_id)
    return None if sc is None else {"goal": "reached the goal", "survival": "survived"}[sc.outcome]


def has_vizdoom() -> bool:
    import importlib.util

    return importlib.util.find_spec("vizdoom") is not None


# ---------------------------------------------------------------- the combined action set

# ViZDoom's Button ids, as envpool's BuildActionSet (envpool/vizdoom/utils.h) walks them
_PAIRS = (10, 12, 14, 16, 18, 31, 35)  # (MOVE_RIGHT, MOVE_LEFT), (MOVE_BACKWARD, MOVE_FORWARD), (TURN_RIGHT, TURN_LEFT), ...


def action_table(buttons: list[int]) -> np.ndarray:
    """envpool's combined discrete actions for a scenario's buttons (ViZDoom Button ids, in
    the .cfg's order): (A, len(buttons)) float64, row a = the buttons pressed by action a.

    A port of envpool's ``BuildActionSet`` without delta buttons and without weapon
    selection (no scenario here has them): opposite pairs give none/first/second, single
    buttons off/on, in Button-id order.
    """
    index = [-1] * 43
    for i, b in enumerate(buttons):
        index[b] = i
    out: list = []
    cur = [0.0] * len(buttons)

    def walk(bid: int) -> None:
        if bid == 43:
            out.append(list(cur))
        elif 38 <= bid <= 42 or 21 <= bid <= 30:
            if index[bid] != -1:
                raise ValueError(f"ViZDoom button {bid} (delta or weapon selection) is not supported")
            walk(bid + 1)
        elif bid in _PAIRS and index[bid] != -1 and index[bid + 1] != -1:
            walk(bid + 2)
            cur[index[bid]] = 1.0
            walk(bid + 2)
            cur[index[bid]] = 0.0
            cur[index[bid + 1]] = 1.0
            walk(bid + 2)
            cur[index[bid + 1]] = 0.0
        elif index[bid] != -1:
            walk(bid + 1)
            cur[index[bid]] = 1.0
            walk(bid + 1)
            cur[index[bid]] = 0.0
        else:
            walk(bid + 1)

    walk(0)
    return np.array(out, np.float64)


# ---------------------------------------------------------------- envpool


def envpool_kwargs(hud_env_id: str | None = None) -> dict:
    """What fastasync asks of envpool's ViZDoom (see the module docstring); with
    ``hud_env_id``, that scenario with its status bar rendered (``hud_config``)."""
    out = dict(
        use_combined_action=True, frame_skip=FRAME_SKIP, stack_num=STACK, img_height=SIZE, img_width=SIZE,
        max_episode_steps=MAX_STEPS, episodic_life=False, use_inter_area_resize=True,
    )
    if hud_env_id is not None:
        import envpool

        spec = envpool.make_spec(hud_env_id).config
        out.update(cfg_path=hud_config(spec.cfg_path), wad_path=spec.wad_path)
    return out


def hud_config(cfg_path: str) -> str:
    """A copy of a scenario's .cfg that renders the status bar (``render_hud = true``), for
    envpool, which reads the screen settings from the .cfg only: written once into the temp
    directory under a name from its content, atomically (concurrent starts write the same
    bytes), and its path returned."""
    import hashlib
    import re

    with open(cfg_path) as fh:
        text = fh.read()
    text, n = re.subn(r"(?im)^\s*render_hud\s*=.*$", "render_hud = true", text)
    if n == 0:
        text += "\nrender_hud = true\n"
    name = os.path.splitext(os.path.basename(cfg_path))[0]
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    out = os.path.join(tempfile.gettempdir(), f"fastasync-{name}-hud-{digest}.cfg")
    if not os.path.exists(out):
        fd, tmp = tempfile.mkstemp(prefix=f"fastasync-{name}-", suffix=".tmp", dir=os.path.dirname(out))
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, out)
    return out


START_TIMEOUT_S = 60.0


# The watchdog of a ViZDoom start: a separate process, because envpool's constructor waits
# for its engines holding the GIL, so that no Python thread of the training process can run
# (seen: a bench start stuck for 10 min with the main thread waiting for the GIL in
# Thread.start and the start thread in envpool's futex wait, 7 of 8 engines up). It reads
# its stdin until the start closes it; after the timeout it says why on stderr, kills the
# engines the stuck process started and then the process itself (nothing is half-written
# then: the envs are made before the run writes its first checkpoint).
_WATCHDOG = r"""
import os, select, signal, sys
pid, timeout_s, env_id = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if select.select([sys.stdin], [], [], timeout_s)[0]:
    sys.exit(0)  # the start finished (or the process is gone): stdin closed
sys.stderr.write(f"error: envpool's ViZDoom did not start {env_id} within {timeout_s:g} s (an engine start "
                 "hangs now and then; it holds the interpreter, so the run cannot recover): stopping it; "
                 "run the same command again (--resume where the run has a checkpoint)\n")
sys.stderr.flush()
for name in os.listdir("/proc"):
    try:
        with open(f"/proc/{name}/stat") as fh:
            ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        if ppid == pid and int(name) != os.getpid():  # the engines, not this watchdog
            os.kill(int(name), signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass
os.kill(pid, signal.SIGKILL)
"""


def make_watched(envpool, env_id: str, kwargs: dict, timeout_s: float = START_TIMEOUT_S):
    """``envpool.make`` for ViZDoom, watched: starting a Doom engine process has been seen to
    hang for good (2 of 4 bench starts on one day, ~1 in 20 starts on another). envpool
    waits in C++ holding the GIL, so the watchdog is another process (``_WATCHDOG``): past
    ``timeout_s`` it prints one line and kills this process and its engines (exit by
    SIGKILL), rather than leaving a run that never starts."""
    import subprocess
    import sys

    try:
        watch = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(timeout_s), env_id],
                                 stdin=subprocess.PIPE)
    except OSError:  # no watchdog: start unwatched
        return envpool.make(env_id, **kwargs)
    try:
        return envpool.make(env_id, **kwargs)
    finally:
        watch.stdin.close()
        watch.wait()


def envpool_batch(base_cls):
    """The envpool batch class for ViZDoom: envpool's stepping, the scenario's reward."""

    class _DoomEnvpoolBatch(base_cls):
        def __init__(self, env, info, num_envs, scenario: Scenario, shaping: bool, reward_clip: bool):
            super().__init__(env, info, num_envs)
            self.scenario, self.shaping, self.reward_clip = scenario, shaping, reward_clip
            self._first = np.ones(num_envs, bool)  # a reset step follows: it earns nothing

        def reset(self):
            self._first[:] = True
            out = super().reset()
            self._first[:] = False
            return out

        def _step(self, obs, rew, term, trunc, atari):
            step = super()._step(obs, rew, term, trunc, None)
            raw = scenario_reward(self.scenario, step.terminated)
            raw[self._first] = 0.0
            self._first = step.terminated | step.truncated
            train = step.reward if self.shaping else raw * self.scenario.train_scale
            step.raw_reward = raw
            step.reward = np.clip(train, -1.0, 1.0).astype(np.float32) if self.reward_clip else train.astype(np.float32)
            step.game_over = step.terminated | step.truncated
            return step

    return _DoomEnvpoolBatch


# ---------------------------------------------------------------- the vizdoom package


@functools.lru_cache(maxsize=None)
def _resize_mats() -> tuple:
    from .atari import area_matrix

    return area_matrix(240, SIZE), np.ascontiguousarray(area_matrix(320, SIZE).T)


class DoomGame:
    """One ViZDoom game (the ``vizdoom`` package) behind the Python batch's protocol, with
    envpool's preprocessing: the same .cfg, frame skip 4, 84x84 area resize of each RGB
    channel, 4 stacked frames filled with the first one at an episode start, the combined
    action set, the 2,100-tic limit as a truncation, the scenario's reward."""

    def __init__(self, env_id: str, seed: int, shaping_unsupported: bool, reward_clip: bool, hud: bool = False):
        import vizdoom as vzd

        if shaping_unsupported:
            raise ValueError("doom_reward 'envpool' needs the envpool backend")
        self.scenario = DOOM[env_id]
        g = vzd.DoomGame()
        g.load_config(os.path.join(vzd.scenarios_path, self.scenario.cfg + ".cfg"))
        g.set_window_visible(False)
        g.set_mode(vzd.Mode.PLAYER)
        # the engine writes its settings file here (by default _vizdoom.ini in the working directory)
        g.set_doom_config_path(os.path.join(tempfile.gettempdir(), "fastasync-vizdoom.ini"))
        g.set_screen_format(vzd.ScreenFormat.CRCGCB)
        g.set_screen_resolution(vzd.ScreenResolution.RES_320X240)
        g.set_render_hud(bool(hud))
        g.set_episode_timeout((MAX_STEPS + 1) * FRAME_SKIP)  # the step limit ends it first, as in envpool
        g.set_seed(int(seed))
        g.init()
        self.game = g
        self.actions = [list(row) for row in action_table([int(b) for b in g.get_available_buttons()])]
        self.reward_clip = reward_clip
        self.wy, self.wxt = _resize_mats()
        self._stack = np.zeros((STACK, 3, SIZE, SIZE), np.uint8)
        self.first = True
        self.done = True
        self.steps = 0
        # a video's hook (make_env's ``screen``): called with the engine's (240, 320, 3) RGB screen after
        # every tic; set, an agent step runs its 4 tics one at a time (``advance_action(1)``), the same
        # game as ``make_action(a, 4)`` (tests/test_video.py steps both side by side)
        self.screen = None

    def _frame(self) -> np.ndarray:
        buf = self.game.get_state().screen_buffer  # (3, 240, 320) uint8, channels first
        f = (self.wy @ buf.astype(np.float32)) @ self.wxt  # (3, 84, 84): rows, then columns
        return np.clip(np.rint(f), 0, 255).astype(np.uint8)

    def reset(self) -> tuple:
        if not self.first:
            self.game.new_episode()
        self.first = False
        self._stack[:] = self._frame()[None]
        self.done = False
        self.steps = 0
        return 0.0, False, False, False, 0.0

    def step(self, action: int) -> tuple:
        if self.screen is None:
            self.game.make_action(self.actions[int(action)], FRAME_SKIP)
        else:
            self._tics_on_screen(self.actions[int(action)])
        self.steps += 1
        finished = self.game.is_episode_finished()
        trunc = self.steps >= MAX_STEPS
        term = finished and not trunc
        if not finished:
            self._stack = np.roll(self._stack, -1, axis=0)
            self._stack[-1] = self._frame()
        raw = float(scenario_reward(self.scenario, np.array([term]))[0])
        self.done = term or trunc
        r = raw * self.scenario.train_scale
        r = float(np.clip(r, -1.0, 1.0)) if self.reward_clip else r
        return r, term, trunc, self.done, raw

    def _tics_on_screen(self, buttons) -> None:
        """The agent step's tics one at a time, each tic's screen to ``screen`` (none after the tic
        that ends the episode: the engine has no state then)."""
        g = self.game
        g.set_action(buttons)
        for _ in range(FRAME_SKIP):
            g.advance_action(1)
            if g.is_episode_finished():
                break
            self.screen(np.ascontiguousarray(np.moveaxis(g.get_state().screen_buffer, 0, -1)))

    def obs(self) -> np.ndarray:
        return self._stack.reshape(STACK * 3, SIZE, SIZE)

    def close(self) -> None:
        self.game.close()
