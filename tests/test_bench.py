"""Benchmarks write where they are told, record the machine they ran on, and never touch the committed results
unless asked (--update)."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import mujoco
import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_benchmark_writes_where_told_records_the_machine_and_leaves_committed_results_alone(tmp_path):
    before = digest(RESULTS)
    res = subprocess.run([sys.executable, "bench/experts.py", "--episodes", "1", "--out-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert digest(RESULTS) == before
    result = json.loads((tmp_path / "experts.json").read_text())
    machine = result["machine"]
    assert machine["cpu"]["model"] not in ("", "unknown")
    assert len(machine["git"]["commit"]) == 40
    assert machine["packages"]["mujoco"] == mujoco.__version__ and "torch" in machine["packages"]
    assert f"wrote {tmp_path / 'experts.json'}" in res.stdout


def test_committed_results_are_written_only_with_update():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import argparse

        from common import DEFAULT_OUT, add_output_args

        parser = argparse.ArgumentParser()
        add_output_args(parser)
        assert parser.parse_args([]).out_dir == DEFAULT_OUT and not parser.parse_args([]).update
        assert parser.parse_args(["--update"]).update
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_the_fast_path_is_recommended_only_when_it_wins_within_rounds():
    from robotrl.learners.throughput import recommend

    # compile + bf16 is faster in every round, though the machine slowed down in round 2: it wins.
    rates = {"fp32 eager": [100, 50, 100], "bf16": [90, 45, 95], "compile + bf16": [130, 66, 125]}
    assert recommend(rates) == "compile + bf16"
    # a gain under 10 % is not worth a compile and bf16 rounding: keep the default
    assert recommend({"fp32 eager": [100, 100, 100], "compile": [105, 108, 104]}) == "fp32 eager"
    assert recommend({"fp32 eager": [100, 100], "bf16": [77, 80]}) == "fp32 eager"


@pytest.mark.slow
def test_bench_learner_times_every_variant_and_recommends_one(tmp_path):
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("hidden: 32\nbatch_size: 32\ndevice: cpu\n")
    res = subprocess.run([sys.executable, "-m", "robotrl.cli", "bench", "learner", "--env", "robotrl/ArmReach-v0",
                          "--config", str(tiny), "--rounds", "1", "--updates", "3", "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    for variant in ("fp32 eager", "bf16", "compile", "compile + bf16"):
        assert re.search(rf"^  {re.escape(variant)} +[\d.]+ updates/s", res.stdout, re.M), res.stdout
    assert "recommendation: " in res.stdout


@pytest.mark.slow
def test_bench_ui_latency_measures_every_path_in_a_real_browser(tmp_path):
    res = subprocess.run([sys.executable, "bench/ui_latency.py", "--presses", "3", "--twin-presses", "3",
                          "--stream-s", "2", "--warmup-s", "0.5", "--out-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads((tmp_path / "ui_latency.json").read_text())
    for case in ("idle", "streaming"):
        assert result["teleop"][case]["press_to_actor_ms"]["n"] == 3
    assert result["teleop"]["twin"]["press_to_device_command_ms"]["n"] == 3
    assert result["teleop"]["twin"]["control_period_ms"] == pytest.approx(100.0)
    for path in ("websocket_jpeg", "mjpeg"):
        for cam in result["streams"][path]["cameras"].values():
            assert cam["published"] > 0 and cam["drawn"] > 0 and cam["age_ms"]["p50"] > 0
    assert result["streaming_choice"]["choice"] in ("websocket_jpeg", "mjpeg")
    assert (tmp_path / "ui_latency.png").stat().st_size > 0


def test_bench_demos_are_successes_and_a_set_that_cannot_fill_says_so(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    from common import record_demos

    from robotrl.data import EpisodeStore

    # 1.5 s is as long as the scripted pick takes (15-16 steps): some seeds fail, and they must stay out.
    short = {"episode_seconds": 1.5}
    metas = EpisodeStore(record_demos(tmp_path / "demos.zarr", 6, 0, "robotrl/ArmPickCube-v0", short)).metas()
    assert len(metas) == 6 and all(m.success for m in metas)
    assert metas[-1].seed > 1005, "no seed failed: the episode is too long to test the filter"
    # resumed: the kept demos stay and it goes on from the seed after the last
    more = EpisodeStore(record_demos(tmp_path / "demos.zarr", 7, 0, "robotrl/ArmPickCube-v0", short)).metas()
    assert more[:6] == metas and more[6].seed > metas[-1].seed and more[6].success
    with pytest.raises(RuntimeError, match=r"0 of 2 demos succeeded in 6 episodes"):
        record_demos(tmp_path / "none.zarr", 2, 0, "robotrl/ArmPickCube-v0", {"episode_seconds": 0.3})


def test_the_pixel_benchs_labels_hold_an_empty_raised_gripper_labelled_failure(tmp_path):
    """Every fifth labelled episode is the operator's deliberate negative (bench/pixels.EmptyLift): the gripper closed
    on nothing, raised to the expert's lift height beside a cube that stays on the table, and labelled a failure."""
    sys.path.insert(0, str(ROOT / "bench"))
    from pixels import labelled_episodes

    from robotrl.data import EpisodeStore

    labelled_episodes(tmp_path / "labelled.zarr", 5, 0, {"reward": "sparse"})
    store = EpisodeStore(tmp_path / "labelled.zarr")
    empty = store.episode(4, ["state.ee_pos", "state.gripper", "truth/success"])
    assert empty["state.gripper"][-10:].max() < 0.1  # closed on nothing
    assert empty["state.ee_pos"][-1, 2] > 0.1 and not empty["truth/success"].any()  # raised; the cube never lifted
    assert store.judgements(4)["operator"].success is False
    assert store.judgements(0)["operator"].success  # the clean expert's lift beside it is labelled a success
