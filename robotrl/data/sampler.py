"""Window (sequence) sampling over episodes, and the train / validation split by episode.

A window is ``horizon`` consecutive rows of one episode, as diffusion_policy's SequenceSampler cuts them: it may
start up to ``pad_before`` rows before the episode's first row and end up to ``pad_after`` rows after its last
one. Rows outside the episode are padding -- a repeat of the episode's first / last row ("edge") or zeros
("zeros"), per column -- and ``is_pad`` marks them. A window never crosses into another episode. For a diffusion
policy with ``n_obs_steps`` observations and ``n_action_steps`` executed actions: ``pad_before = n_obs_steps - 1``,
``pad_after = n_action_steps - 1``.

Split by episode, never by row: neighbouring rows are near-duplicates, so a per-row split leaks the validation set
into training.
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np

from robotrl.data.store import EpisodeStore, data_key

Padding = Literal["edge", "zeros"]


def split_episodes(n_episodes: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) episode indices: sorted, disjoint, together all of ``range(n_episodes)``; the same for
    the same arguments. ``round(val_fraction * n)`` validation episodes, at least one (and one left to train on)
    when ``val_fraction > 0`` and there are two or more episodes."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * n_episodes))
    if val_fraction > 0 and n_episodes >= 2:
        n_val = min(max(n_val, 1), n_episodes - 1)
    is_val = np.zeros(n_episodes, bool)
    is_val[np.random.default_rng(seed).permutation(n_episodes)[:n_val]] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


class WindowSampler:
    """Windows over episodes stored back to back: ``columns`` (name -> rows of all episodes concatenated) and
    ``episode_ends`` (end row, exclusive, of each), as in the episode store. ``episodes``: only windows of these
    episodes (e.g. one side of ``split_episodes``). ``padding``: "edge", "zeros", or a per-column mapping (columns
    it does not name pad by edge). ``sampler[i]`` is window i; ``sample(n, rng)`` a batch of n, each column shaped
    (n, horizon, ...), with ``is_pad`` (n, horizon)."""

    def __init__(self, columns: Mapping[str, np.ndarray], episode_ends: Sequence[int], horizon: int, pad_before: int = 0,
                 pad_after: int = 0, padding: Padding | Mapping[str, Padding] = "edge", episodes: Sequence[int] | None = None):
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if not (0 <= pad_before < horizon and 0 <= pad_after < horizon):
            raise ValueError(f"pad_before ({pad_before}) and pad_after ({pad_after}) must be in [0, horizon={horizon}): "
                             "every window keeps at least one real row")
        modes = dict(padding) if isinstance(padding, Mapping) else {k: padding for k in columns}
        bad = {k: m for k, m in modes.items() if m not in ("edge", "zeros") or k not in columns}
        if bad:
            raise ValueError(f"padding {bad}: each is 'edge' or 'zeros', for a column of {sorted(columns)}")
        if "is_pad" in columns:
            raise ValueError("a column named 'is_pad' would hide the padding mask; rename it")
        self.columns, self.horizon = dict(columns), horizon
        self.pad_before, self.pad_after = pad_before, pad_after
        self.zeros = [k for k in columns if modes.get(k, "edge") == "zeros"]
        ends = np.asarray(episode_ends, np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        chosen = np.arange(len(ends)) if episodes is None else np.asarray(episodes, np.int64)
        start, length, offset, episode = [], [], [], []
        for e in chosen:
            n = int(ends[e] - starts[e])
            first, last = -pad_before, n - horizon + pad_after  # window start offsets within the episode
            if last < first:
                continue  # too short for even one window
            k = last - first + 1
            start.append(np.full(k, starts[e]))
            length.append(np.full(k, n))
            offset.append(np.arange(first, last + 1))
            episode.append(np.full(k, e))
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
        self._start, self._len, self._offset, self.episode = cat(start), cat(length), cat(offset), cat(episode)

    @classmethod
    def from_store(cls, store: EpisodeStore, horizon: int, keys: Sequence[str] | None = None, pad_before: int = 0,
                   pad_after: int = 0, padding: Padding | Mapping[str, Padding] = "edge",
                   episodes: Sequence[int] | None = None, final_row: bool = False) -> "WindowSampler":
        """Windows over a store's ``episodes`` (default all), read into memory. ``keys``: observation keys (as the
        env names them, e.g. ``state/ee_pos``) or row keys (``action``, ``truth/success``, ``cost/workspace``);
        default every observation and ``action``. An episode's last row holds only the final observation (its
        action is padding), so it is left out unless ``final_row``: every row of a window then has a real action."""
        keys = [*store.obs_keys, "action"] if keys is None else list(keys)
        row_key = {}
        for k in keys:
            if k in store.keys:
                row_key[k] = k
            elif data_key(k) in store.keys:
                row_key[k] = data_key(k)
            else:
                raise KeyError(f"{store.path}: no column or observation {k!r}; observations {store.obs_keys}, "
                               f"columns {store.keys}")
        chosen = range(store.n_episodes) if episodes is None else [int(e) for e in episodes]
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        ends, total = [], 0
        for e in chosen:
            rows = store.episode(e, sorted(set(row_key.values())))
            n = len(next(iter(rows.values()))) - (0 if final_row else 1)
            for k in keys:
                parts[k].append(rows[row_key[k]][:n])
            total += n
            ends.append(total)
        columns = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
        sampler = cls(columns, ends, horizon, pad_before, pad_after, padding)
        sampler.episode = np.asarray(list(chosen), np.int64)[sampler.episode] if len(sampler.episode) else sampler.episode
        return sampler

    def __len__(self) -> int:
        return len(self._offset)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range ({len(self)} windows)")
        return {k: v[0] for k, v in self.windows(np.array([i % len(self)])).items()}

    def windows(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """The windows ``index``: each column (len(index), horizon, ...), and ``is_pad`` (len(index), horizon)."""
        t = self._offset[index, None] + np.arange(self.horizon)  # row within the episode, may be outside it
        length = self._len[index, None]
        is_pad = (t < 0) | (t >= length)
        rows = (self._start[index, None] + np.clip(t, 0, length - 1)).ravel()
        out = {}
        for k, col in self.columns.items():
            v = np.asarray(col[rows]).reshape(*t.shape, *np.shape(col)[1:])
            if k in self.zeros:
                v[is_pad] = 0
            out[k] = v
        out["is_pad"] = is_pad
        return out

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` windows uniformly with replacement."""
        if not len(self):
            raise ValueError("sample from a WindowSampler without windows (episodes shorter than the horizon allows)")
        return self.windows(rng.integers(0, len(self), n))
