"""A data-parallel SGD simulation whose loss curves the run-comparison tests log and compare.

Logistic regression on a generated data set, trained by K simulated workers:

- **synchronous SGD**: every step, each worker computes a minibatch gradient at the current
  parameters; the step applies their mean. A step lasts as long as the slowest worker.
- **asynchronous SGD**: each worker reads the parameters, computes its minibatch gradient, and
  applies it the moment it finishes, whatever happened meanwhile: its gradient is *stale* by the
  number of updates other workers applied since it read. An event queue of finish times decides
  who applies next, so staleness comes out of the simulation (about K - 1 on average) rather
  than being set.

Workers' compute times are log-normal and every draw comes from one seeded generator: a run is
reproducible to the bit. A step of either kind is one applied update. The loss logged is the
full-data log loss every ``log_every`` steps, with the simulated wall-clock time and, for async,
the staleness of the update just applied.

What is expected (and what ``tests/api/test_runs_compare.py`` checks through the API): on dense
features async needs several times more steps than sync to reach a loss target (each update uses
one worker's minibatch, computed on old parameters); on sparse features the gap shrinks, since a
stale gradient mostly touches coordinates nobody changed meanwhile (the Hogwild! argument, Niu et
al., NeurIPS 2011).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

Mode = Literal["sync", "async"]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Problem:
    features: FloatArray
    labels: FloatArray

    @classmethod
    def generate(cls, *, rows: int, columns: int, density: float, seed: int) -> Problem:
        """Gaussian features, each present with probability ``density``; labels drawn from a
        logistic model whose weights keep the logits on the same scale at any density."""
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(rows, columns)) * (rng.random((rows, columns)) < density)
        weights = rng.normal(size=columns) * 3.0 / np.sqrt(max(density * columns, 1.0))
        y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-(x @ weights)))).astype(np.float64)
        return cls(x, y)

    def loss(self, w: FloatArray) -> float:
        z = self.features @ w
        return float(np.mean(np.logaddexp(0.0, z) - self.labels * z))

    def gradient(self, w: FloatArray, rows: npt.NDArray[np.int64]) -> FloatArray:
        x, y = self.features[rows], self.labels[rows]
        grad: FloatArray = x.T @ (1.0 / (1.0 + np.exp(-(x @ w))) - y) / len(rows)
        return grad


@dataclass
class Curve:
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    staleness: list[int] = field(default_factory=list)


def train(
    problem: Problem,
    mode: Mode,
    *,
    workers: int = 8,
    batch: int = 16,
    learning_rate: float = 0.5,
    steps: int = 600,
    log_every: int = 5,
    seed: int = 0,
) -> Curve:
    rng = np.random.default_rng(seed)
    rows = len(problem.labels)
    w = np.zeros(problem.features.shape[1])
    curve = Curve()

    def compute_time() -> float:
        return float(rng.lognormal(mean=0.0, sigma=0.5))

    if mode == "sync":
        clock = 0.0
        for step in range(1, steps + 1):
            grads = [problem.gradient(w, rng.integers(0, rows, batch)) for _ in range(workers)]
            clock += max(compute_time() for _ in range(workers))
            w = w - learning_rate * np.mean(grads, axis=0)
            if step % log_every == 0:
                curve.steps.append(step)
                curve.losses.append(problem.loss(w))
                curve.seconds.append(clock)
                curve.staleness.append(0)
        return curve

    # asynchronous: (finish time, worker, version of the parameters it read)
    versions = {0: w}
    queue = [(compute_time(), k, 0) for k in range(workers)]
    heapq.heapify(queue)
    for step in range(1, steps + 1):
        clock, worker, read = heapq.heappop(queue)
        gradient = problem.gradient(versions[read], rng.integers(0, rows, batch))
        w = w - learning_rate * gradient
        versions[step] = w
        heapq.heappush(queue, (clock + compute_time(), worker, step))
        held = {v for _, _, v in queue}
        for version in [v for v in versions if v not in held]:
            del versions[version]
        if step % log_every == 0:
            curve.steps.append(step)
            curve.losses.append(problem.loss(w))
            curve.seconds.append(clock)
            curve.staleness.append(step - 1 - read)
    return curve
