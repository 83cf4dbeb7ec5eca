"""Videos of games: ``fastasync eval --video`` and ``fastasync train --video-every``.

Frames in, an .mp4 out: H.264 (libx264, ``yuv420p``, CRF 15) by the ffmpeg binary that
ships inside the ``imageio-ffmpeg`` wheel (``pip install -e ".[video]"``), streamed to it
frame by frame (a game never sits in memory) into a temp file next to the target, which is
renamed over it once the video is whole: a video that failed or was stopped leaves nothing.

What a video shows is the game's own screen, in colour, at its own resolution and speed,
while the agent sees what it trained on. The screens come from the gymnasium backend (the
one that can show them; envpool hands out only the preprocessed observations), through
the ``screen`` hook of ``envs.make_env``:

* Atari: ALE's 210x160 RGB screen after every emulator frame of the agent's steps, at 60
  frames/s (a game of L agent steps is 4 L frames; the reset's no-ops are not shown);
* ViZDoom: the vizdoom engine's 320x240 RGB screen after every tic (an agent step's 4 tics
  run one at a time, the same game), status bar included where the agent has it, at 35/s;
* CarRacing: gymnasium's ``rgb_array`` render (600x400, the zoomed view with its dashboard)
  after every env step of the action repeat, at 50/s;
* classic control: gymnasium's ``rgb_array`` render after every step, at the env's
  ``render_fps``;
* MuJoCo: MuJoCo's own offscreen renderer (gymnasium's ``rgb_array``, 480x480) through
  EGL or OSMesa, whichever starts here (``MUJOCO_GL``; probed in a child process, since a
  failed OpenGL start cannot be undone in this one), at the env's ``render_fps`` (1 / its
  physics step x frame skip: HalfCheetah-v4 20/s). Where neither starts, ``check`` says so
  in one line (exit code 2) before anything is played.

A recorded game of L agent steps is exactly L x frame skip frames (the family's: 4 on Atari
and ViZDoom, CarRacing's action repeat, 1 elsewhere): a step that ends the game inside its
frame skip (the ball lost at emulator frame 2 of 4) holds its last screen for the rest of the
step. The score so far (the true score: unclipped, every life) is drawn in the top left
corner, updated after each agent step.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import subprocess
import sys
import threading

import numpy as np

from .errors import ConfigError

INSTALL = 'pip install imageio imageio-ffmpeg (in a checkout of fastasync: pip install -e ".[video]")'
CRF = 15  # libx264's constant rate factor: 0 lossless .. 51 worst; 15 keeps Atari's pixel edges
PRESET = "veryfast"  # libx264 speed: a few times faster than its default (medium) for a slightly larger file
GL_BACKENDS = ("egl", "osmesa")  # MuJoCo's offscreen OpenGL, in the order tried
VIDEO_FAMILIES = ("atari", "doom", "car", "classic", "mujoco")


class VideoError(ConfigError):
    """A video cannot be made here (no encoder, no screen for the env, no OpenGL for MuJoCo)."""


def check_installed(option: str = "--video") -> None:
    """VideoError (exit 2) unless imageio-ffmpeg (and its ffmpeg binary) can be used."""
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        raise VideoError(f"{option} needs the imageio-ffmpeg package: {INSTALL}")


def check(env_id: str, option: str = "--video") -> None:
    """Everything a video of ``env_id`` needs, checked before a game is played: the encoder,
    a family whose screen fastasync can show, and for MuJoCo an offscreen OpenGL (which it
    then selects for this process: ``MUJOCO_GL``)."""
    from .envs.families import family_of

    check_installed(option)
    fam = family_of(env_id)
    if fam not in VIDEO_FAMILIES:
        raise VideoError(f"{option} shows the screens of Atari, ViZDoom, CarRacing, classic control and MuJoCo; "
                         f"{env_id} is your own env")
    if fam == "mujoco":
        select_mujoco_gl(option)
    if fam in ("classic", "car"):  # pygame draws them offscreen: no display, no sound wanted
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def _gl_works(backend: str) -> tuple:
    """(works, why not) of MuJoCo's renderer on OpenGL ``backend``, tried in a child process."""
    code = ("import mujoco\n"
            "m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=\"1\"/></worldbody></mujoco>')\n"
            "r = mujoco.Renderer(m, 16, 16)\nd = mujoco.MjData(m)\nr.update_scene(d)\nassert r.render().shape == (16, 16, 3)\n")
    env = dict(os.environ, MUJOCO_GL=backend)
    env.pop("PYOPENGL_PLATFORM", None)
    try:
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    return p.returncode == 0, (lines[-1] if lines else f"exit code {p.returncode}")


_GL = {}  # the backend this process selected (probed once)


def select_mujoco_gl(option: str = "--video") -> str:
    """The OpenGL MuJoCo renders through offscreen here: ``MUJOCO_GL`` if it is set (and works),
    else the first of EGL and OSMesa that starts, set into ``os.environ`` for this process.
    VideoError, one line, where none does."""
    if "backend" in _GL:
        return _GL["backend"]
    given = os.environ.get("MUJOCO_GL")
    tried = []
    for backend in ([given] if given else GL_BACKENDS):
        ok, why = _gl_works(backend)
        if ok:
            os.environ["MUJOCO_GL"] = _GL["backend"] = backend
            return backend
        tried.append(f"{backend}: {why}")
    raise VideoError(f"{option} on MuJoCo needs offscreen OpenGL, and neither "
                     f"{' nor '.join(b.upper() for b in ([given] if given else GL_BACKENDS))} starts here "
                     f"({'; '.join(tried)})")


# --------------------------------------------------------------------------- the encoder


class VideoWriter:
    """(H, W, 3) uint8 frames in, an H.264 .mp4 at ``fps`` frames/s out, written atomically:
    streamed to ffmpeg into a temp file next to ``path``, renamed over it by ``close``
    (``abort`` removes it). The size is the first frame's (an odd side is padded by one
    black row or column: yuv420p needs even sides)."""

    def __init__(self, path: str, fps: float):
        self.path = os.path.abspath(path)
        self.fps = float(fps)
        d, base = os.path.split(self.path)
        self.tmp = os.path.join(d, f".{base}.tmp-{os.getpid()}-{threading.get_ident()}.mp4")
        self.frames = 0
        self._gen = None
        self._shape = None

    def _open(self, shape) -> None:
        import imageio_ffmpeg

        h, w = shape[0] + shape[0] % 2, shape[1] + shape[1] % 2
        self._shape = (h, w, 3)
        self._gen = imageio_ffmpeg.write_frames(
            self.tmp, (w, h), fps=self.fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            quality=None, macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-crf", str(CRF), "-preset", PRESET, "-threads", "1", "-movflags", "+faststart", "-f", "mp4"])
        self._gen.send(None)

    def write(self, frame: np.ndarray) -> None:
        f = np.asarray(frame, np.uint8)
        if f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"a video frame is (H, W, 3) uint8 RGB, got shape {f.shape}")
        if self._gen is None:
            self._open(f.shape)
        if f.shape != self._shape:
            pad = np.zeros(self._shape, np.uint8)
            pad[: f.shape[0], : f.shape[1]] = f[: self._shape[0], : self._shape[1]]
            f = pad
        try:
            self._gen.send(np.ascontiguousarray(f))
        except (OSError, RuntimeError) as exc:
            self.abort()
            raise OSError(f"could not write the video {self.path}: {exc}") from None
        self.frames += 1

    def close(self) -> int:
        """Finish the file and put it in place; returns the frames written."""
        if self._gen is None:
            raise ValueError(f"no frames to write into {self.path}")
        gen, self._gen = self._gen, None
        try:
            gen.close()
            with open(self.tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp, self.path)
        except (OSError, RuntimeError) as exc:
            self._remove_tmp()
            raise OSError(f"could not write the video {self.path}: {exc}") from None
        return self.frames

    def abort(self) -> None:
        """Stop and leave nothing behind."""
        gen, self._gen = self._gen, None
        if gen is not None:
            try:
                gen.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


# --------------------------------------------------------------------------- the score


class ScoreOverlay:
    """Text in the top left corner of a frame: white on the frame darkened to half, the text
    drawn once per string with Pillow's own font (about 1/24 of the frame's height, at least
    10 px) and kept as an alpha mask, so that a frame costs a slice blend."""

    def __init__(self):
        self._masks = {}

    def _mask(self, text: str, height: int) -> np.ndarray:
        key = (text, height)
        m = self._masks.get(key)
        if m is None:
            from PIL import Image, ImageDraw, ImageFont

            size = max(10, round(height / 24))
            try:
                font = ImageFont.load_default(size=size)
            except TypeError:  # Pillow < 10.1: the fixed bitmap font
                font = ImageFont.load_default()
            left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
            pad = max(2, size // 5)
            img = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
            ImageDraw.Draw(img).text((pad - left, pad - top), text, fill=255, font=font)
            m = np.asarray(img, np.float32)[..., None] / 255.0
            if len(self._masks) > 256:
                self._masks.clear()
            self._masks[key] = m
        return m

    def draw(self, frame: np.ndarray, text: str) -> np.ndarray:
        """A copy of ``frame`` (H, W, 3) uint8 with ``text`` in its top left corner."""
        out = np.array(frame, np.uint8)
        m = self._mask(text, out.shape[0])
        h, w = min(m.shape[0], out.shape[0]), min(m.shape[1], out.shape[1])
        region = out[:h, :w].astype(np.float32) * 0.5
        a = m[:h, :w]
        out[:h, :w] = (region * (1.0 - a) + 255.0 * a + 0.5).astype(np.uint8)
        return out


def score_text(score: float) -> str:
    """A score as the overlay shows it: 21, -0.0123, 812.4, 1234.57."""
    return f"{float(score):.6g}"


# --------------------------------------------------------------------------- recording games


class GameRecorder:
    """The games one env plays, into one video (``path``).

    ``screen`` is the hook given to ``envs.make_env(screen=...)``: it holds the screens of the
    current agent step. After each agent step of that env (not its auto-reset steps) the
    player calls ``step(reward, game_over)`` with the step's true reward: the step's screens
    (padded with the last to ``frame_skip``) are written with the score so far drawn on them.
    ``close`` finishes the file and returns what was recorded: ``path``, ``frames``,
    ``fps``, and per finished game ``scores`` and ``game_frames``.
    """

    def __init__(self, path: str, fps: float, frame_skip: int, overlay: bool = True):
        self.writer = VideoWriter(path, fps)
        self.frame_skip = int(frame_skip)
        self.overlay = ScoreOverlay() if overlay else None
        self._pending = []
        self._last = None
        self.score = 0.0
        self.game_frames = 0
        self.scores, self.frames_per_game = [], []

    def screen(self, rgb: np.ndarray) -> None:
        self._pending.append(rgb)

    def step(self, reward: float, game_over: bool) -> None:
        self.score += float(reward)
        frames, self._pending = self._pending, []
        if len(frames) > self.frame_skip:
            raise RuntimeError(f"{len(frames)} screens in one agent step of frame skip {self.frame_skip}")
        if frames:
            self._last = frames[-1]
        if self._last is not None:
            text = f"score {score_text(self.score)}"
            if len(self.scores):
                text = f"game {len(self.scores) + 1}  " + text
            frames = frames + [self._last] * (self.frame_skip - len(frames))
            for f in frames:
                self.writer.write(f if self.overlay is None else self.overlay.draw(f, text))
            self.game_frames += len(frames)
        if game_over:
            self.scores.append(self.score)
            self.frames_per_game.append(self.game_frames)
            self.score, self.game_frames, self._last = 0.0, 0, None

    def close(self) -> dict:
        frames = self.writer.close()
        return dict(path=self.writer.path, frames=frames, fps=self.writer.fps, scores=list(self.scores),
                    game_frames=list(self.frames_per_game))

    def abort(self) -> None:
        self.writer.abort()


def recorder_for(agent, path: str, option: str = "--video") -> GameRecorder:
    """The :class:`GameRecorder` of a video of ``agent``'s games (an ``evaluate.Agent``), after
    ``check``: the game's own frame rate (``envs.screen_fps``) and frame skip. Nothing is
    written before its first frame."""
    from .envs import screen_fps

    env_id = agent.cfg.env.env
    check(env_id, option)
    return GameRecorder(path, screen_fps(env_id), agent.info.frame_skip)


def frame_count(path: str) -> int:
    """The frames in a video file (ffmpeg decodes it: exact)."""
    import imageio_ffmpeg

    return int(imageio_ffmpeg.count_frames_and_secs(path)[0])


def read_frame(path: str, index: int) -> np.ndarray:
    """Frame ``index`` of a video, (H, W, 3) uint8 (decoding from the start)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(path)
    meta = gen.__next__()
    w, h = meta["size"]
    try:
        for i, raw in enumerate(gen):
            if i == index:
                return np.frombuffer(raw, np.uint8).reshape(h, w, 3).copy()
    finally:
        gen.close()
    raise IndexError(f"{path} has no frame {index}")


def tensorboard_gif(path: str, fps: int = 15, width: int = 240, seconds: float = 120.0) -> tuple:
    """(gif bytes, height, width) of the first ``seconds`` of a video at ``fps``, at most
    ``width`` wide, for TensorBoard's image dashboard (which animates a GIF)."""
    import imageio_ffmpeg

    vf = (f"fps={fps},scale='min({width},iw)':-2:flags=area,split[a][b];[a]palettegen=max_colors=128[p];"
          "[b][p]paletteuse=dither=none")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-t", str(seconds), "-i", path, "-vf", vf, "-f", "gif", "-"]
    p = subprocess.run(cmd, capture_output=True, timeout=300)
    if p.returncode != 0 or not p.stdout:
        raise OSError(f"ffmpeg could not make a GIF of {path}: {p.stderr.decode(errors='replace').strip()[-200:]}")
    data = p.stdout
    w = int.from_bytes(data[6:8], "little")  # the GIF's logical screen size
    h = int.from_bytes(data[8:10], "little")
    return data, h, w


# --------------------------------------------------------------------------- --video-every


class PeriodicRecorder:
    """``train --video-every N``: one game of the policy for every multiple of N frames the run
    passes, into ``RUN_DIR/videos/frames-<k N>.mp4`` (and TensorBoard: the game as an animated
    GIF under ``video/game``, its score under ``video/score``).

    The trainer's main thread calls ``poll`` as it looks at the frame counter (5 times a
    second): at a multiple passed it copies the parameters (and the observation statistics)
    and queues the game; a thread of its own plays it with ``evaluate`` (the one acting path,
    as ``eval``: the method's evaluation policy, one env of the gymnasium backend) and writes
    it. Every multiple gets its video, also where the counter passed several between two
    looks (they then show the same snapshot). Nothing of this exists while the option is off.
    """

    def __init__(self, cfg, net, info, run_dir: str, start_frames: int, tb=None, out=print):
        self.cfg, self.net, self.info = cfg, net, info
        self.every = int(cfg.run.video_every)
        self.dir = os.path.join(run_dir, "videos")
        self.next_k = int(start_frames) // self.every + 1
        self.tb, self.out = tb, out
        self.jobs = queue.Queue()
        self.stop = threading.Event()
        self.thread = None
        self.written = []  # (frames, path, score, length) of every video written

    def due(self, frames: int) -> bool:
        """Whether ``frames`` passed a multiple not yet recorded (a Ray run's driver then
        fetches the parameters for ``poll``)."""
        return int(frames) // self.every >= self.next_k

    def poll(self, frames: int, theta, obsnorm=None) -> None:
        if not self.due(frames):
            return
        k = int(frames) // self.every
        snap = np.array(theta, np.float32)  # racy under Hogwild, as a checkpoint's copy
        extra = obsnorm.state() if obsnorm is not None else {}
        for j in range(self.next_k, k + 1):
            self.jobs.put((j * self.every, snap, extra))
        self.next_k = k + 1
        if self.thread is None:
            os.makedirs(self.dir, exist_ok=True)
            self.thread = threading.Thread(target=self._main, name="video", daemon=True)
            self.thread.start()

    def close(self, wait: bool = True) -> None:
        """``wait``: record the games queued, then return; else stop now (a video being made is
        dropped, its temp file removed)."""
        if self.thread is None:
            return
        if not wait:
            self.stop.set()
        self.jobs.put(None)
        self.thread.join()
        self.thread = None

    def _main(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None or self.stop.is_set():
                return
            frames, theta, extra = job
            try:
                self._record(frames, theta, extra)
            except Exception as exc:  # noqa: BLE001 - a video that failed must not stop the run
                self.out(f"warning: the video at {frames:,} frames was not written: {exc}")

    def _record(self, frames, theta, extra) -> None:
        from .evaluate import Agent, evaluate

        path = os.path.join(self.dir, f"frames-{frames}.mp4")
        agent = Agent(self.cfg, self.net, theta, self.info, "gymnasium", frames, extra)
        seed = (self.cfg.run.seed * 7_919 + frames // self.every) % (2**31 - 2)
        res = evaluate(agent, episodes=1, seed=seed, recorder=recorder_for(agent, path, "--video-every"), stop=self.stop)
        if res.get("video") is None:  # stopped
            return
        score, length = float(res["scores"][0]), int(res["lengths"][0])
        self.written.append((frames, path, score, length))
        self.out(f"video: {os.path.relpath(path)} (score {score_text(score)}, {length:,} agent steps)")
        if self.tb is not None:
            self.tb.scalars(frames, {"video/score": score})
            try:
                gif, h, w = tensorboard_gif(path)
                self.tb.image("video/game", gif, h, w, frames)
            except OSError as exc:
                self.out(f"warning: the video at {frames:,} frames is not in TensorBoard: {exc}")
