"""The robotrl command line, run as a user runs it (a subprocess)."""

import json
import signal
import subprocess
import sys
import time

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from robotrl import ENVS

TINY_SAC = "hidden: 32\nbatch_size: 32\nnum_threads: 1\n"


def robotrl(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robotrl.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def fails_cleanly(res: subprocess.CompletedProcess, *expected: str) -> None:
    """A user's mistake: exit 2, one line on stderr that says what is wrong, no traceback."""
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    for text in expected:
        assert text in res.stderr


def test_help_explains_every_command():
    out = robotrl("--help").stdout
    for command in ("envs", "rollout", "record", "data"):
        assert command in out
    assert "--episodes" in robotrl("rollout", "--help").stdout


def test_envs_lists_every_task():
    out = robotrl("envs").stdout
    for env_id in ENVS:
        assert env_id in out


def test_rollout_prints_success_rate_and_writes_video_and_frames(tmp_path):
    video, frames = tmp_path / "pick.mp4", tmp_path / "frames"
    res = robotrl("rollout", "--env", "robotrl/ArmPickCube-v0", "--episodes", "3", "--video", str(video),
                  "--video-episodes", "1", "--frames", str(frames), "--cameras", "wrist", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "success rate 100.0 % (95 % CI 44-100 %, 3 episodes)" in res.stdout
    assert iio.improps(video).shape[0] > 5  # a real video with frames
    assert any(p.name.endswith("_wrist.png") for p in frames.iterdir())


def test_record_then_info(tmp_path):
    store = tmp_path / "demos.zarr"
    res = robotrl("record", "--env", "robotrl/ArmReach-v0", "--episodes", "4", "--out", str(store), "--quiet")
    assert res.returncode == 0, res.stderr
    info = robotrl("data", "info", str(store))
    assert '"episodes": 4' in info.stdout and '"demo": 4' in info.stdout


def test_bad_input_exits_2_with_a_message_naming_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("episode_secs: 3\n")
    res = robotrl("rollout", "--env", "robotrl/ArmReach-v0", "--config", str(bad), "--episodes", "1")
    assert res.returncode == 2
    assert "bad.yaml: key 'episode_secs': unknown key" in res.stderr
    res = robotrl("data", "info", str(tmp_path / "missing.zarr"))
    assert res.returncode == 2 and "no episode store here" in res.stderr


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    store = tmp_path_factory.mktemp("demos") / "reach.zarr"
    assert robotrl("record", "--env", "robotrl/ArmReach-v0", "--episodes", "1", "--out", store, "--quiet").returncode == 0
    return store


@pytest.mark.parametrize("mistake, expected", [
    (["rollout", "--env", "Pendulm-v1"], ["unknown env id 'Pendulm-v1'", "Pendulum-v1", "robotrl envs"]),
    (["rollout", "--env", "robotrl/ArmReach-v0", "--policy", "scriptd"],
     ["no run folder scriptd; --policy takes scripted, random or a run folder"]),
    (["rollout", "--env", "Pendulum-v1", "--policy", "scripted"], ["no scripted expert for Pendulum-v1"]),
    (["rollout", "--env", "Pendulum-v1", "--config", "arm_reach"], ["--config", "robotrl/* tasks only"]),
    (["record", "--env", "Pendulum-v1", "--cameras", "wrist", "--out", "x.zarr"], ["--cameras", "robotrl/* tasks only"]),
    (["rollout", "--env", "robotrl/ArmReach-v0", "--config", "arm_reech"], ["no config 'arm_reech'", "arm_reach"]),
    (["rollout", "--env", "robotrl/ArmReach-v0", "--video", "out/reach.avi"], ["--video", ".mp4"]),
    (["eval", "--run", "runs/none"], ["no run folder runs/none"]),
])
def test_everyday_mistakes_say_what_to_do_in_one_line(mistake, expected, tmp_path):
    fails_cleanly(robotrl(*mistake, "--quiet" if mistake[0] != "eval" else "--episodes=1", cwd=tmp_path), *expected)
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("mistake, expected", [
    (["--env", "Pendulm-v1"], ["unknown env id 'Pendulm-v1'", "Pendulum-v1"]),
    (["--env", "Pendulum-v1", "--config", "BAD"], ["bad.yaml: key 'hiden': unknown key"]),
    (["--env", "Pendulum-v1", "--config", "sac_pik"], ["no config 'sac_pik'", "sac_pick"]),
    (["--env", "Pendulum-v1", "--reward", "dense"], ["--reward", "robotrl/* tasks only"]),
    (["--env", "robotrl/ArmPickCube-v0", "--demos", "DEMOS"],
     ["recorded on robotrl/ArmReach-v0", "do not fit robotrl/ArmPickCube-v0", "state/cube_pos"]),
    (["--env", "robotrl/ArmReach-v0", "--human", "scripted"], ["scripted human"]),
    (["--env", "robotrl/ArmPickCube-v0", "--task-config", "arm_pick_cube_pixel"], ["no config 'arm_pick_cube_pixel'",
                                                                                   "arm_pick_cube_pixels"]),
])
def test_a_failed_train_start_leaves_no_run_folder(mistake, expected, tmp_path, reach_demos):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hiden: 32\n")
    args = [{"BAD": bad, "DEMOS": reach_demos}.get(a, a) for a in mistake]
    res = robotrl("train", "sac", *args, "--out", tmp_path / "run", "--steps", "10", "--quiet")
    fails_cleanly(res, *expected)
    assert "overrides" not in res.stderr
    assert not (tmp_path / "run").exists()


def test_video_into_a_new_folder_and_configs_by_name_from_anywhere(tmp_path):
    video = tmp_path / "new" / "folder" / "reach.gif"
    res = robotrl("rollout", "--env", "robotrl/ArmReach-v0", "--config", "arm_reach", "--episodes", "1",
                  "--video", video, "--quiet", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert iio.improps(video).shape[0] > 1


@pytest.mark.slow
def test_train_takes_a_task_config_and_eval_plays_the_same_task(tmp_path):
    run = tmp_path / "run"
    res = robotrl("train", "sac", "--env", "robotrl/ArmPickCube-v0", "--task-config", "arm_pick_cube_pixels", "--out", run,
                  "--steps", "101", "--eval-every", "101", "--eval-episodes", "1", "--quiet", cwd=tmp_path)  # one episode stored
    assert res.returncode == 0, res.stderr
    assert "arm_pick_cube_pixels.yaml" in (run / "run.yaml").read_text()
    keys = robotrl("data", "info", run / "episodes.zarr").stdout
    assert "images.front" in keys and "images.wrist" in keys and "cube_pos" not in keys  # what a robot sees
    assert robotrl("eval", "--run", run, "--episodes", "1").returncode == 0
    res = robotrl("eval", "--run", run, "--episodes", "1", "--heldout", "latency,cube_colour")
    assert res.returncode == 0, res.stderr
    assert "held-out latency: " in res.stdout and "held-out cube_colour: " in res.stdout


@pytest.mark.slow
def test_a_short_run_evaluates_at_its_last_step_and_lists_only_what_it_wrote(tmp_path):
    run = tmp_path / "run"
    res = robotrl("train", "sac", "--env", "robotrl/ArmReach-v0", "--config", "sac", "--out", run, "--steps", "5",
                  "--eval-episodes", "1", "--success-key", "reached", "--quiet", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "last eval after 5 env steps: mean return" in res.stdout
    assert "success rate" not in res.stdout  # the env reports no 'reached' key: scored by return
    for name in ("learning_curve.png", "metrics.jsonl"):
        assert name in res.stdout and (run / name).exists()
    assert "success_key: reached" in (run / "run.yaml").read_text()
    res = robotrl("eval", "--run", run, "--episodes", "1")  # eval reads the run's success key
    assert res.returncode == 0 and "mean return" in res.stdout and "success rate" not in res.stdout


@pytest.mark.slow
def test_any_gymnasium_env_records_trains_rolls_out_and_evaluates_by_return(tmp_path):
    demos, run, sac = tmp_path / "pendulum.zarr", tmp_path / "run", tmp_path / "tiny.yaml"
    sac.write_text(TINY_SAC)
    res = robotrl("record", "--env", "Pendulum-v1", "--policy", "random", "--episodes", "2", "--out", demos, "--quiet")
    assert res.returncode == 0, res.stderr
    assert "mean return" in res.stdout and "success rate" not in res.stdout
    assert json.loads(robotrl("data", "info", demos).stdout)["mean_return"] < 0

    res = robotrl("train", "sac", "--env", "Pendulum-v1", "--demos", demos, "--config", sac, "--out", run,
                  "--steps", "300", "--eval-every", "150", "--eval-episodes", "1", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "last eval after 300 env steps: mean return -" in res.stdout and "success" not in res.stdout
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["event"] == "eval"]
    assert [r["env_steps"] for r in evals] == [150, 300] and evals[-1]["updates"] == 300  # demos: updates from step 1
    assert evals[-1]["success"] is None and evals[-1]["success_ci"] is None
    learner = [r for r in rows if r["event"] == "learner"]  # every 100 updates: what the operator page plots
    assert [r["env_steps"] for r in learner] == [100, 200, 300] and all(np.isfinite(r["q"]) for r in learner)

    res = robotrl("rollout", "--env", "Pendulum-v1", "--policy", run, "--episodes", "2", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "mean return -" in res.stdout and "success rate" not in res.stdout and "safety cost" not in res.stdout
    res = robotrl("eval", "--run", run, "--episodes", "1")
    assert res.returncode == 0 and "mean return -" in res.stdout, res.stderr


@pytest.mark.slow
def test_sigterm_saves_the_run_the_same_command_resumes_and_eval_reports_best_with_its_interval(tmp_path):
    """What a shared machine or `ros2 launch` does to a training: SIGTERM once it has updated. It stops cleanly
    (exit 0) with its checkpoint and a stop row saved; the same command resumes there and finishes; eval loads
    best.pt (or checkpoint.pt when asked), says which, and prints the success rate with its 95 % interval."""
    run, sac = tmp_path / "run", tmp_path / "tiny.yaml"
    sac.write_text(TINY_SAC)
    command = [sys.executable, "-m", "robotrl.cli", "train", "sac", "--env", "robotrl/ArmReach-v0", "--config", sac,
               "--out", run, "--steps", "1000", "--eval-every", "500", "--eval-episodes", "2", "--random-steps", "0",
               "--quiet"]
    proc = subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not (run / "checkpoint.pt").exists() and proc.poll() is None:  # written after the first 100 updates
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM at env step" in out and "Traceback" not in err
    stop = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert stop["event"] == "stop" and stop["signal"] == "SIGTERM" and stop["updates"] >= 100
    assert stop["env_steps"] < 1000  # stopped, not finished
    assert torch.load(run / "checkpoint.pt", weights_only=False)["agent"]["num_updates"] == stop["updates"]

    res = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"resumed {run} at env step {stop['stored_steps']} " in res.stdout
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["event"] == "eval"]
    assert [r["env_steps"] for r in evals] == [500, 1000] and evals[-1]["updates"] > stop["updates"]
    assert all(len(r["success_ci"]) == 2 and r["episodes"] == 2 for r in evals)
    assert (run / "best.pt").exists() and (run / "checkpoint.pt").exists()

    res = robotrl("eval", "--run", run, "--episodes", "3")
    assert res.returncode == 0, res.stderr
    assert f"policy: {run}/best.pt (best evaluation during training" in res.stdout
    assert "% (95 % CI " in res.stdout and ", 3 episodes)" in res.stdout
    res = robotrl("eval", "--run", run, "--episodes", "3", "--checkpoint", "last")
    assert res.returncode == 0 and f"policy: {run}/checkpoint.pt (last: " in res.stdout, res.stderr


@pytest.mark.slow
def test_the_learner_uses_the_thread_count_the_run_printed(tmp_path):
    """num_threads 0 (the default) is half the cores, at least 1; the run says what it chose, and its evaluation
    rows record what torch really ran with."""
    import json
    import os
    import re

    for threads, config in ((max(1, os.cpu_count() // 2), "hidden: 32\nbatch_size: 32\n"), (1, TINY_SAC)):
        (tmp_path / "t.yaml").write_text(config)
        run = tmp_path / f"run{threads}{len(config)}"
        res = robotrl("train", "sac", "--env", "robotrl/ArmReach-v0", "--out", str(run), "--config", str(tmp_path / "t.yaml"),
                      "--steps", "60", "--eval-every", "60", "--eval-episodes", "1", "--random-steps", "20", "--quiet")
        assert res.returncode == 0, res.stderr
        printed = int(re.search(r"learner: (\d+) torch threads", res.stdout + res.stderr).group(1))
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert printed == threads and [r["torch_threads"] for r in rows if r.get("event") == "eval"] == [threads]
