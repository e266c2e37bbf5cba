"""A scripted labeller that plays the operator: labels an episode store as a human at the robot would.

On a real robot the reward classifier's labels come from an operator: after (or while) an episode runs, they say
whether it succeeded and hold a "success" key over the frames that show success. In the twin, ``ScriptedOperator``
plays that person so the whole workflow (record -> label -> train classifier -> learn from its reward) runs without
one. It reads the twin's truth (``truth/success``, ``meta/success``) **only as a stand-in for the operator's eyes**:
the truth decides what a human would have seen, never what is written. What it writes is an operator's label
(``store.add_label(..., source="operator")``), with a human's imperfections:

- the outcome of each labelled episode (success yes / no);
- "success" held over every run of frames that show success -- whatever the outcome: a cube lifted and then dropped
  looked like a success while it was up -- each mark starting ``delay`` rows after the run does (a human's reaction
  time, drawn per episode), with single frames occasionally missed (``miss_rate``, the key bounced). (Marking only
  the final run of a success taught the classifier that lifted cubes in failed episodes are failures: 46 of 50 of
  its false positives on held-out episodes were such frames, and precision stalled near 0.87.);
- a run briefer than the reaction time (a cube up for a moment, then dropped) gets one mark, ``delay`` rows after it
  began -- the key goes down when the success is already over and comes straight up. The frames of the run then lie
  within the classifier's guard of that mark (``reaction_band``) and are left out, where unmarked they were negatives
  that looked exactly like success: a few such frames among the calibration episodes pushed a threshold to 0.99998;
- an episode in which the operator saw no success frame is labelled by its outcome only (every row a negative);
- a budget: at most ``max_episodes`` episodes labelled and ``max_frames`` success frames marked in all; once the frame
  budget is spent a success gets its outcome only (the classifier then learns its final frame alone).

Episodes the operator already labelled are skipped, so running it again continues where the budget stopped.
Deterministic under a seed (each episode's draws come from ``(seed, episode)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robotrl.data.store import EpisodeStore

OPERATOR = "operator"


@dataclass(frozen=True)
class OperatorLabel:
    """What the scripted operator added for one episode."""

    episode: int
    success: bool
    frames: int  # success frames marked (0: outcome only)
    delay: int  # rows between the first success frame it saw and its first mark (-1: none marked)


@dataclass
class LabelReport:
    labelled: list[OperatorLabel] = field(default_factory=list)
    skipped: int = 0  # episodes already labelled by the operator
    unlabelled: int = 0  # episodes left unlabelled by the budget

    @property
    def frames(self) -> int:
        return sum(lab.frames for lab in self.labelled)

    def __str__(self) -> str:
        wins = sum(lab.success for lab in self.labelled)
        bare = sum(lab.success and not lab.frames for lab in self.labelled)
        why = (f" ({bare} successes by outcome only: the success was shorter than the operator's delay -- e.g. the "
               "episode ended on success -- or the frame budget was spent; the classifier learns their final frame)"
               if bare else "")
        return (f"labelled {len(self.labelled)} episodes ({wins} success, {len(self.labelled) - wins} failure), "
                f"{self.frames} success frames marked{why}; {self.skipped} already labelled, {self.unlabelled} left "
                "unlabelled by the budget")


@dataclass(frozen=True)
class ScriptedOperator:
    """A human labelling episodes (see the module docstring). ``delay``: (min, max) rows late, inclusive;
    ``miss_rate``: chance that one success frame goes unmarked; budgets: None for no limit."""

    delay: tuple[int, int] = (2, 5)
    miss_rate: float = 0.05
    max_episodes: int | None = None
    max_frames: int | None = None
    seed: int = 0
    source: str = OPERATOR

    def __post_init__(self):
        if not 0 <= self.delay[0] <= self.delay[1]:
            raise ValueError(f"delay {self.delay}: (min, max) rows with 0 <= min <= max")
        if not 0.0 <= self.miss_rate < 1.0:
            raise ValueError(f"miss_rate must be in [0, 1), got {self.miss_rate}")

    def marks(self, seen: np.ndarray, episode: int) -> tuple[np.ndarray, int]:
        """The operator's per-row success marks for an episode whose rows the operator *saw* succeed at ``seen``
        (T + 1 bools): every run of success rows from ``delay`` rows after it starts, with misses. Returns (marks,
        delay)."""
        rng = np.random.default_rng([self.seed, episode])
        delay = int(rng.integers(self.delay[0], self.delay[1] + 1))
        missed = rng.random(len(seen)) < self.miss_rate
        rows = np.arange(len(seen))
        onset = seen & ~np.concatenate([[False], seen[:-1]])
        run_start = np.maximum.accumulate(np.where(onset, rows, 0))  # where the run a seen row belongs to began
        marks = seen & (rows - run_start >= delay) & ~missed
        ends = np.flatnonzero(seen & ~np.append(seen[1:], False)) + 1
        for start, end in zip(np.flatnonzero(onset), ends):
            press = start + delay
            if end <= press < len(seen) and not missed[press]:  # a run briefer than the reaction: one late mark
                marks[press] = True
        return marks, delay if marks.any() else -1

    def label(self, store: EpisodeStore) -> LabelReport:
        """Label ``store``'s episodes in order (opened with mode "label" or "a"); returns what was added."""
        report = LabelReport()
        frames_left = np.inf if self.max_frames is None else self.max_frames
        for i in range(store.n_episodes):
            if any(lab.source == self.source for lab in store.labels(i)):
                report.skipped += 1
                continue
            if self.max_episodes is not None and len(report.labelled) >= self.max_episodes:
                report.unlabelled += 1
                continue
            # The twin's truth stands in for the operator's eyes: what a human watching would have seen.
            eyes = store.judgements(i)["truth"]
            seen = eyes.steps if eyes.steps is not None else np.zeros(store.episode_slice(i).stop - store.episode_slice(i).start, bool)
            success = bool(eyes.success)
            marks, delay = self.marks(np.asarray(seen, bool), i)
            if marks.sum() > frames_left:
                if not success:  # its outcome alone would call the success it showed a failure: not labelled
                    report.unlabelled += 1
                    continue
                marks, delay = np.zeros_like(marks), -1  # over the frame budget: the outcome only
            store.add_label(i, success=success, steps=marks if marks.any() else None, source=self.source)
            n = int(marks.sum())
            frames_left -= n
            report.labelled.append(OperatorLabel(episode=i, success=success, frames=n, delay=delay))
        return report


def parse_rows(text: str, n_rows: int) -> np.ndarray:
    """``"40-52"`` or ``"40-52,60,70-71"`` (rows, inclusive) -> ``n_rows`` bools, True on those rows."""
    marks = np.zeros(n_rows, bool)
    for part in text.split(","):
        part = part.strip()
        try:
            lo, hi = (int(x) for x in part.split("-", 1)) if "-" in part else (int(part), int(part))
        except ValueError:
            raise ValueError(f"--steps {text!r}: rows as FIRST-LAST (inclusive), comma-separated, e.g. 40-52") from None
        if not 0 <= lo <= hi < n_rows:
            raise ValueError(f"--steps {part}: rows must be within 0-{n_rows - 1} (the episode's {n_rows} rows) and "
                             "FIRST <= LAST")
        marks[lo : hi + 1] = True
    return marks
