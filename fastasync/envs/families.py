"""The env families: one record each, and which ids a backend offers.

A :class:`Family` says what the rest of fastasync needs to know of a family without
stepping it: the task names it owns (which decide the defaults an id gets, config.py), what
a frame is (the unit of ``--frames``), how many frames an observation stacks, the game's own
frame rate (GIF and video speed) and, for families whose games succeed or fail (ViZDoom),
the name of that outcome and the test of one game. :func:`family_of` answers from the id
alone, with no import of a backend; :func:`catalog` lists the ids a backend can make.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from . import atari, car, classic, doom, mujoco
from .base import EnvError, import_backend


def _no_outcome(env_id: str, score: float, length: int) -> bool | None:
    return None


def _no_outcome_name(env_id: str) -> str | None:
    return None


@dataclass(frozen=True)
class Family:
    """What fastasync knows of one env family.

    ``name``: "atari", "classic", "mujoco", "doom", "car" or "other" (the user's own envs and
    ids fastasync does not list). ``tasks``: the task names (an id up to its ``-vN``) it owns.
    ``unit``: what ``--frames`` counts (emulator frames, ViZDoom tics, env steps). ``stack``:
    frames per observation, channels first (1: no stack). ``fps``: the game's own frames per
    second (a GIF or video of it plays at fps / frame skip agent steps per second).
    ``outcome_name(env_id)``: what a game that succeeded did ("reached the goal"), None where
    games only score; ``outcome(env_id, score, length)``: whether one game succeeded.
    """

    name: str
    tasks: tuple
    unit: str
    stack: int
    fps: int
    outcome_name: Callable[[str], str | None] = _no_outcome_name
    outcome: Callable[[str, float, int], bool | None] = _no_outcome


def _tasks(ids) -> tuple:
    return tuple(sorted({i.split("-v", 1)[0] for i in ids}))


FAMILIES = {
    "atari": Family("atari", (), "frames", atari.STACK, 60),
    "classic": Family("classic", _tasks(classic.CLASSIC), "env steps", 1, 50),
    "mujoco": Family("mujoco", _tasks(mujoco.MUJOCO), "env steps", 1, 50),
    "doom": Family("doom", _tasks(doom.DOOM), "tics", doom.STACK, 35, doom.outcome_name, doom.outcome),
    "car": Family("car", _tasks(car.CAR), "env steps", car.STACK, 50),
    "other": Family("other", (), "env steps", 1, 30),
}
# classic-control tasks with Box actions (a Gaussian policy): their defaults are continuous control's
CLASSIC_BOX_TASKS = ("MountainCarContinuous", "Pendulum")


def family_of(env_id: str) -> str:
    """The family whose defaults an env gets: "atari" (ALE ``*-v5`` ids), "classic", "mujoco",
    "doom", "car", or "other" (the user's envs: the dataclass defaults, Atari A3C's). From
    the id alone: a ``module:Id`` is always the user's, whatever its name."""
    text = str(env_id)
    name = text.rsplit(":", 1)[-1].split("-v", 1)[0]
    if name in FAMILIES["classic"].tasks:
        return "classic"
    if ":" in text:
        return "other"
    for fam in ("mujoco", "doom", "car"):
        if name in FAMILIES[fam].tasks:
            return fam
    return "atari" if text.endswith("-v5") else "other"


def family(env_id: str) -> Family:
    """The :class:`Family` record of ``env_id``."""
    return FAMILIES[family_of(env_id)]


def has_box_actions(env_id: str) -> bool:
    """A classic-control task with continuous actions (Pendulum, MountainCarContinuous)."""
    return family_of(env_id) == "classic" and str(env_id).split("-v", 1)[0] in CLASSIC_BOX_TASKS


@functools.lru_cache(maxsize=None)
def catalog(backend: str) -> dict:
    """env_id -> (family, rom or None) of every id ``backend`` can make here."""
    out: dict = {}
    if backend == "envpool":
        envpool = import_backend(backend)
        from envpool.registration import registry

        have = set(envpool.list_all_envs())
        for env_id in sorted(have):
            entry = registry.specs.get(env_id)
            if entry is None:
                continue
            if entry[0] == "envpool.atari" and env_id.endswith("-v5"):
                out[env_id] = ("atari", entry[2].get("task"))
        for env_id in classic.CLASSIC:
            if env_id in have:
                out[env_id] = ("classic", None)
        for env_id in mujoco.MUJOCO:
            if env_id in have:
                out[env_id] = ("mujoco", None)
        for env_id in doom.DOOM:
            if env_id in have:
                out[env_id] = ("doom", None)
        if car.ENV in have:
            for env_id in car.CAR:
                out[env_id] = ("car", None)
    else:
        gymnasium, _ = import_backend(backend)
        for env_id, rom in atari.ale_roms()[0].items():
            out[env_id] = ("atari", rom)
        for env_id in classic.CLASSIC:
            if env_id in gymnasium.registry:
                out[env_id] = ("classic", None)
        if mujoco.gymnasium_has_mujoco():
            for env_id in mujoco.MUJOCO:
                if env_id in gymnasium.registry:
                    out[env_id] = ("mujoco", None)
        if doom.has_vizdoom():
            for env_id in doom.DOOM:
                out[env_id] = ("doom", None)
        if car.has_box2d() and car.ENV in gymnasium.registry:
            for env_id in car.CAR:
                out[env_id] = ("car", None)
    return out


def lookup(env_id: str, backend: str) -> tuple:
    """(family, rom or None) of ``env_id`` on ``backend``, or EnvError saying what is missing."""
    import difflib

    cat = catalog(backend)
    if env_id not in cat:
        rom = atari.multiplayer_only(env_id)
        if rom is not None:
            raise EnvError(
                f"{env_id} is a multiplayer-only Atari game (ALE has no single-player mode for its ROM "
                f"{rom!r}); fastasync trains single-player games only, see `fastasync envs`"
            )
        if env_id in doom.DOOM and backend == "gymnasium":
            raise EnvError(f"{env_id} needs the vizdoom package for the gymnasium backend: {doom.INSTALL}")
        if env_id in car.CAR and backend == "gymnasium":
            raise EnvError(f"{env_id} needs the box2d and pygame packages for the gymnasium backend: {car.INSTALL}")
        if env_id in mujoco.MUJOCO and backend == "gymnasium":
            raise EnvError(f"{env_id} needs the mujoco package for the gymnasium backend: {mujoco.INSTALL}")
        close = difflib.get_close_matches(env_id, list(cat), n=5, cutoff=0.6)
        hint = f"; did you mean: {', '.join(close)}?" if close else "; see `fastasync envs` for the list"
        raise EnvError(f"unknown env {env_id!r} for backend {backend}{hint}")
    return cat[env_id]
