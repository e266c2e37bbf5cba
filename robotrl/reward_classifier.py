"""A binary success classifier on camera images (+ optional state) that serves as the reward of any task.

HIL-SERL's recipe: label frames success / not-success (here the per-step success of an episode store: an
operator's labels where an episode has them, else the env's own truth/success -- in the twin only), train a
small CNN with DrQ shifts and class balancing, split train / validation by *episode* (neighbouring frames are
near-duplicates, a per-frame split would leak), then calibrate the decision threshold on the validation set for
high precision: a false positive is a reward the policy will learn to hack, a false negative only slows learning
down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from robotrl.data.store import EpisodeStore, data_key
from robotrl.learners.networks import ObsEncoder, mlp


class SuccessClassifier(nn.Module):
    def __init__(self, obs_space: gym.spaces.Dict, keys: list[str], hidden: int = 256):
        super().__init__()
        self.keys = sorted(keys)
        self.encoder = ObsEncoder(gym.spaces.Dict({k: obs_space[k] for k in self.keys}))
        self.head = nn.Sequential(mlp(self.encoder.out_dim, hidden, 1, layer_norm=True), nn.Linear(hidden, 1))
        self.threshold = 0.5

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Success logits, shape (B,)."""
        return self.head(self.encoder({k: obs[k] for k in self.keys})).squeeze(-1)

    @torch.inference_mode()
    def probability(self, obs: dict[str, np.ndarray]) -> float:
        batch = {k: torch.as_tensor(np.asarray(obs[k]))[None] for k in self.keys}
        return float(torch.sigmoid(self(batch))[0])

    def save(self, path: str | Path, obs_space: gym.spaces.Dict) -> None:
        torch.save({"keys": self.keys, "state_dict": self.state_dict(), "threshold": self.threshold,
                    "spaces": {k: (obs_space[k].shape, str(obs_space[k].dtype)) for k in self.keys}}, path)

    @classmethod
    def load(cls, path: str | Path) -> "SuccessClassifier":
        blob = torch.load(path, map_location="cpu", weights_only=False)
        space = gym.spaces.Dict({k: _box(shape, dtype) for k, (shape, dtype) in blob["spaces"].items()})
        model = cls(space, blob["keys"])
        model.load_state_dict(blob["state_dict"])
        model.threshold = float(blob["threshold"])
        return model.eval()


@dataclass
class ClassifierReport:
    threshold: float
    val_accuracy: float
    val_precision: float
    val_recall: float
    n_train: int
    n_val: int
    positives: int


def load_frames(store: EpisodeStore, keys: list[str], prefer: tuple[str, ...] = ("operator", "truth")
                ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Every row of every episode: observations under ``keys``, the success label (per episode from the first
    provenance in ``prefer`` that labelled it per step), the episode index."""
    missing = [k for k in keys if data_key(k) not in store.keys]
    if missing:
        raise ValueError(f"{store.path}: no data/{data_key(missing[0])} for classifier key {missing[0]!r}; keys: {store.obs_keys}")
    obs: dict[str, list] = {k: [] for k in keys}
    labels, episode = [], []
    for i in range(store.n_episodes):
        try:
            success, _ = store.step_success(i, prefer)
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]}; record with `robotrl record` or label it (EpisodeStore.add_label)") from None
        rows = store.episode(i, [data_key(k) for k in keys])
        for k in keys:
            obs[k].append(rows[data_key(k)])
        labels.append(success)
        episode.append(np.full(len(success), i))
    return {k: np.concatenate(v) for k, v in obs.items()}, np.concatenate(labels).astype(np.float32), np.concatenate(episode)


def train_classifier(store: EpisodeStore, keys: list[str], steps: int = 1000, batch_size: int = 128, val_fraction: float = 0.2,
                     min_precision: float = 0.95, lr: float = 3e-4, seed: int = 0, progress: bool = True) -> tuple[SuccessClassifier, ClassifierReport]:
    obs, labels, episode = load_frames(store, keys)
    if labels.sum() == 0 or labels.sum() == len(labels):
        raise ValueError(f"{store.path}: labels are all {'positive' if labels.sum() else 'negative'}; need both classes")
    rng = np.random.default_rng(seed)
    episodes = rng.permutation(store.n_episodes)
    val_eps = set(episodes[: max(1, int(round(val_fraction * store.n_episodes)))].tolist())
    is_val = np.isin(episode, list(val_eps))
    tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    space = gym.spaces.Dict({k: _box(v.shape[1:], str(v.dtype)) for k, v in obs.items()})
    torch.manual_seed(seed)
    model = SuccessClassifier(space, keys)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    pos = labels[tr].sum()
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(tr) - pos) / max(pos, 1.0)))  # class balance
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(steps), desc="reward classifier", unit="step", disable=not progress):
        idx = tr[rng.integers(0, len(tr), batch_size)]
        batch = model.encoder.augment({k: torch.as_tensor(v[idx]) for k, v in obs.items()}, pad=4, generator=gen)
        loss = loss_fn(model(batch), torch.as_tensor(labels[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.inference_mode():
        probs = torch.cat([torch.sigmoid(model({k: torch.as_tensor(v[va[s : s + 512]]) for k, v in obs.items()}))
                           for s in range(0, len(va), 512)]).numpy()
    model.threshold = calibrate_threshold(probs, labels[va], min_precision)
    pred, y = probs >= model.threshold, labels[va] > 0.5
    tp = float((pred & y).sum())
    report = ClassifierReport(
        threshold=model.threshold, val_accuracy=float((pred == y).mean()),
        val_precision=tp / max(pred.sum(), 1), val_recall=tp / max(y.sum(), 1),
        n_train=len(tr), n_val=len(va), positives=int(labels.sum()),
    )
    return model, report


def calibrate_threshold(probs: np.ndarray, labels: np.ndarray, min_precision: float) -> float:
    """The lowest threshold whose validation precision reaches ``min_precision`` (most recall at that
    precision); if none does, the one with the best F1."""
    y = labels > 0.5
    candidates = np.unique(np.concatenate([probs, [0.5]]))
    best_f1, best_f1_t = -1.0, 0.5
    for t in candidates:
        pred = probs >= t
        tp = (pred & y).sum()
        precision, recall = tp / max(pred.sum(), 1), tp / max(y.sum(), 1)
        if pred.sum() and precision >= min_precision:
            return float(t)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        if f1 > best_f1:
            best_f1, best_f1_t = f1, float(t)
    return best_f1_t


class ClassifierReward(gym.Wrapper):
    """Replaces the task's reward and success with the classifier's: reward 1 and success when
    P(success | obs) >= threshold. With ``terminate``, a detected success ends the episode (HIL-SERL)."""

    def __init__(self, env: gym.Env, classifier: SuccessClassifier, terminate: bool = True):
        super().__init__(env)
        self.classifier, self.terminate = classifier, terminate

    def step(self, action):
        obs, task_reward, terminated, truncated, info = self.env.step(action)
        p = self.classifier.probability(obs)
        success = p >= self.classifier.threshold
        # The env's own verdict stays beside the classifier's (the episode store keeps them apart).
        info = {**info, "task_success": info.get("success"), "task_reward": float(task_reward), "success": success,
                "success_probability": p}
        return obs, float(success), bool(terminated or (success and self.terminate)), truncated, info


def _box(shape, dtype: str) -> gym.spaces.Box:
    if np.dtype(dtype) == np.uint8:
        return gym.spaces.Box(0, 255, tuple(shape), np.uint8)
    return gym.spaces.Box(-np.inf, np.inf, tuple(shape), np.dtype(dtype))
