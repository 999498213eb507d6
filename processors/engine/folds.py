"""Which rows train and which rows validate, decided once per job.

Rows are first split into *search* rows (80%) and *guard* rows (20%, stratified
for classification). Guard rows are never used to rank or shortlist a feature.

* ``screen``  - 1 repeat of K-fold over search rows. Its out-of-fold baseline
  predictions are the starting point of the cheap screening stage.
* ``confirm`` - 4 more repeats of K-fold over search rows (new shuffles). Fast
  LightGBM refits with and without a candidate; the paired per-split differences
  shortlist the *finalists* (see `evaluation`). Each repeat is one stage of
  successive halving (see `evaluation._confirm`), so only candidates still ahead
  pay for the later ones. Nothing is selected on these splits.
* ``final``   - FINAL_REPEATS x K-fold cross-validation of *all* rows (K =
  FINAL_FOLDS, fewer when a class is too rare; guard rows included, so every test
  fold holds rows that screening never saw), stratified for classification, each
  with an inner 20% of its training part for early stopping: the external
  benchmark protocol, i.e. the model a user trains. Only finalists are fitted here;
  their lift, CI and p (corrected repeated k-fold t-test) decide, and are what the
  job reports. `stops[i]` holds the early-stopping rows of final split i.

K=5 trains on 80% of the search rows (close to the external protocol).

`fits` lists the reference-row masks the execution stage computes each
candidate for: one per split (its training part: for a final split, the whole 80%
a user would fit features on), then all rows last (what the final model and
production use). Column ``fit_index_for_split(i)`` of a candidate array holds the
values fitted on split i's training rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Role = Literal["screen", "confirm", "final"]
Split = tuple[np.ndarray, np.ndarray]

ROLE_REPEATS: tuple[tuple[Role, int], ...] = (("screen", 1), ("confirm", 4))
"""K-fold repeats over the search rows per role."""
FINAL_FOLDS = 10
FINAL_REPEATS = 2
"""The final confirmation is 2 x 10-fold cross-validation of all rows (Bouckaert and
Frank's corrected repeated k-fold test; Nadeau-Bengio's variance factor becomes
1/(K*R) + 1/(K-1) = 0.16). It replaced 10 random 80/20 splits (1/10 + 1/4 = 0.35):
on the development tables (credit_data and concrete finalists, 7 jobs, 20 splits of
each kind) a test part half as large spread the per-split lifts only 0.8-1.5x as
much, so the corrected standard error was 0.56-1.0x (median 0.92x) that of the 10
random splits, with 19 degrees of freedom instead of 9, at twice the fits."""
FINAL_STOP_FRACTION = 0.2


@dataclass(frozen=True)
class FoldPlan:
    """Splits (train_idx, valid_idx) with a role each, and the fit masks for candidates."""

    splits: tuple[Split, ...]
    roles: tuple[Role, ...]
    fits: tuple[np.ndarray, ...]
    n_folds: int
    seed: int
    stops: tuple[np.ndarray | None, ...] = ()
    guard_rows: np.ndarray | None = None
    final_folds: int = FINAL_FOLDS
    """K of the final repeated K-fold cross-validation (fewer than FINAL_FOLDS for a rare class)."""

    @property
    def final_fraction(self) -> float:
        """Test rows / all rows of one final split (1/K): the corrected test's n_test/n."""
        return 1.0 / self.final_folds

    def stop_rows(self, i: int) -> np.ndarray | None:
        """Early-stopping rows of split i (final splits), or None: it stops on its validation rows."""
        return self.stops[i] if i < len(self.stops) else None

    @property
    def n_rows(self) -> int:
        return int(self.fits[-1].shape[0])

    @property
    def n_fits(self) -> int:
        return len(self.fits)

    @property
    def full_fit_index(self) -> int:
        """Column holding the candidate fitted on all rows (for the final model)."""
        return len(self.fits) - 1

    def fit_index_for_split(self, i: int) -> int:
        """Column of a candidate array to use for split i (fitted on its training rows)."""
        if not 0 <= i < len(self.splits):
            raise IndexError(f"split {i} out of range 0..{len(self.splits) - 1}")
        return i

    def split_indices(self, role: Role) -> tuple[int, ...]:
        return tuple(i for i, r in enumerate(self.roles) if r == role)

    @property
    def eager_fits(self) -> tuple[int, ...]:
        """Fit columns computed for every fitted candidate: the screen splits and all rows.

        The others (confirm and final splits) are computed only for the few candidates
        that reach confirmation, see `evaluate_round(..., partial=, complete=)`.
        """
        return (*self.split_indices("screen"), self.full_fit_index)

    @property
    def lazy_fits(self) -> tuple[int, ...]:
        eager = set(self.eager_fits)
        return tuple(i for i in range(self.n_fits) if i not in eager)


def _kfold(y: np.ndarray, task: str, folds: int, state: int) -> list[Split]:
    """Shuffled K-fold (stratified by class for classification); sorted index arrays."""
    n = int(y.shape[0])
    rng = np.random.default_rng(state)
    fold_of = np.empty(n, dtype=np.int64)
    if task != "regression":  # binary or multiclass: stratified by class
        # each class dealt round-robin in shuffled order, continuing where the last class stopped
        offset = 0
        for cls in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == cls))
            fold_of[members] = (offset + np.arange(members.shape[0])) % folds
            offset += members.shape[0]
    else:
        fold_of[rng.permutation(n)] = np.arange(n) % folds
    rows = np.arange(n, dtype=np.int64)
    return [(rows[fold_of != k], rows[fold_of == k]) for k in range(folds)]


def plan_folds(
    y: np.ndarray,
    task: Literal["classification", "regression", "multiclass"],
    seed: int,
    *,
    n_folds: int = 5,
    guard_fraction: float = 0.2,
) -> FoldPlan:
    """Search/guard row split, then screen (1xK) and confirm (4xK) splits of the search
    rows, and FINAL_REPEATS x K-fold cross-validation of all rows with inner early-stopping rows."""
    y = np.asarray(y)
    n = int(y.shape[0])
    if task != "regression":
        minority = int(np.bincount(y.astype(np.int64)).min())
        n_folds = min(n_folds, max(2, int(minority * (1 - guard_fraction))))
    n_folds = max(2, min(n_folds, n // 4))
    # 5 parts of guard_fraction each; part 0 becomes the guard rows.
    parts = max(2, round(1 / guard_fraction))
    search_pos, guard_pos = _kfold(y, task, parts, seed * 7919 + 17)[0]
    splits: list[Split] = []
    roles: list[Role] = []
    stops: list[np.ndarray | None] = []
    for repeat, (role, count) in enumerate(ROLE_REPEATS):
        for r in range(count):
            state = seed * 1000 + repeat * 10 + r
            for tr, va in _kfold(y[search_pos], task, n_folds, state):
                splits.append((search_pos[tr], search_pos[va]))
                roles.append(role)
                stops.append(None)
    final_folds = _final_folds(y, task)
    stop_parts = max(2, round(1 / FINAL_STOP_FRACTION))
    for r in range(FINAL_REPEATS):
        for k, (train, test) in enumerate(_kfold(y, task, final_folds, seed * 1000 + 500 + r)):
            _, stop_pos = _kfold(y[train], task, stop_parts, seed * 1000 + 700 + 10 * r + k)[0]
            splits.append((train, test))
            roles.append("final")
            stops.append(train[stop_pos])
    fits: list[np.ndarray] = []
    for train_idx, _ in splits:
        mask = np.zeros(n, dtype=bool)
        mask[train_idx] = True
        fits.append(mask)
    fits.append(np.ones(n, dtype=bool))
    return FoldPlan(
        splits=tuple(splits),
        roles=tuple(roles),
        fits=tuple(fits),
        n_folds=n_folds,
        seed=seed,
        stops=tuple(stops),
        guard_rows=np.sort(guard_pos).astype(np.int64),
        final_folds=final_folds,
    )


def _final_folds(y: np.ndarray, task: str) -> int:
    """FINAL_FOLDS, or fewer so that every test fold holds 2+ rows of each class (4+ rows)."""
    if task != "regression":
        return max(2, min(FINAL_FOLDS, int(np.bincount(y.astype(np.int64)).min()) // 2))
    return max(2, min(FINAL_FOLDS, int(y.shape[0]) // 4))
