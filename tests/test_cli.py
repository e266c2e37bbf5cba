"""The robotrl command line, run as a user runs it (a subprocess)."""

import subprocess
import sys

import imageio.v3 as iio

from robotrl import ENVS


def robotrl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robotrl.cli", *args], capture_output=True, text=True, timeout=300)


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
    assert "success rate 100.00%" in res.stdout
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
