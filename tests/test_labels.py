"""The operator's labels: a scripted labeller that plays the operator, and `robotrl label`."""

import numpy as np
import pytest

from robotrl.cli import main
from robotrl.data import EpisodeMeta, EpisodeRecorder, EpisodeStore
from robotrl.labels import ScriptedOperator, parse_rows
from robotrl.reward_classifier import reaction_band


def synthetic_store(path, episodes=12, steps=20, image=0):
    """Episodes of ``steps`` steps; even ones succeed from step 8 + e % 4 on (the truth says so, and state/x and
    the image's brightness show it), odd ones never do. ``image``: side of an images/front frame (0: none)."""
    store = EpisodeStore(path, mode="a")
    rec = EpisodeRecorder(store)
    rng = np.random.default_rng(0)

    def obs(win):
        o = {"state/x": np.array([float(win), 0.0], np.float32) + rng.normal(0, 0.05, 2).astype(np.float32)}
        if image:
            o["images/front"] = np.full((image, image, 3), 200 if win else 40, np.uint8) + rng.integers(0, 20, (image, image, 3)).astype(np.uint8)
        return o

    for e in range(episodes):
        onset = 8 + e % 4 if e % 2 == 0 else steps + 1
        rec.start(obs(False))
        for t in range(steps):
            win = t + 1 >= onset  # the observation step t leads to
            rec.step(np.zeros(2, np.float32), float(win), obs(win), False, success=win)
        rec.finish(EpisodeMeta(source="online", task="synthetic", success=bool(win), seed=e))
    return store


def recorded_bytes(path):
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*"))
            if f.is_file() and f.relative_to(path).parts[0] not in ("labels", ".labels.lock", ".writer.lock")}


def test_scripted_operator_labels_as_a_human_within_its_budget(tmp_path):
    path = tmp_path / "s.zarr"
    synthetic_store(path, episodes=12).close()
    before = recorded_bytes(path)
    store = EpisodeStore(path, mode="label")
    op = ScriptedOperator(delay=(2, 4), miss_rate=0.1, max_episodes=8, seed=3)
    report = op.label(store)
    assert recorded_bytes(path) == before  # labels never rewrite what was recorded
    assert [lab.episode for lab in report.labelled] == list(range(8)) and report.unlabelled == 4
    labels = store.labels()
    assert len(labels) == 8 and {lab.source for lab in labels} == {"operator"}
    for lab in report.labelled:
        judged = store.judgements(lab.episode)
        truth, operator = judged["truth"], judged["operator"]
        assert operator.success == truth.success  # the outcome the operator saw
        if not truth.success:
            assert operator.steps is None and lab.frames == 0  # a failure: its outcome only
            continue
        onset = int(np.argmax(truth.steps))
        marked = np.flatnonzero(operator.steps)
        assert 2 <= lab.delay <= 4 and marked[0] >= onset + 2  # a human's delay: a few rows late
        assert marked[-1] == len(truth.steps) - 1 or not operator.steps[-1]  # held to the end (a miss aside)
        assert not operator.steps[:onset + lab.delay].any() and truth.steps[operator.steps].all()  # never before it saw success
    # Misses: over several episodes some success frames after the delay go unmarked.
    missed = sum(int((~store.judgements(lab.episode)["operator"].steps[onset:]).sum())
                 for lab in report.labelled if lab.frames
                 for onset in [int(np.argmax(store.judgements(lab.episode)["truth"].steps)) + lab.delay])
    assert missed > 0
    # Again: the labelled episodes are skipped, the budget labels the rest.
    again = ScriptedOperator(max_episodes=8, seed=3).label(store)
    assert again.skipped == 8 and [lab.episode for lab in again.labelled] == [8, 9, 10, 11]


def test_the_operator_marks_every_run_of_success_it_sees_a_reaction_time_late():
    """A cube lifted, dropped and lifted again: both lifts are marked (the first would otherwise teach the classifier
    that a lifted cube is a failure), each from the operator's delay on."""
    seen = np.array([0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1], bool)
    marks, delay = ScriptedOperator(delay=(1, 1), miss_rate=0.0).marks(seen, episode=0)
    assert delay == 1 and np.flatnonzero(marks).tolist() == [3, 4, 5, 9, 10, 11, 12]
    marks, delay = ScriptedOperator(delay=(5, 5), miss_rate=0.0).marks(seen, episode=0)
    # Every run briefer than the reaction time: the key goes down 5 rows after the first began, when it is over (one
    # mark, whose guard sets the run's frames aside rather than teach them as failures); the second run's press
    # would come after the episode ended.
    assert delay == 5 and np.flatnonzero(marks).tolist() == [7]
    episode = np.zeros(len(seen), np.int64)
    assert np.flatnonzero(reaction_band(marks.astype(np.float32), episode, guard=5)).tolist() == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    assert not ScriptedOperator(delay=(5, 5), miss_rate=0.0).marks(np.zeros(13, bool), episode=0)[0].any()


def test_scripted_operator_is_deterministic_and_keeps_a_frame_budget(tmp_path):
    got = []
    for run in range(2):
        path = tmp_path / f"s{run}.zarr"
        synthetic_store(path, episodes=6).close()
        store = EpisodeStore(path, mode="label")
        report = ScriptedOperator(max_frames=12, seed=7).label(store)
        assert 0 < report.frames <= 12
        got.append([(lab.episode, lab.success, None if lab.steps is None else lab.steps.tolist()) for lab in store.labels()])
        # Over the frame budget a success is labelled by its outcome only.
        assert any(lab.success and lab.frames == 0 for lab in report.labelled)
    assert got[0] == got[1]
    path = tmp_path / "s2.zarr"
    synthetic_store(path, episodes=6).close()
    store = EpisodeStore(path, mode="label")
    ScriptedOperator(max_frames=12, seed=8).label(store)
    assert [None if lab.steps is None else lab.steps.tolist() for lab in store.labels()] != [g[2] for g in got[0]]


def test_parse_rows():
    assert np.flatnonzero(parse_rows("2-4,7", 10)).tolist() == [2, 3, 4, 7]
    with pytest.raises(ValueError, match="within 0-9"):
        parse_rows("5-10", 10)
    with pytest.raises(ValueError, match="FIRST-LAST"):
        parse_rows("a-b", 10)


def test_robotrl_label_adds_a_label_without_changing_recorded_data(tmp_path, capsys):
    path = tmp_path / "s.zarr"
    synthetic_store(path, episodes=4).close()
    before = recorded_bytes(path)
    assert main(["label", str(path), "--episode", "1", "--success", "yes", "--steps", "15-20"]) == 0
    out = capsys.readouterr().out
    assert "episode 1" in out and "6 of 21 rows" in out
    assert main(["label", str(path), "--episode", "2", "--success", "no"]) == 0
    assert recorded_bytes(path) == before
    store = EpisodeStore(path)
    op = store.judgements(1)["operator"]
    assert op.success is True and np.flatnonzero(op.steps).tolist() == list(range(15, 21))
    assert store.judgements(2)["operator"].success is False and store.judgements(2)["operator"].steps is None
    # Mistakes fail in one line, adding nothing.
    assert main(["label", str(path), "--episode", "9", "--success", "no"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["label", str(path), "--episode", "0", "--steps", "0-21"]) == 2
    assert main(["label", str(path), "--episode", "0"]) == 2
    assert len(EpisodeStore(path).labels()) == 2
    # The scripted operator labels what is left.
    assert main(["label", str(path), "--scripted", "--seed", "1"]) == 0
    assert "labelled 2 episodes" in capsys.readouterr().out
    assert recorded_bytes(path) == before and len(EpisodeStore(path).labels()) == 4
