"""Atari: ale-py's ROMs and a pure-Python port of envpool's Atari env (the gymnasium
backend's Atari games); the preprocessing is in the package docstring."""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

FRAME_SKIP = 4
STACK = 4
SIZE = 84


@functools.lru_cache(maxsize=None)
def ale_roms() -> tuple:
    """ale-py's Atari ROMs split by ALE itself: ``({env_id: rom}, {env_id: rom})``, the
    single-player games and the multiplayer-only ones.

    ``ALEInterface.loadROM`` of a ROM that has no single-player mode in ALE (ale-py 0.12:
    Combat, Joust, MazeCraze, Warlords) prints "Attempt to wrap ROM ... failed" and calls
    ``exit(1)``: no exception, the process is gone. ale-py's own gymnasium registration
    (``register_v5_envs``) skips those four for that reason, and the static
    ``ALEInterface.isSupportedROM(path)`` answers the question loadROM would (ALE's
    single-player game table, looked up by the file's MD5) without loading anything: the
    game's name, or None. ``get_rom_path`` has already checked the file against ale-py's
    MD5 list, so None here means multiplayer only. A ROM that cannot be read (missing or
    altered under ``ALE_ROMS_DIR``) is in neither dict.
    """
    import ale_py
    from ale_py.registration import rom_id_to_name

    single, multi = {}, {}
    for rom in ale_py.roms.get_all_rom_ids():
        try:
            path = ale_py.roms.get_rom_path(rom)
            if path is None:
                continue
            playable = ale_py.ALEInterface.isSupportedROM(str(path)) is not None
        except (OSError, RuntimeError):
            continue
        (single if playable else multi)[f"{rom_id_to_name(rom)}-v5"] = rom
    return single, multi


def multiplayer_only(env_id: str) -> str | None:
    """The ROM id if ``env_id`` is one of ale-py's multiplayer-only games, else None (also
    without ale-py: envpool has no such games at all)."""
    if importlib.util.find_spec("ale_py") is None:
        return None
    try:
        return ale_roms()[1].get(env_id)
    except Exception:  # noqa: BLE001 - only a better error message is at stake
        return None


# --------------------------------------------------------------------------- gymnasium / ale_py


def new_ale(rom: str, seed: int):
    import ale_py

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.setInt("random_seed", int(seed))
    ale.setFloat("repeat_action_probability", 0.0)
    ale.setInt("max_num_frames_per_episode", 0)
    ale.loadROM(str(ale_py.roms.get_rom_path(rom)))
    return ale


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of an area (box-filter) downscale, like cv2.INTER_AREA."""
    scale = n_in / n_out
    w = np.zeros((n_out, n_in), np.float64)
    for o in range(n_out):
        lo, hi = o * scale, (o + 1) * scale
        for i in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
            w[o, i] = max(0.0, min(hi, i + 1) - max(lo, i))
    w /= w.sum(axis=1, keepdims=True)
    return w.astype(np.float32)


@functools.lru_cache(maxsize=None)
def _resize_mats() -> tuple:
    return area_matrix(210, SIZE), np.ascontiguousarray(area_matrix(160, SIZE).T)


class AleGame:
    """One Atari game, a line-by-line port of envpool's AtariEnv (atari_env.h)."""

    def __init__(self, rom, seed, noop_max, episodic_life, reward_clip, max_steps):
        self.ale = new_ale(rom, seed)
        self.actions = list(self.ale.getMinimalActionSet())
        self.fire_reset = any(int(a.value) == 1 for a in self.actions)
        self.rng = np.random.default_rng(seed)
        self.noop_max = noop_max
        self.episodic_life = episodic_life
        self.reward_clip = reward_clip
        self.max_steps = max_steps
        self.elapsed = max_steps + 1
        self.lives = 0
        self.done = True
        self.maxpool = [np.zeros((210, 160), np.uint8), np.zeros((210, 160), np.uint8)]
        self.stack = np.zeros((STACK, SIZE, SIZE), np.uint8)  # oldest first
        self.wy, self.wxt = _resize_mats()
        # a video's hook (make_env's ``screen``): called with ALE's (210, 160, 3) RGB screen after every
        # emulator frame of an agent step (not the reset's no-ops); None, the default, costs one test a frame
        self.screen = None

    def _push(self, push_all: bool, maxpool: bool) -> None:
        src = self.maxpool[0]
        if maxpool:
            np.maximum(src, self.maxpool[1], out=src)
        img = self.wy @ src.astype(np.float32) @ self.wxt
        frame = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        if push_all:
            self.stack[:] = frame
        else:
            self.stack[:-1] = self.stack[1:]
            self.stack[-1] = frame

    def reset(self) -> tuple:
        ale = self.ale
        noop = int(self.rng.integers(0, self.noop_max)) + 1 - int(self.fire_reset)
        push_all = False
        if not self.episodic_life or ale.game_over() or self.elapsed >= self.max_steps:
            ale.reset_game()
            self.elapsed = 0
            push_all = True
        for _ in range(noop):
            ale.act(0)
            if ale.game_over():
                ale.reset_game()
                push_all = True
        if self.fire_reset:
            ale.act(1)
        ale.getScreenGrayscale(self.maxpool[0])
        self._push(push_all, False)
        self.done = False
        self.lives = ale.lives()
        return 0.0, False, False, False, 0.0

    def step(self, action: int) -> tuple:
        """-> (reward, terminated, truncated, game_over, raw_reward)."""
        ale = self.ale
        reward = 0.0
        done = False
        skip = FRAME_SKIP
        a = self.actions[action]
        while skip > 0 and not done:
            reward += ale.act(a)
            if self.screen is not None:
                self.screen(ale.getScreenRGB())
            done = ale.game_over()
            if skip <= 2:
                ale.getScreenGrayscale(self.maxpool[2 - skip])
            skip -= 1
        self._push(False, skip == 0)
        self.elapsed += 1
        real_end = bool(ale.game_over())
        done = done or self.elapsed >= self.max_steps
        lives = ale.lives()
        if self.episodic_life and 0 < lives < self.lives:
            done = True
        self.lives = lives
        self.done = done
        trunc = done and self.elapsed >= self.max_steps
        term = done and not trunc
        raw = float(reward)
        if self.reward_clip:
            reward = float(np.sign(reward))
        return reward, term, trunc, (real_end and term) or trunc, raw

    def obs(self) -> np.ndarray:
        return self.stack

    def close(self) -> None:
        self.ale = None

