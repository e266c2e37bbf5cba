"""A binary success classifier on camera images (+ optional state) that serves as the reward of any task.

HIL-SERL's recipe: an operator labels frames success / not-success (``robotrl label``: an episode's outcome and the
frames that show success; in the twin ``robotrl.labels.ScriptedOperator`` plays the operator), a small CNN with DrQ
shifts and class balancing learns from those labels only -- never from the recorded ``truth/`` (the twin's
ground truth, which a robot does not have). Train / calibration / test are split by *episode* (neighbouring frames
are near-duplicates, a per-frame split would leak). The decision threshold is calibrated on the calibration
episodes for high precision: a false positive is a reward the policy will learn to hack, a false negative only
slows learning down. Each further round mines hard negatives (frames scored positive that a label rejects) and
oversamples them. Precision, recall and the confusion are reported on the test episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from robotrl.data.sampler import split_episodes
from robotrl.data.store import LABEL_RESERVED, EpisodeStore, data_key
from robotrl.learners.networks import ObsEncoder, mlp


class SuccessClassifier(nn.Module):
    """``encoder``: a pretrained conv stack (scripts/pretrain_encoder.py; HIL-SERL freezes a pretrained ResNet) kept
    fixed, so training computes each frame's conv features once and fits only the projection and head.
    ``members``: an ensemble (``train_classifier`` cross-fits one member per fold); its probability is the members'
    mean, which one threshold, calibrated on every member's held-out fold, judges."""

    def __init__(self, obs_space: gym.spaces.Dict, keys: list[str], hidden: int = 256, encoder: str | Path | None = None,
                 members: int = 1):
        super().__init__()
        self.keys = sorted(keys)
        self.obs_space = gym.spaces.Dict({k: obs_space[k] for k in self.keys})  # what save() records
        self.encoders = nn.ModuleList(ObsEncoder(self.obs_space, pretrained=encoder, freeze=encoder is not None)
                                      for _ in range(members))
        self.heads = nn.ModuleList(nn.Sequential(mlp(self.encoders[0].out_dim, hidden, 1, layer_norm=True), nn.Linear(hidden, 1))
                                   for _ in range(members))
        self.threshold = 0.5
        self.shared_convs = encoder is not None  # the frozen pretrained convs: the same in every member

    @property
    def encoder(self) -> ObsEncoder:
        """The first member's encoder: with a frozen pretrained conv stack, every member's convs are the same."""
        return self.encoders[0]

    def member_logits(self, obs: dict[str, torch.Tensor], member: int) -> torch.Tensor:
        """One member's success logits, shape (B,)."""
        return self.heads[member](self.encoders[member]({k: obs[k] for k in self.keys})).squeeze(-1)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Success logits (B,): of the members' mean probability, in log space so confident frames keep apart."""
        if len(self.heads) == 1:
            return self.member_logits(obs, 0)
        if self.shared_convs:  # each frame's conv features once, not once per member
            obs = {**obs, **{k: self.encoder.cnns[k.replace(".", "_")].features(obs[k]) for k in self.encoder.image_keys
                             if obs[k].dim() == 4}}
        logits = torch.stack([self.member_logits(obs, m) for m in range(len(self.heads))])
        return torch.logsumexp(nn.functional.logsigmoid(logits), 0) - torch.logsumexp(nn.functional.logsigmoid(-logits), 0)

    @torch.inference_mode()
    def probability(self, obs: dict[str, np.ndarray]) -> float:
        batch = {k: torch.as_tensor(np.asarray(obs[k]))[None] for k in self.keys}
        return float(torch.sigmoid(self(batch).double())[0])  # float64: float32 rounds every logit > 17 to 1.0

    def verdicts(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Success (bool) of every row of a batch of observations, at the threshold."""
        rows = len(next(iter(obs.values())))
        return scores(self, obs, np.arange(rows)) >= self.threshold

    def save(self, path: str | Path, obs_space: gym.spaces.Dict | None = None, info: dict | None = None) -> None:
        """Weights, keys, observation shapes and threshold in one file; ``info``: provenance kept beside them
        (e.g. the store and the report), read back with ``torch.load(path)["info"]``."""
        obs_space = self.obs_space if obs_space is None else obs_space
        torch.save({"keys": self.keys, "state_dict": self.state_dict(), "threshold": self.threshold, "members": len(self.heads),
                    "shared_convs": self.shared_convs,
                    "spaces": {k: (tuple(obs_space[k].shape), str(obs_space[k].dtype)) for k in self.keys},
                    "info": info or {}}, path)

    @classmethod
    def load(cls, path: str | Path) -> "SuccessClassifier":
        blob = torch.load(path, map_location="cpu", weights_only=False)
        space = gym.spaces.Dict({k: _box(shape, dtype) for k, (shape, dtype) in blob["spaces"].items()})
        model = cls(space, blob["keys"], members=blob.get("members", 1))
        # files from before ensembles: one member's encoder.* and head.*
        model.load_state_dict({k if "members" in blob else k.replace("encoder.", "encoders.0.", 1).replace("head.", "heads.0.", 1): v
                               for k, v in blob["state_dict"].items()})
        model.threshold, model.shared_convs = float(blob["threshold"]), bool(blob.get("shared_convs", False))
        return model.eval()


LABEL_SOURCES = ("operator",)  # judgements a classifier may learn from: labels, never the recorded truth/ or classifier/


@dataclass
class ClassifierReport:
    """How a trained classifier did on episodes it never trained on. ``val_*`` and ``confusion`` are on the test
    episodes (``evaluated_on`` says "calibration" when too few episodes left any for a test split: the threshold was
    picked on those same frames, so the numbers flatter it)."""

    threshold: float
    val_accuracy: float
    val_precision: float
    val_recall: float
    n_train: int  # frames
    n_val: int  # frames the numbers above are measured on
    positives: int  # labelled success frames, all splits
    confusion: dict[str, int] = field(default_factory=dict)  # tp, fp, fn, tn at the threshold
    episodes: dict[str, int] = field(default_factory=dict)  # labelled episodes per split: train, calibration, test
    split: dict[str, list[int]] = field(default_factory=dict)  # which episodes (store indices) went where
    ambiguous: int = 0  # unmarked frames beside success marks (reaction_band), left out
    hard_negatives: list[int] = field(default_factory=list)  # training frames scored positive that a label rejects, after each round
    rounds: int = 1
    evaluated_on: str = "test"
    sources: tuple[str, ...] = LABEL_SOURCES
    members: int = 1  # > 1: a cross-fitted ensemble (train and calibration episodes pooled into as many folds)

    def __str__(self) -> str:
        c = self.confusion
        return "\n".join([
            f"labels from {', '.join(self.sources)}: {self.positives} success frames; episodes "
            + ", ".join(f"{k} {v}" for k, v in self.episodes.items()) + f" ({self.n_train} training frames; "
            f"{self.ambiguous} unmarked frames within the guard of a success mark left out: the operator's reaction time)",
            f"hard negatives (training frames scored positive that a label rejects) after each round: "
            f"{', '.join(map(str, self.hard_negatives))}; rounds {self.rounds}",
            f"threshold {self.threshold:.3f} (calibrated for precision on the calibration episodes"
            + (f"; {self.members} members cross-fitted: train and calibration pooled, each member calibrated on the "
               "fold it never trained on)" if self.members > 1 else ")"),
            f"held-out {self.evaluated_on} episodes ({self.n_val} frames): precision {self.val_precision:.3f} on "
            f"{c.get('tp', 0) + c.get('fp', 0)} predicted positives, recall {self.val_recall:.3f}, accuracy {self.val_accuracy:.3f}",
            "confusion (rows: label, columns: predicted)   success  not",
            f"  success                                  {c.get('tp', 0):8d} {c.get('fn', 0):4d}",
            f"  not                                      {c.get('fp', 0):8d} {c.get('tn', 0):4d}",
        ])


def load_frames(store: EpisodeStore, keys: list[str], sources: tuple[str, ...] = LABEL_SOURCES
                ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The labelled frames of ``store``: observations under ``keys``, the success label, the episode index.

    Labels only, never the recorded truth/ (the twin's) or classifier/: per episode, the first of ``sources`` that
    labelled it ("operator" also takes "operator:<name>"). Its per-row marks where given (every row judged); else an outcome "failure" makes every row a
    negative and an outcome "success" makes the final row a positive (the other rows are left out: when success
    began is unknown). Episodes no source labelled are left out. Raises ValueError naming the store when none is
    labelled."""
    bad = [s for s in sources if s in LABEL_RESERVED]
    if bad:
        raise ValueError(f"the classifier learns from labels only, not {bad[0]}/ (recorded judgements)")
    missing = [k for k in keys if data_key(k) not in store.keys]
    if missing:
        raise ValueError(f"{store.path}: no data/{data_key(missing[0])} for classifier key {missing[0]!r}; keys: {store.obs_keys}")
    obs: dict[str, list] = {k: [] for k in keys}
    labels, episode = [], []
    for i in range(store.n_episodes):
        judged = store.judgements(i)
        label = next((judged[k] for s in sources for k in judged if k == s or k.startswith(f"{s}:")), None)
        if label is None:
            continue
        n = store.episode_slice(i).stop - store.episode_slice(i).start
        if label.steps is not None:
            rows, y = np.arange(n), np.asarray(label.steps, bool)
        elif label.success is False:
            rows, y = np.arange(n), np.zeros(n, bool)
        elif label.success:
            rows, y = np.array([n - 1]), np.ones(1, bool)
        else:
            continue
        data = store.episode(i, [data_key(k) for k in keys])
        for k in keys:
            obs[k].append(data[data_key(k)][rows])
        labels.append(y)
        episode.append(np.full(len(rows), i))
    if not labels:
        raise ValueError(
            f"{store.path}: none of its {store.n_episodes} episodes has a label from {', '.join(sources)}; the classifier "
            f"learns from labels only, never from truth/. Add them: `robotrl label {store.path} --episode N --success "
            f"yes|no [--steps FIRST-LAST]`, or in the twin `robotrl label {store.path} --scripted`")
    return {k: np.concatenate(v) for k, v in obs.items()}, np.concatenate(labels).astype(np.float32), np.concatenate(episode)


def split_labelled(episode: np.ndarray, labels: np.ndarray, held_out: float, seed: int) -> dict[str, np.ndarray]:
    """Episodes (never frames: neighbours are near-duplicates) into train / calibration / test, stratified by whether
    an episode has a success frame; the held-out episodes of each kind alternate between calibration and test."""
    eps = np.unique(episode)
    has_pos = np.array([labels[episode == e].max() > 0.5 for e in eps])
    parts: dict[str, list] = {"train": [], "calibration": [], "test": []}
    for group in (eps[has_pos], eps[~has_pos]):
        tr, ho = split_episodes(len(group), held_out, seed)
        parts["train"] += group[tr].tolist()
        parts["calibration"] += group[ho][0::2].tolist()
        parts["test"] += group[ho][1::2].tolist()
    return {k: np.array(sorted(v), np.int64) for k, v in parts.items()}


def reaction_band(labels: np.ndarray, episode: np.ndarray, guard: int) -> np.ndarray:
    """The unmarked frames within ``guard`` rows of a success mark, in the same episode: an operator presses
    "success" a reaction time late, lets go early and the held key bounces, so these frames are ambiguous -- they
    look like the success beside them. Left out of training, calibration and the report; without this, precision
    against late labels counts the true successes the operator was slow to mark as false positives."""
    pos = labels > 0.5
    near = np.zeros(len(labels), bool)
    for shift in range(1, guard + 1):
        same = episode[shift:] == episode[:-shift]
        near[:-shift] |= pos[shift:] & same  # a mark within `shift` rows after
        near[shift:] |= pos[:-shift] & same  # a mark within `shift` rows before
    return near & ~pos


def scores(model: SuccessClassifier, obs: dict[str, np.ndarray], idx: np.ndarray, batch: int = 512,
           member: int | None = None) -> np.ndarray:
    """P(success) of frames ``idx``: the model's, or one ``member``'s of an ensemble."""
    model.eval()
    with torch.inference_mode():  # float64 probabilities: in float32 confident frames all tie at 1.0, and calibration
        # for precision then has no threshold between them
        out = []
        for s in range(0, len(idx), batch):
            x = {k: torch.as_tensor(v[idx[s : s + batch]]) for k, v in obs.items()}
            out.append(torch.sigmoid((model(x) if member is None else model.member_logits(x, member)).double()))
    return torch.cat(out).numpy() if out else np.zeros(0)


def hard_negatives(model: SuccessClassifier, obs: dict[str, np.ndarray], labels: np.ndarray, idx: np.ndarray,
                   member: int | None = None, threshold: float | None = None) -> np.ndarray:
    """The frames of ``idx`` the classifier (or one ``member`` at ``threshold``) scores positive that a label rejects."""
    neg = idx[labels[idx] < 0.5]
    return neg[scores(model, obs, neg, member=member) >= (model.threshold if threshold is None else threshold)]


def cross_folds(episodes: np.ndarray, has_success: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """``episodes`` into ``k`` folds, those with a success mark dealt out apart from those without (each fold gets
    its share of both)."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    dealt = 0
    for group in (episodes[has_success], episodes[~has_success]):
        for e in rng.permutation(group):
            folds[dealt % k].append(int(e))
            dealt += 1
    return [np.array(sorted(f), np.int64) for f in folds]


def train_classifier(store: EpisodeStore, keys: list[str], steps: int = 1000, batch_size: int = 128, val_fraction: float = 0.4,
                     min_precision: float = 0.99, lr: float = 3e-4, seed: int = 0, progress: bool = True, rounds: int = 2,
                     hard_fraction: float = 0.25, sources: tuple[str, ...] = LABEL_SOURCES, guard: int = 5,
                     encoder: str | Path | None = None, members: int = 1, recall_slack: float = 0.0
                     ) -> tuple[SuccessClassifier, ClassifierReport]:
    """Train on the operator's labels (``load_frames``): episodes split into train / calibration / test
    (``val_fraction`` held out, half each); ``steps`` updates, the threshold calibrated for ``min_precision`` on the
    calibration episodes (``calibrate_threshold``, with ``recall_slack``); then each further round mines the
    training frames it scores positive that a label rejects (hard negatives) and trains ``steps`` more updates with
    ``hard_fraction`` of every batch drawn from them, and calibrates again. Precision, recall and the confusion are
    measured on the test episodes. The ``guard`` rows beside a success mark that are unmarked are left out everywhere
    (``reaction_band``). With a pretrained ``encoder`` (frozen), each frame's conv features are computed once and
    training fits projection and head only.

    ``members`` > 1 cross-fits an ensemble: the train and calibration episodes pooled and dealt into ``members``
    folds, each member trained on all folds but one, and the threshold calibrated on every member's scores of its
    own held-out fold together -- all non-test episodes calibrate, not a few: with a few, the threshold swings with
    which episodes they are (one brief lift the operator was too slow to mark, scored as the success it looked like,
    can push it to 0.99998 and halve the recall). The ensemble scores the members' mean probability."""
    obs, labels, episode = load_frames(store, keys, sources)
    split = split_labelled(episode, labels, val_fraction, seed)
    clear = ~reaction_band(labels, episode, guard)

    def frames(eps: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(episode, eps) & clear)

    test = frames(split["test"])
    evaluated_on = "test"
    if members > 1:
        pool = np.concatenate([split["train"], split["calibration"]])
        if len(pool) < members:
            raise ValueError(f"{store.path}: {len(pool)} labelled episodes outside the test split, fewer than the "
                             f"{members} ensemble members (folds); label more episodes or use fewer members")
        has_success = np.array([labels[episode == e].max() > 0.5 for e in pool])
        folds = cross_folds(pool, has_success, members, seed)
        parts = [(frames(np.setdiff1d(pool, fold)), frames(fold)) for fold in folds]
    else:
        tr, cal = frames(split["train"]), frames(split["calibration"])
        if not len(test):
            test, evaluated_on = cal, "calibration"
        if not len(cal):
            cal = tr  # too few episodes to hold any out: calibrated on training frames (reported as such)
            evaluated_on, test = "training", tr
        parts = [(tr, cal)]
    space = gym.spaces.Dict({k: _box(v.shape[1:], str(v.dtype)) for k, v in obs.items()})
    torch.manual_seed(seed)
    model = SuccessClassifier(space, keys, encoder=encoder, members=members)
    if encoder is not None:  # frozen convs: their features once per frame, what every update then reads
        obs = {**obs, **{k: f(obs[k]) for k, f in model.encoder.frame_features().items()}}
    mined = np.zeros(rounds, np.int64)
    held_scores, held_labels = [], []
    for m, (tr, cal) in enumerate(parts):
        pos = float(labels[tr].sum())
        if pos == 0 or pos == len(tr):
            raise ValueError(f"{store.path}: the training episodes' labels are all {'positive' if pos else 'negative'}; "
                             "label both successes and failures (more episodes)")
        opt = torch.optim.Adam([p for p in [*model.encoders[m].parameters(), *model.heads[m].parameters()] if p.requires_grad], lr=lr)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(tr) - pos) / max(pos, 1.0)))  # class balance
        rng = np.random.default_rng(seed if m == 0 else [seed, m])
        gen = torch.Generator().manual_seed(seed + m)
        hard = np.zeros(0, np.int64)
        for r in range(rounds):
            n_hard = int(round(hard_fraction * batch_size)) if len(hard) else 0
            model.train()
            desc = f"reward classifier{f', member {m + 1}/{members}' if members > 1 else ''}, round {r + 1}/{rounds}"
            for _ in tqdm(range(steps), desc=desc, unit="step", disable=not progress):
                idx = tr[rng.integers(0, len(tr), batch_size)]
                if n_hard:  # HIL-SERL's hard negatives: the frames the last round wrongly called a success, oversampled
                    idx[:n_hard] = hard[rng.integers(0, len(hard), n_hard)]
                batch = model.encoders[m].augment({k: torch.as_tensor(v[idx]) for k, v in obs.items()}, pad=4, generator=gen)
                loss = loss_fn(model.member_logits(batch, m), torch.as_tensor(labels[idx]))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            held = scores(model, obs, cal, member=m)
            hard = hard_negatives(model, obs, labels, tr, m, calibrate_threshold(held, labels[cal], min_precision, recall_slack))
            mined[r] += len(hard)
        held_scores.append(held)
        held_labels.append(labels[cal])
    model.threshold = calibrate_threshold(np.concatenate(held_scores), np.concatenate(held_labels), min_precision, recall_slack)
    model.eval()
    pred, y = scores(model, obs, test) >= model.threshold, labels[test] > 0.5
    c = {"tp": int((pred & y).sum()), "fp": int((pred & ~y).sum()), "fn": int((~pred & y).sum()), "tn": int((~pred & ~y).sum())}
    report = ClassifierReport(
        threshold=model.threshold, val_accuracy=float((pred == y).mean()) if len(y) else float("nan"),
        val_precision=c["tp"] / max(c["tp"] + c["fp"], 1), val_recall=c["tp"] / max(c["tp"] + c["fn"], 1),
        n_train=len(parts[0][0]), n_val=len(test), positives=int(labels.sum()), confusion=c, ambiguous=int((~clear).sum()),
        episodes={k: len(v) for k, v in split.items()}, split={k: v.tolist() for k, v in split.items()},
        hard_negatives=mined.tolist(), rounds=rounds, evaluated_on=evaluated_on, sources=tuple(sources), members=members,
    )
    return model, report


def calibrate_threshold(probs: np.ndarray, labels: np.ndarray, min_precision: float, recall_slack: float = 0.0) -> float:
    """The lowest threshold whose validation precision reaches ``min_precision`` (the most recall at that precision),
    then raised as far as precision holds and recall falls by at most ``recall_slack``: where recall is flat the
    threshold sits at the high end, away from negatives that score like successes -- a success the operator never
    marked, or a pose no labelled frame showed. If no threshold reaches ``min_precision`` (labels noisier than the
    target allows), the lowest one of the best precision that keeps half the recall -- precision first, not F1: a
    reward that fires where it should not is what the policy learns to find."""
    y = labels > 0.5
    t = np.unique(np.concatenate([probs, [0.5]]))  # candidates, ascending
    predicted = len(probs) - np.searchsorted(np.sort(probs), t, "left")
    tp = y.sum() - np.searchsorted(np.sort(probs[y]), t, "left")
    precision, recall = tp / np.maximum(predicted, 1), tp / max(y.sum(), 1)
    reached = (predicted > 0) & (precision >= min_precision)
    if reached.any():
        lowest = np.argmax(reached)
        return float(t[np.flatnonzero(reached & (recall >= recall[lowest] - recall_slack))[-1]])
    half = recall >= 0.5
    if not half.any():  # no labelled success to calibrate on: a probability's natural cut
        return 0.5
    return float(t[np.argmax(half & (precision == precision[half].max()))])


class ClassifierReward(gym.Wrapper):
    """The env as a robot judges it: reward 1 and success when P(success | obs) >= threshold; with ``terminate``, a
    detected success ends the episode (HIL-SERL), and nothing else does -- the env's own ending (its success or
    failure: ground truth in the twin, which no robot computes) is ignored, so the episode runs on to its time limit
    as on a robot. The env's own verdict is kept in ``info`` (``task_*``) for the store's truth/ columns only."""

    def __init__(self, env: gym.Env, classifier: SuccessClassifier, terminate: bool = True):
        super().__init__(env)
        self.classifier, self.terminate = classifier, terminate

    def step(self, action):
        obs, task_reward, terminated, truncated, info = self.env.step(action)
        p = self.classifier.probability(obs)
        success = p >= self.classifier.threshold
        # The env's own verdict stays beside the classifier's (the episode store keeps them apart).
        info = {**info, "task_success": info.get("success"), "task_reward": float(task_reward), "task_terminated": terminated,
                "success": success, "success_probability": p}
        return obs, float(success), bool(success and self.terminate), truncated, info


def _box(shape, dtype: str) -> gym.spaces.Box:
    if np.dtype(dtype) == np.uint8:
        return gym.spaces.Box(0, 255, tuple(shape), np.uint8)
    return gym.spaces.Box(-np.inf, np.inf, tuple(shape), np.dtype(dtype))
