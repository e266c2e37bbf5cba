"""SAC learner throughput: gradient updates per second at batch 256 on ArmPickCube's state observations, ours
(critic ensemble of 2 and of 10) against stable-baselines3's SAC on the same data in the same run.

One "update" = what one env step buys at UTD 1: sample a batch from the replay buffer, one critic step, one
actor step, one temperature step, one Polyak update. Both learners use 256x256 MLPs, batch 256, Adam 3e-4,
automatic temperature; ours also carries LayerNorm in every hidden layer (the RLPD recipe) and SB3 has none, so
ours does strictly more arithmetic per update (ours without LayerNorm, SB3's architecture, is timed too). SB3
gets its fastest setup: FlattenObservation + MlpPolicy. Ours is also timed with ``precision: bf16`` (bfloat16
matmuls under autocast, fp32 weights and losses, for CPUs with AVX512-BF16 or AMX), with ``compile: true``
(torch.compile of the losses; compiled before timing) and with both.
Ensemble 10 is also set against SB3 with ``n_critics=10`` (its critics run one after another). The methods are
timed in alternating rounds and ratios taken within a round (median reported), so load from other processes
hits both sides alike. Also reported: critic updates/s in the RLPD setting (10 critics, UTD 20).
Speed holds per CPU model: each run writes sac_throughput_<cpu>.json, with the CPU model and flags inside.
SB3 comes with the bench extra (scripts/install.sh installs it). `robotrl bench learner` runs the same timing
for one user's learner config and task, without SB3.

    python bench/sac_throughput.py              # writes out/bench/sac_throughput_<cpu>.json (--update: bench/results/)
"""

from __future__ import annotations

import argparse
import os
import statistics

import robotrl  # noqa: F401,I001  first: registers the envs and selects headless GL before mujoco loads

import gymnasium as gym
import torch

from common import add_output_args, cpu_slug, out_dir, write_result
from robotrl.learners import ReplayBuffer
from robotrl.learners.throughput import Run, collect, interleaved, rate, ratio, updater

ENV_ID = "robotrl/ArmPickCube-v0"
BATCH = 256


def ours(env: gym.Env, buffer: ReplayBuffer, n_critics: int, utd: int = 1, **sac) -> Run:
    return updater(env, buffer, {"n_critics": n_critics, "utd": utd, "batch_size": BATCH, "device": "cpu",
                                 "num_threads": torch.get_num_threads(), **sac})


def sb3(env: gym.Env, buffer: ReplayBuffer, n_critics: int = 2) -> Run:
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import configure

    flat = gym.wrappers.FlattenObservation(env)
    model = SAC("MlpPolicy", flat, learning_rate=3e-4, buffer_size=buffer.size, learning_starts=0, batch_size=BATCH,
                tau=0.005, gamma=0.97, policy_kwargs={"net_arch": [256, 256], "n_critics": n_critics}, device="cpu",
                seed=0, verbose=0)
    model.set_logger(configure(None, []))  # train() logs; a logger with no outputs keeps that cheap
    space = env.observation_space
    for i in buffer.transitions():  # the very transitions ours samples from
        obs, next_obs = ({k: v[row] for k, v in buffer.obs.items()} for row in (i, buffer.next_index[i]))
        model.replay_buffer.add(gym.spaces.flatten(space, obs)[None], gym.spaces.flatten(space, next_obs)[None],
                                buffer.action[i][None], buffer.reward[i:i + 1], buffer.done[i:i + 1], [{}])

    def run(k: int) -> None:
        model.train(gradient_steps=k, batch_size=BATCH)  # k x (sample, critic, actor, entropy coef, Polyak)

    return run


def cpu_pressure() -> str | None:
    """Linux PSI: the share of time runnable tasks waited for a CPU (other load on the machine skews timings)."""
    try:
        return open("/proc/pressure/cpu").readline().strip()
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=200, help="updates per timing round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads, for every learner")
    add_output_args(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pressure_before = cpu_pressure()
    env = gym.make(ENV_ID)
    data = collect(env, 5_000)  # one buffer: every learner samples the same transitions
    runs = {"ours_ensemble2": ours(env, data, 2), "sb3": sb3(env, data),
            "ours_ensemble2_bf16": ours(env, data, 2, precision="bf16"),
            "ours_ensemble2_compiled": ours(env, data, 2, compile=True),
            "ours_ensemble2_compiled_bf16": ours(env, data, 2, compile=True, precision="bf16"),
            "ours_ensemble2_no_layernorm": ours(env, data, 2, layer_norm=False),
            "ours_ensemble10": ours(env, data, 10), "ours_ensemble10_compiled_bf16": ours(env, data, 10, compile=True, precision="bf16"),
            "sb3_critics10": sb3(env, data, 10)}
    pairs = {"ensemble2": ("ours_ensemble2", "sb3"),
             "ensemble2_bf16": ("ours_ensemble2_bf16", "sb3"),  # precision: bf16 (autocast); SB3 has no such mode
             "ensemble2_compiled": ("ours_ensemble2_compiled", "sb3"),
             "ensemble2_compiled_bf16": ("ours_ensemble2_compiled_bf16", "sb3"),
             "ensemble2_no_layernorm": ("ours_ensemble2_no_layernorm", "sb3"),  # SB3's exact architecture
             "ensemble10": ("ours_ensemble10", "sb3_critics10"),
             "ensemble10_compiled_bf16": ("ours_ensemble10_compiled_bf16", "sb3_critics10"),
             "ensemble10_vs_sb3_2_critics": ("ours_ensemble10", "sb3")}
    rlpd = ours(env, data, 10, utd=20)
    rates = interleaved(runs, args.rounds, args.updates)
    median = {name: statistics.median(r) for name, r in rates.items()}
    ratios = {key: round(ratio(rates, a, b), 2) for key, (a, b) in pairs.items()}
    rlpd(1)
    rlpd_rate = statistics.median(rate(rlpd, max(args.updates // 20, 5)) for _ in range(3))

    # Speed holds per CPU: one result file per CPU model, side by side.
    write_result(out_dir(args), f"sac_throughput_{cpu_slug()}", {
        "env": ENV_ID,
        "obs_dim": int(gym.spaces.flatdim(env.observation_space)),
        "act_dim": int(env.action_space.shape[0]),
        "batch_size": BATCH,
        "torch_threads": torch.get_num_threads(),
        "cpu_pressure": {"before": pressure_before, "after": cpu_pressure()},
        "updates_per_s": {name: round(v, 1) for name, v in median.items()},
        "updates_per_s_rounds": {name: [round(x, 1) for x in r] for name, r in rates.items()},
        "ratio_vs_sb3": ratios,  # median over rounds of the within-round ratio
        "goal": "ours (ensemble 2) >= 1.5x SB3 updates/s",
        "goal_met": {"fp32 (default)": bool(ratios["ensemble2"] >= 1.5), "bf16": bool(ratios["ensemble2_bf16"] >= 1.5),
                     "compile": bool(ratios["ensemble2_compiled"] >= 1.5),
                     "compile + bf16": bool(ratios["ensemble2_compiled_bf16"] >= 1.5)},
        "rlpd_n10_utd20": {"critic_updates_per_s": round(20 * rlpd_rate, 1), "env_steps_per_s": round(rlpd_rate, 2)},
    })


if __name__ == "__main__":
    main()
