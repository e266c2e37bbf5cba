"""`robotrl record` keeps failed episodes out of a demo set and says how many; --keep-failures keeps them, tagged.
A reach in 0.4 s (4 control steps) is a deliberately hard setting: the expert gets there in about half the episodes.
The CLI runs in-process here (test_cli runs it as a subprocess): the same main(), without a second start-up."""

import json
import re
import subprocess

import pytest

from robotrl.cli import main
from robotrl.data import EpisodeStore

REACH = "robotrl/ArmReach-v0"


@pytest.fixture
def robotrl(capsys):
    def run(*args) -> subprocess.CompletedProcess:
        rc = main([str(a) for a in args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, out.out, out.err)

    return run


@pytest.fixture
def hard_reach(tmp_path):
    config = tmp_path / "hard_reach.yaml"
    config.write_text("episode_seconds: 0.4\n")
    return config


def test_record_keeps_failures_out_of_the_demo_set_and_says_how_many(tmp_path, hard_reach, robotrl):
    store = tmp_path / "demos.zarr"
    res = robotrl("record", "--env", REACH, "--config", hard_reach, "--episodes", "3", "--out", store, "--quiet")
    assert res.returncode == 0, res.stderr
    warning = re.search(r"warning: (\d+) of (\d+) episodes failed \(seeds? [\d, ]+\): left out of .*--keep-failures", res.stderr)
    assert warning, res.stderr
    failed, runs = map(int, warning.groups())
    assert failed > 0 and runs == failed + 3  # went on until 3 successes
    assert f"recorded 3 successful demos to {store} (store now holds 3); {failed} failed episodes left out" in res.stdout
    metas = EpisodeStore(store).metas()
    assert len(metas) == 3 and all(m.success for m in metas)
    failed_seeds = {int(s) for s in re.search(r"\(seeds? ([\d, ]+)\)", res.stderr).group(1).split(", ")}
    assert not failed_seeds & {m.seed for m in metas}


def test_keep_failures_stores_every_episode_tagged(tmp_path, hard_reach, robotrl):
    store = tmp_path / "all.zarr"
    res = robotrl("record", "--env", REACH, "--config", hard_reach, "--episodes", "4", "--out", store, "--quiet",
                  "--keep-failures")
    assert res.returncode == 0, res.stderr
    assert re.search(r"warning: \d+ of 4 episodes failed .*kept in .*tagged success=false", res.stderr), res.stderr
    metas = EpisodeStore(store).metas()
    assert len(metas) == 4 and 0 < sum(m.success for m in metas) < 4
    assert json.loads(robotrl("data", "info", store).stdout)["by_source"] == {"demo": 4}


def test_record_gives_up_naming_the_success_rate(tmp_path, hard_reach, robotrl):
    store = tmp_path / "random.zarr"
    res = robotrl("record", "--env", REACH, "--config", hard_reach, "--policy", "random", "--episodes", "2",
                  "--max-episodes", "3", "--out", store, "--quiet")
    assert res.returncode == 1
    assert "gave up after 3 episodes (--max-episodes) with" in res.stderr and "of 2 successful demos" in res.stderr
    assert "the policy succeeds in" in res.stderr and "--keep-failures" in res.stderr and "Traceback" not in res.stderr
    assert all(m.success for m in EpisodeStore(store).metas())  # whatever it stored are successes
