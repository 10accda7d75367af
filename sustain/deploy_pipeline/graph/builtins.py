"""Built-in routers and combiners, written against Seldon's Python-wrapper interface.

Code nodes implement the methods Seldon's Python wrapper calls (``predict``, ``transform_input``,
``transform_output``, ``route``, ``aggregate``, ``send_feedback``), so one class runs in the local runner and,
from an image built with the wrapper, in a cluster. These built-ins follow the same interface:

* :class:`AverageCombiner` — element-wise mean of the children's outputs (Seldon's ``AVERAGE_COMBINER`` was only
  implemented by the retired Java engine, so a cluster runs this class from the code image);
* :class:`EpsilonGreedy` — Seldon's epsilon-greedy bandit router (``components/routers/epsilon-greedy``) with
  its own seeded random generator instead of the global one;
* :class:`RandomABTest` — the executor's ``RANDOM_ABTEST``: the first child with probability ``ratioA``.

>>> AverageCombiner().aggregate([[[0.2, 0.8]], [[0.4, 0.6]]], [[], []]).round(3).tolist()
[[0.3, 0.7]]
>>> router = RandomABTest(ratioA=0.5, seed=0)
>>> [router.route([[1]], []) for _ in range(6)]
[1, 1, 0, 0, 1, 0]
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np


class AverageCombiner:
    """Averages the children's outputs element by element; they must have the same shape."""

    def aggregate(self, features_list: Sequence[Any], feature_names_list: Sequence[Any] | None = None) -> np.ndarray:
        arrays = [np.asarray(x, dtype=float) for x in features_list]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"the average combiner needs outputs of one shape, got {sorted(shapes)}")
        mean: np.ndarray = np.mean(np.stack(arrays), axis=0)
        return mean


class RandomABTest:
    """Child 0 with probability ``ratioA``, else child 1 (the executor's ``abTestRouter``)."""

    def __init__(self, ratioA: float = 0.5, seed: int | None = None) -> None:
        self.ratio_a = float(ratioA)
        self._random = random.Random(seed)

    def route(self, features: Any, feature_names: Any) -> int:
        return 0 if self._random.random() < self.ratio_a else 1


class EpsilonGreedy:
    """Multi-armed bandit: the best branch with probability 1 - epsilon, another branch otherwise."""

    def __init__(self, n_branches: int, epsilon: float = 0.1, seed: int | None = None) -> None:
        if int(n_branches) < 2:
            raise ValueError("n_branches must be at least 2")
        self.n_branches = int(n_branches)
        self.epsilon = float(epsilon)
        self._random = random.Random(seed)
        self.best_branch = self._random.randrange(self.n_branches)
        self.branch_success = [0] * self.n_branches
        self.branch_tries = [0] * self.n_branches
        self.branch_values = [0.0] * self.n_branches

    def route(self, features: Any, feature_names: Any) -> int:
        others = [i for i in range(self.n_branches) if i != self.best_branch]
        return self.best_branch if self._random.random() > self.epsilon else self._random.choice(others)

    def send_feedback(
        self, features: Any, feature_names: Any, reward: float, truth: Any, routing: int | None = None
    ) -> None:
        if routing is None or not 0 <= routing < self.n_branches:
            return
        n = int(np.asarray(features).shape[0]) if np.ndim(features) else 1
        success = int(reward * n)
        self.branch_success[routing] += success
        self.branch_tries[routing] += n
        self.branch_values[routing] = self.branch_success[routing] / self.branch_tries[routing]
        best = max(self.branch_values)
        self.best_branch = self._random.choice([i for i, v in enumerate(self.branch_values) if v == best])
