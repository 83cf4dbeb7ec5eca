"""Train A3C on CartPole from Python, then play the trained policy in a gymnasium loop.

    python examples/cartpole.py

About 20 seconds on 2 cores (one learner thread per CPU this process may use).
FASTASYNC_EXAMPLE_FRAMES and FASTASYNC_EXAMPLE_RUN_DIR change the budget and where the run
is written (the test suite runs it with a tiny budget).
"""

import os

import fastasync


def main():
    run = fastasync.train(
        env="CartPole-v1",  # the classic-control family's defaults: 2M frames, lr 2e-3, 32 envs per thread
        frames=os.environ.get("FASTASYNC_EXAMPLE_FRAMES"),  # None: that default
        seed=1,
        run_dir=os.environ.get("FASTASYNC_EXAMPLE_RUN_DIR"),  # None: runs/CartPole-v1-a3c-<time>
    )
    print(f"trained {run.frames:,} frames in {run.summary['elapsed_s']:.0f}s, {run.summary['games']} games; "
          f"run directory {run.run_dir}")

    policy = run.policy()  # the same as fastasync.load(run.run_dir)
    env = policy.env()  # one gymnasium env, preprocessed as in training
    scores = []
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        score, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs, greedy=True))
            score += reward
            done = terminated or truncated
        scores.append(score)
    env.close()
    print(f"greedy policy: mean score over {len(scores)} games {sum(scores) / len(scores):.1f} ({scores})")


if __name__ == "__main__":
    main()
