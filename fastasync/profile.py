"""``fastasync profile``: where the time of one learner goes.

Runs the real trainer with every learner's per-phase clock on
(:meth:`fastasync.learner.Learner.enable_timing`), zeroes the clocks after compilation,
the first segment and ``warmup`` seconds, trains for ``seconds`` more, stops, and reports
for learner 0 and the mean over learners:

* ms per agent step (one batch step of E envs: phase seconds / (segments x t_max)) and
  microseconds per env step (/ E), per phase;
* each phase's share of the learner's time inside segments (the phases partition a
  segment; the small "untimed" rest is the clock reads and counters between phases);
* GFLOP/s of the forward and backward kernels and their fraction of one core's fp32 peak,
  measured in the same run (:func:`fastasync.perf.fp32_peak_gflops`) before training.

FLOP counts: forward = ``net.flops_per_sample()`` x (t_max + 1) x E per segment (t_max
acting forwards and the bootstrap forward); backward ~= 2 x forward x t_max / (t_max + 1)
(the weight and input gradients each cost about one forward GEMM, over the t_max stored
slots; an approximation: the first layer computes no input gradient, and im2col/col2im,
ReLU and bias work are not counted). These are dense-equivalent counts: where an output
gradient is mostly the ReLU's zeros the backward skips them (kernels/dense.py, conv.py), so
the backward's GFLOP/s can exceed the arithmetic it did, more so as the net trains.
"""

from __future__ import annotations

import time

from . import placement

PHASE_LABELS = {
    "snapshot": "snapshot (theta' <- theta)",
    "forward": "forward (acting + bootstrap)",
    "act": "act (action sampling)",
    "env_step": "env step (envpool)",
    "glue": "glue (record step, Python)",
    "loss": "loss (targets + dL/dout)",
    "backward": "backward",
    "apply": "apply (clip + RMSProp)",
}


def phases():
    from .learner import PHASES

    return [p for p in PHASES if p not in ("total", "segments")]


def learner_figures(tm: dict, T: int, E: int, flops_per_sample: float, frame_skip: int) -> dict:
    """Per-phase ms/agent step, us/env step, share of segment time, and kernel GFLOP/s."""
    segs = tm["segments"]
    total = tm["total"]
    agent_steps = segs * T
    out = dict(segments=int(segs), total_s=total, agent_steps=int(agent_steps), phases={})
    for p in phases():
        out["phases"][p] = dict(
            seconds=tm[p],
            ms_per_agent_step=1e3 * tm[p] / agent_steps if agent_steps else float("nan"),
            us_per_env_step=1e6 * tm[p] / (agent_steps * E) if agent_steps else float("nan"),
            share=tm[p] / total if total > 0 else float("nan"),
        )
    timed = sum(tm[p] for p in phases())
    out["untimed_share"] = (total - timed) / total if total > 0 else float("nan")
    out["ms_per_agent_step"] = 1e3 * total / agent_steps if agent_steps else float("nan")
    out["us_per_env_step"] = 1e6 * total / (agent_steps * E) if agent_steps else float("nan")
    out["fps"] = agent_steps * E * frame_skip / total if total > 0 else float("nan")
    fwd_flops = flops_per_sample * (T + 1) * E * segs
    bwd_flops = 2.0 * flops_per_sample * T * E * segs
    out["forward_gflops"] = fwd_flops / tm["forward"] / 1e9 if tm["forward"] > 0 else float("nan")
    out["backward_gflops"] = bwd_flops / tm["backward"] / 1e9 if tm["backward"] > 0 else float("nan")
    return out


def run_profile(env, algo, threads, envs_per_thread, seconds, warmup, backend, progress=None,
                peak_seconds=1.0, pin_threads=True) -> dict:
    """Train with per-phase clocks; returns figures for every learner plus the context."""
    import tempfile

    from .bench import TrainerThread, bench_config, make_trainer
    from .learner import PHASES
    from .perf import fp32_peak_gflops

    progress = progress or (lambda msg: None)
    with tempfile.TemporaryDirectory(prefix="fastasync-profile-") as tmp:
        cfg = bench_config(env, algo, threads, envs_per_thread, backend, f"{tmp}/run", pin_threads)  # bad input fails here
        progress("measuring one core's fp32 peak (single-threaded sgemm) ...")
        peak = fp32_peak_gflops(peak_seconds)
        trainer = make_trainer(cfg)
        for lr in trainer.learners:
            lr.enable_timing()
        progress(f"training: compile + first segment + {warmup:g}s warm-up, then {seconds:g}s profiled ...")
        tt = TrainerThread(trainer)
        tt.start()
        try:
            tt.wait_running()
            time.sleep(warmup)
            for lr in trainer.learners:
                lr.timings = dict.fromkeys(PHASES, 0.0)  # compile and warm-up excluded
            t0 = time.monotonic()
            time.sleep(seconds)
        finally:
            t1 = time.monotonic()
            tt.stop()  # learners finish their segment: the clocks hold whole segments only
        timings = [dict(lr.timings) for lr in trainer.learners]
    net = trainer.net
    T, E = cfg.algo.t_max, cfg.env.envs_per_thread
    fs = trainer.learners[0].frame_skip
    per = [learner_figures(tm, T, E, net.flops_per_sample(), fs) for tm in timings]
    return dict(
        config=cfg,
        window_s=t1 - t0,
        peak_gflops=peak,
        flops_per_sample=net.flops_per_sample(),
        num_params=net.num_params,
        learners=per,
        T=T,
        E=E,
        placement=placement.describe(trainer.cpus, trainer.pin_refused),
    )


def _mean(values):
    import math

    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def format_report(res: dict) -> str:
    per = res["learners"]
    n = len(per)
    T, E, peak = res["T"], res["E"], res["peak_gflops"]
    l0 = per[0]
    lines = []
    hdr = f"{'phase':<30} {'ms/agent step':>13} {'us/env step':>11} {'share':>7}"
    if n > 1:
        hdr += f" {'mean share':>10}"
    lines.append(f"learner 0 ({l0['segments']} segments = {l0['agent_steps']} agent steps of {E} envs"
                 f" in {l0['total_s']:.2f}s inside segments; window {res['window_s']:.1f}s)")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for p in phases():
        f = l0["phases"][p]
        row = f"{PHASE_LABELS.get(p, p):<30} {f['ms_per_agent_step']:>13.3f} {f['us_per_env_step']:>11.1f} {100 * f['share']:>6.1f}%"
        if n > 1:
            row += f" {100 * _mean([q['phases'][p]['share'] for q in per]):>9.1f}%"
        lines.append(row)
    row = f"{'untimed (between clocks)':<30} {'':>13} {'':>11} {100 * l0['untimed_share']:>6.1f}%"
    if n > 1:
        row += f" {100 * _mean([q['untimed_share'] for q in per]):>9.1f}%"
    lines.append(row)
    row = f"{'total':<30} {l0['ms_per_agent_step']:>13.3f} {l0['us_per_env_step']:>11.1f} {100.0:>6.1f}%"
    lines.append(row)
    lines.append("")
    lines.append(f"learner 0: {l0['fps']:,.0f} frames/s while inside segments"
                 + (f"; mean over {n} learners {_mean([q['fps'] for q in per]):,.0f}" if n > 1 else ""))
    fwd, bwd = l0["forward_gflops"], l0["backward_gflops"]
    lines.append(f"fp32 peak of one core (single-threaded sgemm, best of N, this run): {peak:.1f} GFLOP/s")
    lines.append(f"net: {res['num_params']:,} params, {res['flops_per_sample'] / 1e6:.2f} MFLOP forward per sample")
    lines.append(f"forward kernels : {fwd:7.2f} GFLOP/s = {100 * fwd / peak:5.1f}% of peak"
                 + (f"  (mean over learners {_mean([q['forward_gflops'] for q in per]):.2f})" if n > 1 else ""))
    lines.append(f"backward kernels: {bwd:7.2f} GFLOP/s = {100 * bwd / peak:5.1f}% of peak"
                 + (f"  (mean over learners {_mean([q['backward_gflops'] for q in per]):.2f})" if n > 1 else ""))
    lines.append(f"FLOPs: forward = flops_per_sample x (t_max+1) x E per segment ({T + 1} slots x {E} envs); "
                 f"backward ~= 2 x forward x t_max/(t_max+1) (dW and dX GEMMs over {T} slots; approximation:")
    lines.append("  the first layer has no dX, and im2col/col2im, ReLU and bias work are not counted; dense-equivalent:")
    lines.append("  the backward skips the zeros of mostly-zero output gradients, so its GFLOP/s can exceed the work done)")
    lines.append("shares are of the learner's time inside segments; compile and warm-up excluded")
    lines.append(f"placement: {res['placement']}")
    return "\n".join(lines)
