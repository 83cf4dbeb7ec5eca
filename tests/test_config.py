"""Config validation: non-finite numbers, overflowing frame counts and wrong TOML types are
refused with one clear ConfigError (CLI: one ``Error:`` line, exit 2), never a traceback or a
silently different run."""

import dataclasses
import json
import math
import os
import tempfile

import pytest
from click.testing import CliRunner

from fastasync import config as C
from fastasync.cli import main

FLOAT_FIELDS = [
    (sec, f.name) for sec, cls in C.SECTIONS.items() for f in dataclasses.fields(cls) if isinstance(f.default, float)
]
INT_FIELDS = [
    (sec, f.name)
    for sec, cls in C.SECTIONS.items()
    for f in dataclasses.fields(cls)
    if type(f.default) is int and not f.name.endswith("frames")
]
FRAME_FIELDS = [name for name in C.flat_fields() if name == "frames" or name.endswith("_frames")]
BOOL_FIELDS = [
    (sec, f.name) for sec, cls in C.SECTIONS.items() for f in dataclasses.fields(cls) if type(f.default) is bool
]


def _refused(overrides, needle):
    with pytest.raises(C.ConfigError) as info:
        C.build({"env": "CartPole-v1", **overrides})
    msg = str(info.value)
    assert needle in msg, msg
    assert "\n" not in msg
    return msg


def _toml(tmp_path, text):
    """Options of a TOML file; the env is CartPole unless the text sets one."""
    p = tmp_path / "c.toml"
    p.write_text(text if "env =" in text else 'env = "CartPole-v1"\n' + text)
    return C.load_toml(str(p))


# --- 1. frame counts that overflow a float ------------------------------------------------


@pytest.mark.parametrize("text", ["1e400", "1e999", "1e308k", "9" * 400])
def test_parse_count_overflow_is_a_config_error(text):
    with pytest.raises(C.ConfigError, match="too large"):
        C.parse_count(text)


@pytest.mark.parametrize("name", FRAME_FIELDS)
def test_overflowing_frames_refused_for_every_frames_option(name):
    _refused({name: "1e400"}, name.replace("_", "-"))


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e400])
def test_non_finite_value_for_int_option_refused(value):
    # TOML reads `t_max = inf` (or 1e400) as a float; int(inf) raised OverflowError
    _refused({"t_max": value}, "t-max")
    _refused({"hidden": [64, value]}, "hidden")


# --- 2. every float option must be finite -------------------------------------------------


def test_float_fields_are_found():
    names = {n for _, n in FLOAT_FIELDS}
    assert {"lr", "value_coef", "progress_every_s", "checkpoint_every_s", "gamma", "rms_alpha"} <= names


@pytest.mark.parametrize("sec,name", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, "inf", "nan"])
def test_non_finite_float_refused_through_build(sec, name, value):
    msg = _refused({name: value}, name.replace("_", "-"))
    assert "finite" in msg


@pytest.mark.parametrize("sec,name", FLOAT_FIELDS)
def test_validate_refuses_non_finite_in_a_hand_made_config(sec, name):
    cfg = C.TrainConfig()
    for value in (math.inf, math.nan):
        part = dataclasses.replace(getattr(cfg, sec), **{name: value})
        with pytest.raises(C.ConfigError, match="finite"):
            C.validate(dataclasses.replace(cfg, **{sec: part}))


def test_finite_floats_still_accepted():
    cfg = C.build({"env": "CartPole-v1", "lr": 1, "grad_clip": 0, "progress_every_s": "0.5", "value_coef": 1e3})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.grad_clip == 0.0 and cfg.run.progress_every_s == 0.5 and cfg.algo.value_coef == 1000.0


# --- 3. threads: TOML and the CLI agree ---------------------------------------------------


def test_threads_zero_refused_alike_with_a_hint_and_left_out_means_auto(tmp_path):
    toml_msg = _refused(_toml(tmp_path, "threads = 0\n"), "--threads must be >= 1")
    assert "leave it out" in toml_msg
    r = _cli_bad(["train", "--env", "CartPole-v1", "--threads", "0"], "--threads must be >= 1")
    assert toml_msg in r.output  # the very same message either way

    from fastasync.placement import default_threads

    auto = C.build(_toml(tmp_path, "frames = \"8k\"\n"))
    assert auto.run.threads == 0  # the default, resolved like the CLI's
    assert C.resolve(auto).run.threads == default_threads()
    assert C.build(_toml(tmp_path, "threads = 2\n")).run.threads == 2


# --- 4. types from TOML must match --------------------------------------------------------


@pytest.mark.parametrize("sec,name", BOOL_FIELDS)
@pytest.mark.parametrize("value", [3, 0, 1, 1.0, "maybe", [True]])
def test_bool_option_needs_a_real_boolean(sec, name, value):
    msg = _refused({name: value}, name.replace("_", "-"))
    assert "true or false" in msg


def test_bool_option_accepts_booleans_and_words(tmp_path):
    assert C.build(_toml(tmp_path, "episodic_life = false\n")).env.episodic_life is False
    assert C.build(_toml(tmp_path, '[env]\nenv = "CartPole-v1"\nreward_clip = true\n')).env.reward_clip is True
    assert C.build({"pin_threads": "no"}).run.pin_threads is False


@pytest.mark.parametrize("sec,name", INT_FIELDS)
@pytest.mark.parametrize("value", [True, False, 2.5, "many"])
def test_int_option_refuses_booleans_and_fractions(sec, name, value):
    _refused({name: value}, name.replace("_", "-"))


@pytest.mark.parametrize("name", FRAME_FIELDS)
def test_frames_option_refuses_booleans(name):
    _refused({name: True}, name.replace("_", "-"))


def test_other_types_refused(tmp_path):
    _refused(_toml(tmp_path, "t_max = true\n"), "t-max")
    _refused(_toml(tmp_path, '[env]\nenv = "CartPole-v1"\nepisodic_life = 3\n'), "episodic-life")
    _refused({"lr": True}, "lr")
    _refused({"hidden": [64, True]}, "hidden")
    _refused({"hidden": [64.5]}, "hidden")
    _refused({"run_dir": 3}, "run-dir")
    _refused({"env": True}, "env")


def test_int_options_still_accept_whole_numbers_in_any_spelling():
    cfg = C.build({"env": "CartPole-v1", "t_max": 7.0, "seed": "3", "hidden": "32, 16", "noop_max": 0})
    assert (cfg.algo.t_max, cfg.run.seed, cfg.algo.hidden, cfg.env.noop_max) == (7, 3, (32, 16), 0)
    assert C.build({"hidden": [64.0]}).algo.hidden == (64,)


def test_lr_warmup_frames_reads_counts_and_zero_is_off():
    assert C.build({"env": "Pong-v5"}).optim.lr_warmup_frames == 0  # the paper: no warm-up
    assert C.build({"env": "Pong-v5", "lr_warmup_frames": "100k"}).optim.lr_warmup_frames == 100_000
    assert C.build({"env": "Pong-v5", "lr_warmup_frames": 0}).optim.lr_warmup_frames == 0
    _refused({"lr_warmup_frames": "-1"}, "lr-warmup-frames")


def test_stored_config_json_round_trips_through_build():
    """A run's config.json (what --resume rebuilds from) passes the stricter type checks."""
    cfg = C.resolve(C.build({"env": "CartPole-v1", "threads": 2, "run_dir": "somewhere"}))
    stored = json.loads(json.dumps(cfg.to_dict()))
    flat = {k: v for sec in stored.values() for k, v in sec.items()}
    assert C.build(flat) == cfg


# --- the same through the CLI --------------------------------------------------------------


def _cli_bad(args, needle):
    """One ``Error:`` line holding ``needle``, exit 2, no traceback, nothing written."""
    with tempfile.TemporaryDirectory() as d:
        cwd = os.getcwd()
        os.chdir(d)
        try:
            r = CliRunner().invoke(main, args)
            after = os.listdir(d)
        finally:
            os.chdir(cwd)
    assert r.exit_code == 2, r.output
    assert needle in r.output, r.output
    assert "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.startswith("Error:")]) == 1, r.output
    assert after == [], "bad input must write nothing"
    return r


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--frames", "1e400"], "frames"),
        (["--target-update-frames", "1e999"], "target-update-frames"),
        (["--lr", "inf"], "lr must be a finite number"),
        (["--lr", "nan"], "lr must be a finite number"),
        (["--value-coef", "inf"], "value-coef must be a finite number"),
        (["--progress-every-s", "inf"], "progress-every-s must be a finite number"),
        (["--checkpoint-every-s", "inf"], "checkpoint-every-s must be a finite number"),
        (["--grad-clip", "inf"], "grad-clip must be a finite number"),
        (["--lr-warmup-frames", "-5"], "lr-warmup-frames"),
    ],
)
def test_cli_bad_numbers_clear_error_exit_2(args, needle):
    short = ["--threads", "1"] + ([] if "frames" in args[0] else ["--frames", "8k"])  # a regression fails fast
    _cli_bad(["train", "--env", "CartPole-v1", *short, *args], needle)


def test_cli_toml_with_wrong_types(tmp_path):
    for text, needle in [
        ("episodic_life = 3\n", "episodic-life"),
        ("[algo]\nt_max = true\n", "t-max"),
        ("[optim]\nlr = inf\n", "lr must be a finite number"),
        ("[run]\nthreads = 0\n", "--threads must be >= 1"),
    ]:
        p = tmp_path / "c.toml"
        short = 'frames = "8k"\n' + ("" if "threads" in text else "threads = 1\n")  # a regression fails fast
        p.write_text('env = "CartPole-v1"\n' + short + text)
        _cli_bad(["train", "--config", str(p)], needle)


# -- defaults per env family and method ------------------------------------------------------


def test_family_of_env_ids():
    assert C.env_family("Pong-v5") == "atari"
    assert C.env_family("Breakout-v5") == "atari"
    assert C.env_family("CartPole-v1") == "classic"
    assert C.env_family("Pendulum-v1") == "classic"
    assert C.env_family("MountainCarContinuous-v0") == "classic"
    assert C.env_family("mypkg.envs:Thing-v5") == "other"  # a user's own env: not ALE's
    assert C.env_family("Unknown-v1") == "other"


# One env of every family, and the Box-action variants that defaults_for layers their own on
ENVS_OF_EVERY_FAMILY = ("Pong-v5", "CartPole-v1", "Pendulum-v1", "HalfCheetah-v4", "MyWayHome-v1", "CarRacing-v3",
                        "CarRacingDiscrete-v3", "Unknown-v1")


def _value(cfg, name):
    """A flat option's value in a TrainConfig."""
    return getattr(getattr(cfg, C.flat_fields()[name][0]), name)


def _another(value):
    """A valid option value other than ``value`` (a family default)."""
    if isinstance(value, bool):
        return not value
    if value == "auto":
        return 0.25
    return value + 1 if isinstance(value, int) else value / 2


def test_method_defaults_apply_and_options_win():
    """build() gives each option the value of the env's family and method (defaults_for, from
    FAMILY_DEFAULTS), the dataclass default where the table has none, and the user's value
    wherever one is given."""
    ff = C.flat_fields()
    for env in ENVS_OF_EVERY_FAMILY:
        for algo in C.ALGOS:
            table = C.defaults_for(env, algo)
            cfg = C.build({"env": env, "algo": algo})
            for name, (_sec, f) in ff.items():
                if name not in ("env", "algo"):
                    assert _value(cfg, name) == table.get(name, f.default), (env, algo, name)
            for name, value in table.items():  # the option wins, whatever the family's value
                mine = _another(value)
                assert _value(C.build({"env": env, "algo": algo, name: mine}), name) == mine, (env, algo, name)
    # given options win over family defaults, whatever their spelling
    given = C.build({"env": "CartPole-v1", "lr": 0.01, "envs-per-thread": 4, "frames": "100k"})
    assert (given.optim.lr, given.env.envs_per_thread, given.run.frames) == (0.01, 4, 100_000)
    # how defaults_for layers the table: (family, None), then (family, algo) over it
    table = C.FAMILY_DEFAULTS
    atari_a3c = C.build({"env": "Pong-v5"})
    assert atari_a3c.optim.lr == C.OptimConfig.lr  # the paper's A3C: the dataclass defaults
    for algo in C.Q_ALGOS:  # ... but the Q methods' own rate
        assert C.build({"env": "Pong-v5", "algo": algo}).optim.lr == table[("atari", algo)]["lr"] != C.OptimConfig.lr
    cart = C.build({"env": "CartPole-v1"})
    assert C.defaults_for("CartPole-v1", "a3c") == table[("classic", None)]
    assert all(_value(cart, name) == value for name, value in table[("classic", None)].items())
    cart_q = C.defaults_for("CartPole-v1", "onestep-q")
    assert cart_q == {**table[("classic", None)], **table[("classic", "onestep-q")]}
    assert cart_q["lr"] == table[("classic", "onestep-q")]["lr"] != table[("classic", None)]["lr"]
    # Pendulum-v1 (Box actions) takes continuous control's, not CartPole's
    assert C.defaults_for("Pendulum-v1", "a3c") == table[("classic-box", "a3c")]
    assert C.build({"env": "Pendulum-v1"}).env.envs_per_thread == C.EnvConfig.envs_per_thread
    # an unknown family gets the dataclass defaults (but for the pixel families' frame centre)
    assert C.defaults_for("Unknown-v1", "a3c") == table[("other", None)]
    assert C.build({"env": "Unknown-v1"}).optim.lr == C.OptimConfig.lr
    # ViZDoom's maze agent is A3C-LSTM unless --algo says otherwise
    assert C.build({"env": "MyWayHome-v1"}).algo.algo == C.FAMILY_ALGO["doom"] != C.AlgoConfig.algo
    assert C.build({"env": "MyWayHome-v1", "algo": "a3c"}).algo.algo == "a3c"
    # CarRacing-v3's Gaussian head has a bounded mean; the discrete variant's softmax has none
    car = C.build({"env": "CarRacing-v3"})
    for name, value in {**table[("car", None)], **table[("car", "a3c")], **table[("car-box", "a3c")]}.items():
        assert _value(car, name) == value, name
    assert car.algo.bounded_mean != C.AlgoConfig.bounded_mean and car.algo.capg == C.AlgoConfig.capg
    disc = C.build({"env": "CarRacingDiscrete-v3"})
    assert disc.algo.bounded_mean == C.AlgoConfig.bounded_mean
    assert (disc.optim.lr, disc.algo.t_max) == (car.optim.lr, car.algo.t_max)
    assert C.build({"env": "CarRacingDiscrete-v3", "algo": "nstep-q"}).algo.bounded_mean == C.AlgoConfig.bounded_mean
    assert not C.build({"env": "CarRacing-v3", "bounded_mean": False}).algo.bounded_mean  # the option wins
    # MuJoCo keeps the paper's linear mean: the bounded one is CarRacing-v3's only
    assert C.build({"env": "HalfCheetah-v4"}).algo.bounded_mean == C.AlgoConfig.bounded_mean


def test_every_family_default_names_a_field_and_validates():
    ff = C.flat_fields()
    for (family, algo), values in C.FAMILY_DEFAULTS.items():
        assert algo is None or algo in C.ALGOS
        for name in values:
            assert name in ff, f"{family}/{algo}: {name} is no option"
    for env in ("Pong-v5", "CartPole-v1"):
        for algo in C.ALGOS:
            C.build({"env": env, "algo": algo})  # validates


def test_config_json_records_the_family_defaults(tmp_path):
    run = tmp_path / "q"
    r = CliRunner().invoke(main, ["train", "--env", "CartPole-v1", "--algo", "onestep-q", "--threads", "1",
                                  "--frames", "4k", "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "config.json").read_text())
    ff = C.flat_fields()
    table = C.defaults_for("CartPole-v1", "onestep-q")
    assert {"lr", "rms_eps", "target_update_frames", "frames"} <= set(table)
    for name, value in table.items():  # every family value, but the frames given
        assert cfg[ff[name][0]][name] == (4_000 if name == "frames" else value), name


def test_resume_keeps_the_stored_values_not_todays_defaults(tmp_path, monkeypatch):
    run = tmp_path / "r"
    r = CliRunner().invoke(main, ["train", "--env", "CartPole-v1", "--threads", "1", "--frames", "4k",
                                  "--lr", "5e-3", "--run-dir", str(run)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["train", "--resume", str(run), "--frames", "8k"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["optim"]["lr"] == 5e-3
