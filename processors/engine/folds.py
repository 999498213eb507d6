"""Which rows train and which rows validate, decided once per job.

Rows are first split into *search* rows (80%) and *guard* rows (20%, stratified
for classification). Guard rows are never used to rank or choose a feature.

* ``screen``  - 1 repeat of K-fold over search rows. Its out-of-fold baseline
  predictions are the starting point of the cheap screening stage.
* ``confirm`` - 4 more repeats of K-fold over search rows (new shuffles). Full
  LightGBM refits with and without a candidate; the paired per-split differences
  give lift, CI and p-value, and the greedy selection runs on these splits. Each
  repeat is one stage of successive halving (see `evaluation._confirm`), so only
  candidates still ahead pay for the later ones.
* ``guard``   - the guard rows in two halves; each split trains on every other
  row and validates on one half. Features chosen in a round must still beat the
  baseline here, or they are dropped (harm guard). Because screening picks the
  best of hundreds of candidates on the search rows, a lucky noise feature looks
  good on *any* partition of those rows; only unseen rows expose it.

K=5 trains on 80% of the search rows (close to the external protocol). Twenty
confirm splits rather than ten: lifts of 2-3% on a table of a thousand rows have
p of 0.1-0.2 over ten splits, and the halving keeps the extra fits for the few
candidates that are still ahead.

`fits` lists the reference-row masks the execution stage computes each
candidate for: one per split (its training part), then all rows last (what the
final model and production use). Column ``fit_index_for_split(i)`` of a
candidate array holds the values fitted on split i's training rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Role = Literal["screen", "confirm", "guard"]
Split = tuple[np.ndarray, np.ndarray]

ROLE_REPEATS: tuple[tuple[Role, int], ...] = (("screen", 1), ("confirm", 4), ("guard", 1))
"""Repeats per role; the guard "repeat" is the two halves of the guard rows."""


@dataclass(frozen=True)
class FoldPlan:
    """Splits (train_idx, valid_idx) with a role each, and the fit masks for candidates."""

    splits: tuple[Split, ...]
    roles: tuple[Role, ...]
    fits: tuple[np.ndarray, ...]
    n_folds: int
    seed: int

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

        The others (confirm and guard splits) are computed only for the few candidates
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
    if task == "classification":
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
    task: Literal["classification", "regression"],
    seed: int,
    *,
    n_folds: int = 5,
    guard_fraction: float = 0.2,
) -> FoldPlan:
    """Search/guard row split, then screen (1xK), confirm (2xK) and guard (2) splits."""
    y = np.asarray(y)
    n = int(y.shape[0])
    if task == "classification":
        minority = int(np.bincount(y.astype(np.int64)).min())
        n_folds = min(n_folds, max(2, int(minority * (1 - guard_fraction))))
    n_folds = max(2, min(n_folds, n // 4))
    # 5 parts of guard_fraction each; part 0 becomes the guard rows.
    parts = max(2, round(1 / guard_fraction))
    search_pos, guard_pos = _kfold(y, task, parts, seed * 7919 + 17)[0]
    splits: list[Split] = []
    roles: list[Role] = []
    for repeat, (role, count) in enumerate(ROLE_REPEATS[:2]):
        for r in range(count):
            state = seed * 1000 + repeat * 10 + r
            for tr, va in _kfold(y[search_pos], task, n_folds, state):
                splits.append((search_pos[tr], search_pos[va]))
                roles.append(role)
    for _, half_va in _kfold(y[guard_pos], task, 2, seed * 1000 + 99):
        valid = guard_pos[half_va]
        train = np.setdiff1d(np.arange(n), valid)
        splits.append((train.astype(np.int64), np.sort(valid).astype(np.int64)))
        roles.append("guard")
    fits: list[np.ndarray] = []
    for train_idx, _ in splits:
        mask = np.zeros(n, dtype=bool)
        mask[train_idx] = True
        fits.append(mask)
    fits.append(np.ones(n, dtype=bool))
    return FoldPlan(splits=tuple(splits), roles=tuple(roles), fits=tuple(fits), n_folds=n_folds, seed=seed)
