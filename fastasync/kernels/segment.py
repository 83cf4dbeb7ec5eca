"""A learner's per-step bookkeeping as one kernel: one dispatch instead of ~10 NumPy calls.

Every agent step the learner records the env step into its segment and updates each env's
running score and length. Done with NumPy that is about ten small array operations with
the GIL held, which N learner threads must share (bench/gil_share.py); here it is one call.
"""

from ._jit import jit


@jit
def record_step(reward, terminated, truncated, raw_reward, game_over,
                prev_done, reset, rewards, term, trunc, new_episode, score, length, ended):
    """Record one env step of E envs at a segment slot; returns (games ended, any truncated).

    Inputs (E,): reward, raw_reward float32; terminated, truncated, game_over bool.
    Carried state (E,), updated in place: prev_done bool (the previous step was a done, so
    this step is envpool's auto-reset step), score float64 (raw reward summed over the game),
    length int64 (agent steps of the game, reset steps not counted).
    Slot rows (E,), written: reset, term, trunc, new_episode uint8; rewards float32.
    ended (E,) int64: its first n entries get the envs whose game ended (n returned); their
    score and length are left for the caller to report and zero.
    """
    n = 0
    any_trunc = False
    for e in range(reward.shape[0]):
        was_done = prev_done[e]
        reset[e] = was_done
        new_episode[e] = was_done
        rewards[e] = reward[e]
        term[e] = terminated[e]
        trunc[e] = truncated[e]
        any_trunc = any_trunc or truncated[e]
        prev_done[e] = terminated[e] or truncated[e]
        score[e] += raw_reward[e]
        if not was_done:
            length[e] += 1
        if game_over[e]:
            ended[n] = e
            n += 1
    return n, any_trunc
