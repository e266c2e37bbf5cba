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

from robotrl.data import EpisodeMeta, EpisodeRecorder, EpisodeStore, StoreError

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
    assert ep["success"].tolist() == [False, False, False, True]  # the label belongs to the row's observation


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
