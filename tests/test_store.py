"""The zarr episode store: crash safety under kill -9, concurrent reading, schema and corruption errors."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zarr

from robotrl.data import EpisodeMeta, EpisodeRecorder, EpisodeStore, StoreError, step_fields

WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from robotrl.data import EpisodeMeta, EpisodeStore
    sys.path.insert(0, {tests!r})
    from test_store import make_episode
    store = EpisodeStore(sys.argv[1], mode="a")
    i = store.n_episodes
    while True:
        store.add_episode(make_episode(i), EpisodeMeta(source="online", task="t", seed=i, ret=float(i)))
        print(i, flush=True)
        i += 1
    """
)


def make_episode(i: int) -> dict[str, np.ndarray]:
    """Deterministic episode ``i``: long enough that a kill often lands mid-write."""
    rng = np.random.default_rng(i)
    n = 40 + i % 7
    return {
        "state.x": rng.normal(size=(n, 5)).astype(np.float32),
        "images.cam": rng.integers(0, 255, size=(n, 48, 48, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        "reward": rng.normal(size=n).astype(np.float32),
        "is_last": np.arange(n) == n - 1,
    }


def assert_episode_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_round_trip_and_layout(tmp_path):
    path = tmp_path / "s.zarr"
    store = EpisodeStore(path, mode="a")
    for i in range(3):
        store.add_episode(make_episode(i), EpisodeMeta(source="demo", task="pick", seed=i, success=i % 2 == 0, ret=1.5))
    reader = EpisodeStore(path)
    assert reader.n_episodes == 3
    for i in range(3):
        assert_episode_equal(reader.episode(i), make_episode(i))
    assert reader.meta(1) == EpisodeMeta(source="demo", task="pick", seed=1, success=False, ret=1.5)
    # diffusion_policy's ReplayBuffer layout, zarr v2 format, images compressed.
    root = zarr.open_group(str(path), mode="r")
    assert root["meta/episode_ends"][:].tolist() == np.cumsum([40, 41, 42]).tolist()
    assert root["data/images.cam"].chunks[1:] == (48, 48, 3)
    assert (path / "data" / "images.cam" / ".zarray").is_file()
    raw = sum(make_episode(i)["images.cam"].nbytes for i in range(3))
    assert reader.summary()["bytes_on_disk"] < raw * 1.2  # random pixels barely compress; real ones do


def test_recorder_writes_t_plus_one_rows(tmp_path):
    store = EpisodeStore(tmp_path / "r.zarr", mode="a")
    rec = EpisodeRecorder(store)
    rec.start({"state/x": np.zeros(2, np.float32)})
    for t in range(3):
        rec.step(np.full(1, t, np.float32), float(t), {"state/x": np.full(2, t + 1, np.float32)}, terminated=t == 2,
                 intervention=t == 1, success=t == 2)
    rec.finish(EpisodeMeta(source="intervention", task="t"))
    ep = store.episode(0)
    assert ep["state.x"][:, 0].tolist() == [0, 1, 2, 3]
    assert ep["action"][:3, 0].tolist() == [0, 1, 2]
    assert ep["is_last"].tolist() == [False, False, False, True]
    assert ep["intervention"].tolist() == [False, True, False, False]
    assert ep["is_terminal"][2]
    assert ep["truth/success"].tolist() == [False, False, False, True]  # the label belongs to the row's observation


@pytest.mark.parametrize("kill_after", [0.01, 0.15, 0.4])
def test_kill_9_mid_episode_keeps_every_completed_episode(tmp_path, kill_after):
    path = tmp_path / "k.zarr"
    EpisodeStore(path, mode="a").add_episode(make_episode(0), EpisodeMeta(source="demo", task="t", seed=0))
    code = WRITER.format(tests=os.path.dirname(__file__))
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    printed = [proc.stdout.readline().strip()]  # the writer is up and has committed once (however slow the machine)
    time.sleep(kill_after)  # ... then it dies at some point inside a later episode's write
    proc.send_signal(signal.SIGKILL)
    printed += proc.communicate()[0].split()
    committed = 1 + len(printed)  # the writer prints after each commit; one more may have committed unprinted
    store = EpisodeStore(path)
    assert store.n_episodes in (committed, committed + 1)
    for i in range(store.n_episodes):
        assert_episode_equal(store.episode(i), make_episode(i))
        assert store.meta(i).seed == i
    # The next writer trims any partial rows and appends cleanly after the last complete episode.
    writer = EpisodeStore(path, mode="a")
    n = writer.n_episodes
    writer.add_episode(make_episode(n), EpisodeMeta(source="online", task="t", seed=n))
    assert_episode_equal(EpisodeStore(path).episode(n), make_episode(n))


def test_reader_sees_only_complete_episodes_while_a_writer_appends(tmp_path):
    path = tmp_path / "c.zarr"
    EpisodeStore(path, mode="a").add_episode(make_episode(0), EpisodeMeta(source="demo", task="t"))
    code = WRITER.format(tests=os.path.dirname(__file__))
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        reader = EpisodeStore(path)
        seen = set()
        deadline = time.time() + 30
        while len(seen) < 4 and time.time() < deadline:
            reader.refresh()
            i = reader.n_episodes - 1
            assert_episode_equal(reader.episode(i), make_episode(i))  # never a half-written episode
            seen.add(i)
        assert len(seen) >= 4, "the reader never saw the writer's new episodes"
    finally:
        proc.kill()
        proc.wait()


def test_one_writer_at_a_time(tmp_path):
    # A second writer's start-up trim would cut the rows the first is committing (seen in CI: a learner that
    # opened the actor's store for append corrupted it), so it is refused with a clear error instead.
    path = tmp_path / "w.zarr"
    first = EpisodeStore(path, mode="a")
    with pytest.raises(StoreError, match="another EpisodeStore is writing"):
        EpisodeStore(path, mode="a")
    assert EpisodeStore(path).n_episodes == 0  # readers are never blocked
    first.close()
    EpisodeStore(path, mode="a").add_episode(make_episode(0), EpisodeMeta(source="demo", task="t"))


def test_schema_mismatch_names_the_key(tmp_path):
    store = EpisodeStore(tmp_path / "m.zarr", mode="a")
    store.add_episode(make_episode(0), EpisodeMeta(source="demo", task="t"))
    bad = make_episode(1)
    bad["images.cam"] = bad["images.cam"][:, :32]
    with pytest.raises(StoreError, match=r"data/images.cam holds uint8\[48, 48, 3\].*uint8\[41, 32, 48, 3\]|data/images.cam holds uint8\[48, 48, 3\].*uint8\[32, 48, 3\]"):
        store.add_episode(bad, EpisodeMeta(source="demo", task="t"))
    with pytest.raises(StoreError, match=r"missing \['reward'\]"):
        store.add_episode({k: v for k, v in make_episode(1).items() if k != "reward"}, EpisodeMeta(source="demo", task="t"))
    with pytest.raises(StoreError, match="source 'human' not allowed"):
        store.add_episode(make_episode(1), EpisodeMeta(source="human", task="t"))
    assert EpisodeStore(tmp_path / "m.zarr").n_episodes == 1  # nothing half-added


def test_episodes_with_and_without_a_takeovers_command_age_share_one_store(tmp_path):
    """teleop/age_ms comes only with a device take-over: an episode without it after one with it, and one with it
    after episodes without, are both stored; the rows that had none read NaN."""
    store = EpisodeStore(tmp_path / "a.zarr", mode="a")
    meta = EpisodeMeta(source="online", task="t")
    episodes = [make_episode(0), make_episode(1), make_episode(2)]
    episodes[1]["teleop/age_ms"] = np.arange(len(episodes[1]["reward"]), dtype=np.float32)
    for rows in episodes:
        store.add_episode(rows, meta)
    store = EpisodeStore(tmp_path / "a.zarr")
    assert store.n_episodes == 3
    assert np.isnan(store.episode(0)["teleop/age_ms"]).all() and np.isnan(store.episode(2)["teleop/age_ms"]).all()
    np.testing.assert_array_equal(store.episode(1)["teleop/age_ms"], episodes[1]["teleop/age_ms"])


def test_missing_foreign_and_corrupt_stores_fail_clearly(tmp_path):
    with pytest.raises(StoreError, match="no episode store here"):
        EpisodeStore(tmp_path / "none.zarr")
    foreign = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="a", zarr_format=2)
    foreign.create_array("x", shape=(3,), dtype="int64")
    with pytest.raises(StoreError, match="meta/episode_ends or data/ is missing"):
        EpisodeStore(tmp_path / "foreign.zarr")
    path = tmp_path / "corrupt.zarr"
    EpisodeStore(path, mode="a").add_episode(make_episode(0), EpisodeMeta(source="demo", task="t"))
    zarr.open_array(str(path / "data" / "reward"), mode="a", zarr_format=2).resize((10,))
    with pytest.raises(StoreError, match=r"data/reward has 10 rows but episodes end at 40"):
        EpisodeStore(path)
    not_zarr = tmp_path / "file.zarr"
    not_zarr.write_text("hello")
    with pytest.raises(StoreError, match="file.zarr"):
        EpisodeStore(not_zarr)


def test_read_only_store_refuses_writes(tmp_path):
    EpisodeStore(tmp_path / "ro.zarr", mode="a").add_episode(make_episode(0), EpisodeMeta(source="demo", task="t"))
    with pytest.raises(StoreError, match="read-only"):
        EpisodeStore(tmp_path / "ro.zarr").add_episode(make_episode(1), EpisodeMeta(source="demo", task="t"))


# -- layout 2: provenance, key mapping, layout 1 reader, windows -------------------------------------------------
def v1_episode(e: int) -> tuple[dict[str, np.ndarray], EpisodeMeta]:
    """Episode ``e`` as layout 1's EpisodeRecorder stored it: T + 1 rows, obs keys with '/' -> '.', the env's success
    in data/success shifted onto the row's observation, no costs, no intervention source."""
    n = 3 + e
    t = np.arange(n + 1)
    rows = {
        "state.x": np.repeat(t[:, None], 3, 1).astype(np.float32) + 10 * e,
        "state.grip%": (t[:, None] * 0.5).astype(np.float32),  # '%' was kept as is by layout 1's mapping
        "images.cam": np.broadcast_to(t[:, None, None, None], (n + 1, 8, 8, 3)).astype(np.uint8),
        "action": np.concatenate([np.full((n, 2), e, np.float32), np.zeros((1, 2), np.float32)]),
        "reward": np.append(t[:-1] * 0.1, 0).astype(np.float32),
        "is_terminal": np.append(t[:-1] == n - 1, True),
        "is_last": t == n,
        "intervention": np.append(t[:-1] == 1, False),
        "success": t == n,
    }
    return rows, EpisodeMeta(source="intervention", task="pick", robot="franka", success=True, ret=float(rows["reward"].sum()), seed=e)


def write_v1_store(path, episodes: int = 2) -> None:
    """A layout 1 store written by hand, exactly as robotrl wrote it before layout 2 (same names, dtypes, chunks,
    compressors and attributes; checked once against a store that code wrote): not through EpisodeStore."""
    import numcodecs

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs["format"] = "robotrl.episode_store/1"
    data, meta = root.create_group("data"), root.create_group("meta")
    eps = [v1_episode(e) for e in range(episodes)]
    for name in eps[0][0]:
        v = np.concatenate([rows[name] for rows, _ in eps])
        image = v.dtype == np.uint8 and v.ndim >= 3
        compressor = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.NOSHUFFLE) if image else \
            numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
        chunk_rows = int(np.clip((2 << 20) // max(1, v[0].nbytes), 1, 65536))
        data.create_array(name, shape=v.shape, chunks=(chunk_rows, *v.shape[1:]), dtype=v.dtype, compressors=compressor)[:] = v
    ends = np.cumsum([len(rows["action"]) for rows, _ in eps])
    meta.create_array("episode_ends", shape=ends.shape, chunks=(4096,), dtype="int64", fill_value=0)[:] = ends
    fields = {"source": "<U16", "task": "<U64", "robot": "<U32", "success": "bool", "ret": "float64", "seed": "int64", "twin": "bool"}
    for name, dtype in fields.items():
        meta.create_array(name, shape=(episodes,), chunks=(4096,), dtype=dtype)[:] = [getattr(m, name) for _, m in eps]


def file_bytes(path, exclude=("labels", ".labels.lock", ".writer.lock")) -> dict[str, bytes]:
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*"))
            if f.is_file() and f.relative_to(path).parts[0] not in exclude}


def test_a_v1_store_reads_through_v2(tmp_path):
    from robotrl.data.store import UNKNOWN_SOURCE, transitions

    path = tmp_path / "v1.zarr"
    write_v1_store(path)
    before = file_bytes(path)
    store = EpisodeStore(path)
    assert store.version == 1 and store.n_episodes == 2
    assert store.obs_keys == ["images/cam", "state/grip%", "state/x"]  # layout 1's mapping, read as layout 1 wrote it
    assert store.limits == []  # layout 1 recorded no costs
    for e in range(2):
        want, meta = v1_episode(e)
        rows = store.episode(e)
        assert store.meta(e) == meta
        # data/success is the env's verdict: it reads as truth/success; the source comes from the flag.
        np.testing.assert_array_equal(rows["truth/success"], want["success"])
        np.testing.assert_array_equal(rows["intervention_source"], np.where(want["intervention"], UNKNOWN_SOURCE, 0))
        assert "success" not in rows and not any(k.startswith(("cost/", "classifier/")) for k in rows)
        got = transitions(rows)  # the learner sees exactly layout 1's observations and steps
        assert sorted(got["obs"]) == ["images/cam", "state/grip%", "state/x"]
        np.testing.assert_array_equal(got["obs"]["state/grip%"], want["state.grip%"])
        np.testing.assert_array_equal(got["action"], want["action"][:-1])
        np.testing.assert_array_equal(got["intervention"], want["intervention"][:-1])
        judged = store.judgements(e)
        assert set(judged) == {"truth"} and judged["truth"].success and judged["truth"].reward is None
    assert store.summary()["acted_by"] == {"policy": 5, "unknown": 2}
    # Labels may be added to a layout 1 store; appending keeps it layout 1 (v2-only columns dropped). Nothing
    # recorded is rewritten.
    EpisodeStore(path, mode="label").add_label(0, success=False)
    assert file_bytes(path) == before
    writer = EpisodeStore(path, mode="a")
    rec = EpisodeRecorder(writer)
    rec.start({"state/x": np.zeros(3, np.float32), "state/grip%": np.zeros(1, np.float32), "images/cam": np.zeros((8, 8, 3), np.uint8)})
    rec.step(np.ones(2, np.float32), 1.0, {"state/x": np.ones(3, np.float32), "state/grip%": np.ones(1, np.float32),
                                          "images/cam": np.ones((8, 8, 3), np.uint8)}, True, success=True,
             source="policy", costs={"workspace": 1.0})
    rec.finish(EpisodeMeta(source="online", task="pick"))
    writer.close()
    assert {k: v for k, v in file_bytes(path).items() if not k.startswith(("data/", "meta/"))} == \
        {k: v for k, v in before.items() if not k.startswith(("data/", "meta/"))}  # still layout 1, no new groups
    reread = EpisodeStore(path)
    assert reread.version == 1 and sorted(p.name for p in (path / "data").iterdir() if not p.name.startswith(".")) == \
        sorted(v1_episode(0)[0])
    assert reread.episode(2)["truth/success"].tolist() == [False, True]
    assert reread.judgements(0)["operator"].success is False and reread.judgements(0)["truth"].success


def test_a_key_with_a_dot_round_trips(tmp_path):
    from robotrl.data.store import data_key, obs_key, transitions

    tricky = ["observation.state", "state/ee_pos", "images/wrist cam", "a%2Eb", "odd/.%/x", "état/ü", "x_y-z"]
    assert [obs_key(data_key(k)) for k in tricky] == tricky
    assert data_key("state/ee_pos") == "state.ee_pos" and data_key("observation.state") == "observation%2Estate"
    assert len({data_key(k) for k in tricky}) == len(tricky)
    path = tmp_path / "keys.zarr"
    rec = EpisodeRecorder(EpisodeStore(path, mode="a"))
    obs = {k: np.full(2, i, np.float32) for i, k in enumerate(tricky)}
    rec.start(obs)
    rec.step(np.zeros(1, np.float32), 0.0, obs, True)
    rec.finish(EpisodeMeta(source="demo", task="t"))
    store = EpisodeStore(path)
    assert store.obs_keys == sorted(tricky)
    got = transitions(store.episode(0))["obs"]
    assert sorted(got) == sorted(tricky)
    for i, k in enumerate(tricky):
        np.testing.assert_array_equal(got[k], np.full((2, 2), i, np.float32))
    assert (path / "data" / "observation%2Estate" / ".zarray").is_file() and (path / "data" / "state.ee_pos").is_dir()
    with pytest.raises(ValueError, match="observation key 'reward' is a step column"):
        EpisodeRecorder(EpisodeStore(tmp_path / "clash.zarr", mode="a")).start({"reward": np.zeros(1)})


def record_judged_episodes(path, n=3, classifier=False):
    """Episodes through the recorder with costs, sources and the env's (truth) judgement; optionally a classifier's."""
    store = EpisodeStore(path, mode="a")
    rec = EpisodeRecorder(store)
    for e in range(n):
        rec.start({"state/x": np.zeros(2, np.float32)})
        for t in range(4):
            info = {"success": t == 3, "costs": {"workspace": float(t == 1), "speed": 0.0},
                    "intervention": t == 2, "intervention_source": "teleop" if t == 2 else None}
            if classifier:
                info = {**info, "task_success": info["success"], "task_reward": float(t == 3), "success": t >= 2,
                        "success_probability": 0.2 + 0.25 * t}
            rec.step(np.full(1, t, np.float32), 0.5 * t, {"state/x": np.full(2, t + 1, np.float32)}, t == 3,
                     **step_fields(info, acted_by="random" if t == 0 else "policy"))
        rec.finish(EpisodeMeta(source="online", task="t", success=True, seed=e))
    return store


def test_recorded_columns_by_provenance(tmp_path):
    from robotrl.data.store import INTERVENTION_SOURCES, transitions

    store = record_judged_episodes(tmp_path / "p.zarr", classifier=True)
    assert store.version == 2 and zarr.open_group(str(tmp_path / "p.zarr"), mode="r").attrs["layout_version"] == 2
    rows = store.episode(0)
    assert store.limits == ["speed", "workspace"]
    assert rows["cost/workspace"].tolist() == [0, 1, 0, 0, 0] and rows["cost/speed"].tolist() == [0] * 5
    codes = rows["intervention_source"][:-1]
    assert [INTERVENTION_SOURCES[c] for c in codes] == ["random", "policy", "teleop", "policy"]
    assert rows["intervention"].tolist() == [False, False, True, False, False]
    # The env's own verdict and the classifier's, kept apart (both belong to the row's observation).
    assert rows["truth/success"].tolist() == [False, False, False, False, True]
    assert rows["truth/reward"].tolist() == [0, 0, 0, 1, 0] and rows["reward"].tolist() == [0, 0.5, 1, 1.5, 0]
    assert rows["classifier/success"].tolist() == [False, False, False, True, True]
    np.testing.assert_allclose(rows["classifier/probability"], [np.nan, 0.2, 0.45, 0.7, 0.95], rtol=1e-6)
    judged = store.judgements(0)
    assert judged["truth"].success and judged["classifier"].success and set(judged) == {"truth", "classifier"}
    ep = transitions(rows)  # the replay sees observations only
    assert list(ep["obs"]) == ["state/x"] and len(ep["action"]) == 4
    assert zarr.open_array(str(tmp_path / "p.zarr" / "data" / "intervention_source"), mode="r").attrs["codes"] == list(INTERVENTION_SOURCES)
    assert store.summary()["acted_by"] == {"policy": 6, "random": 3, "teleop": 3}


def test_labels_added_after_recording_read_back_beside_the_truth(tmp_path):
    path = tmp_path / "l.zarr"
    writer = record_judged_episodes(path)  # the writer stays open: an operator labels while the actor records
    before = file_bytes(path)
    labeller = EpisodeStore(path, mode="label")
    steps = np.array([False, False, True, True, True])
    assert labeller.add_label(1, success=False) == 0
    assert labeller.add_label(1, steps=steps) == 1
    assert labeller.add_label(-1, success=True, source="operator:bob") == 2
    assert file_bytes(path) == before  # data/, truth/, cost/, meta/ and episode_ends: not a byte changed
    reader = EpisodeStore(path)
    judged = reader.judgements(1)
    assert judged["truth"].success is True and judged["truth"].steps.tolist() == [False] * 4 + [True]
    assert judged["operator"].success is False and judged["operator"].steps.tolist() == steps.tolist()
    assert "operator:bob" not in judged and "operator" not in reader.judgements(0)
    bob = reader.judgements(2)["operator:bob"]
    assert bob.success is True and bob.steps is None
    assert [(l.episode, l.source, l.success) for l in reader.labels()] == [(1, "operator", False), (1, "operator", None),
                                                                          (2, "operator:bob", True)]
    labelled, by = reader.step_success(1)  # what a reward classifier learns from: the operator's, else the truth
    assert by == "operator" and labelled.tolist() == steps.tolist() and reader.step_success(0)[1] == "truth"
    # The writer records on, and a new label overrides the operator's outcome only.
    writer.add_episode(writer.episode(0), EpisodeMeta(source="online", task="t"))
    writer.add_label(1, success=True)
    assert EpisodeStore(path).judgements(1)["operator"].success is True
    assert EpisodeStore(path).judgements(1)["operator"].steps.tolist() == steps.tolist()
    # A label writer killed before its commit leaves rows past labels' count: unseen, then overwritten.
    g = zarr.open_group(str(path / "labels"), mode="r+", zarr_format=2)
    g["episode"].resize((10,))
    assert len(EpisodeStore(path).labels()) == 4
    with pytest.raises(ValueError, match="5 bools for episode 0"):
        labeller.add_label(0, steps=np.ones(4, bool))
    with pytest.raises(ValueError, match="not truth or classifier"):
        labeller.add_label(0, success=True, source="truth")
    with pytest.raises(StoreError, match="read-only"):
        reader.add_label(0, success=True)
    with pytest.raises(StoreError, match="opened for labels"):
        labeller.add_episode(writer.episode(0), EpisodeMeta(source="online", task="t"))


def test_window_sampling_pads_at_episode_edges_as_configured():
    from robotrl.data import WindowSampler

    lengths = [3, 5, 1]
    ep_id = np.concatenate([np.full(n, e) for e, n in enumerate(lengths)])
    row = np.concatenate([np.arange(n) for n in lengths])
    cols = {"row": row, "ep": ep_id, "action": np.stack([row, ep_id], 1).astype(np.float32) + 1}
    s = WindowSampler(cols, np.cumsum(lengths), horizon=4, pad_before=1, pad_after=2, padding={"action": "zeros"})
    assert np.bincount(s.episode).tolist() == [3, 5, 1]  # L - horizon + pad_before + pad_after + 1 each (>= 0)
    assert len(s) == 9
    first, last = s[0], s[2]
    assert first["row"].tolist() == [0, 0, 1, 2] and first["is_pad"].tolist() == [True, False, False, False]
    assert first["action"][:, 0].tolist() == [0, 1, 2, 3]  # zeros where padded, the rows elsewhere
    assert last["row"].tolist() == [1, 2, 2, 2] and last["is_pad"].tolist() == [False, False, True, True]
    assert last["action"][:, 0].tolist() == [2, 3, 0, 0]
    batch = s.windows(np.arange(len(s)))
    assert (batch["ep"] == batch["ep"][:, :1]).all()  # no window crosses an episode boundary
    assert (~batch["is_pad"]).any(1).all()  # every window holds a real row
    one_row = batch["row"][s.episode == 2]  # a 1-row episode: its row, edge-padded
    assert one_row.tolist() == [[0, 0, 0, 0]] and batch["is_pad"][s.episode == 2].tolist() == [[True, False, True, True]]
    # Padding off: only whole windows inside an episode; too-short episodes give none.
    plain = WindowSampler(cols, np.cumsum(lengths), horizon=4)
    assert np.bincount(plain.episode, minlength=3).tolist() == [0, 2, 0] and not plain.windows(np.arange(2))["is_pad"].any()
    b = s.sample(64, np.random.default_rng(0))
    assert b["action"].shape == (64, 4, 2) and b["is_pad"].shape == (64, 4)
    with pytest.raises(ValueError, match="pad_before"):
        WindowSampler(cols, np.cumsum(lengths), horizon=4, pad_before=4)


def test_windows_from_a_store_and_a_split_by_episode(tmp_path):
    from robotrl.data import WindowSampler, split_episodes

    train, val = split_episodes(20, val_fraction=0.2, seed=3)
    assert len(val) == 4 and sorted([*train, *val]) == list(range(20)) and not set(train) & set(val)
    again = split_episodes(20, val_fraction=0.2, seed=3)
    assert train.tolist() == again[0].tolist() and val.tolist() == again[1].tolist()
    assert split_episodes(20, 0.2, seed=4)[1].tolist() != val.tolist()
    assert len(split_episodes(2, 0.01)[1]) == 1 and len(split_episodes(5, 0.0)[1]) == 0

    path = tmp_path / "w.zarr"
    store = EpisodeStore(path, mode="a")
    rec = EpisodeRecorder(store)
    for e in range(6):
        rec.start({"state/ee_pos": np.full(2, 100 * e, np.float32)})
        for t in range(3 + e):
            rec.step(np.full(1, 100 * e + t, np.float32), 0.0, {"state/ee_pos": np.full(2, 100 * e + t + 1, np.float32)}, False)
        rec.finish(EpisodeMeta(source="demo", task="t"))
    train, val = split_episodes(store.n_episodes, 0.34, seed=0)
    s = WindowSampler.from_store(EpisodeStore(path), horizon=3, pad_before=1, pad_after=1, episodes=train)
    assert set(s.episode.tolist()) == set(train.tolist())
    batch = s.windows(np.arange(len(s)))
    assert sorted(batch) == ["action", "is_pad", "state/ee_pos"]
    episode_of = batch["state/ee_pos"][:, :, 0] // 100
    assert (episode_of == s.episode[:, None]).all() and set(episode_of.ravel().tolist()) <= set(train.tolist())
    # The last row (final observation, padding action) is left out: every real row has a real action.
    real = ~batch["is_pad"]
    np.testing.assert_array_equal(batch["action"][..., 0][real], batch["state/ee_pos"][..., 0][real])
    with_final = WindowSampler.from_store(EpisodeStore(path), horizon=3, keys=["state/ee_pos", "truth/success"], final_row=True)
    assert len(with_final) == sum(3 + e + 1 - 3 + 1 for e in range(6))


def test_the_actor_records_costs_per_limit_and_who_acted(tmp_path):
    import gymnasium as gym

    from robotrl.data.store import INTERVENTION_SOURCES
    from robotrl.interventions import CubeDrift, InterventionWrapper, ScriptedIntervener
    from robotrl.policies import Stateless
    from robotrl.runtime.actor import Actor, record_episode
    from robotrl.tasks.experts import make_expert

    class Push(Stateless):  # drives the arm down and away: the human steps in, the workspace limit is hit
        def act(self, obs, deterministic=False):
            return np.array([1, 1, -1, 1], np.float32)

    class Log(gym.Wrapper):
        def step(self, action):
            out = self.env.step(action)
            self.infos.append(out[-1])
            return out

    base = gym.make("robotrl/ArmPickCube-v0")
    human = ScriptedIntervener(make_expert(base), CubeDrift(patience=5), hold_steps=5, noise=0.05, seed=0)
    env = Log(InterventionWrapper(base, human))
    env.infos = []
    store = EpisodeStore(tmp_path / "a.zarr", mode="a")
    actor = Actor(env, Push(), store, "robotrl/ArmPickCube-v0", random_steps=3)
    while actor.step() is None:
        pass
    rows, infos = store.episode(0), env.infos
    limits = sorted(infos[0]["costs"])
    assert store.limits == limits and len(limits) >= 3
    for limit in limits:
        assert rows[f"cost/{limit}"][:-1].tolist() == [i["costs"][limit] for i in infos]
    assert rows["cost/workspace"].max() == 1.0  # the push left the workspace
    acted = [INTERVENTION_SOURCES[c] for c in rows["intervention_source"][:-1]]
    want = ["scripted" if i["intervention"] else "random" if t < 3 else "policy" for t, i in enumerate(infos)]
    assert acted == want and {"random", "policy", "scripted"} <= set(acted)
    assert rows["intervention"][:-1].tolist() == [i["intervention"] for i in infos]  # the flag, as before
    assert rows["truth/success"][1:].tolist() == [i["success"] for i in infos]
    # record_episode (robotrl record) records the same columns.
    reach = gym.make("robotrl/ArmReach-v0")
    rec_store = EpisodeStore(tmp_path / "r.zarr", mode="a")
    meta, success = record_episode(reach, make_expert(reach), EpisodeRecorder(rec_store), 0, "demo", "robotrl/ArmReach-v0")
    ep = rec_store.episode(0)
    assert rec_store.limits == limits and set(ep["intervention_source"].tolist()) == {0}
    assert meta.success == success == bool(ep["truth/success"][-1])
