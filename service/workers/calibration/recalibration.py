"""Recalibration maps (Platt, isotonic, temperature) and their K-fold cross-fitting.

A map is fitted on (probabilities, labels) and applied to probabilities. Binary
maps act on the positive-class probability; multiclass Platt and isotonic are
fitted one-vs-rest per class and their outputs renormalised to sum to one (as
scikit-learn's ``CalibratedClassifierCV``; a row whose calibrated values are all
0 becomes uniform), temperature scaling acts on the whole row.

Cross-fitting: rows are dealt to ``folds`` folds, stratified by label and
shuffled with the seeded generator; each fold is predicted by the map fitted on
the other folds, so the "after" scores are out of sample. The parameters
reported are those of the map fitted on all rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression

EPS = float(np.finfo(np.float64).eps)

METHODS = ("platt", "isotonic", "temperature")

Parameters = dict[str, float | list[float]]

# temperature is searched in [1 / _BETA_MAX, 1 / _BETA_MIN]; an optimum outside says the
# scores carry (almost) no information (T -> inf) or are (almost) hard labels (T -> 0)
_BETA_MIN, _BETA_MAX = 1e-3, 1e3

# logistic fits on more rows than 4x this start from the fit on a subsample of this size
_WARM_START_ROWS = 1 << 16


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [eps, 1 - eps] like scikit-learn's log loss (|logit| <= 36)."""
    q = np.clip(p, EPS, 1 - EPS)
    out: np.ndarray = np.log(q / (1 - q))
    return out


# --------------------------------------------------------------------------- logistic fit


@dataclass(frozen=True)
class _LogisticTerms:
    loss: float
    grad: np.ndarray
    hess: np.ndarray


class _LogisticLoss:
    """sum(softplus(eta) - t eta) at eta = a x + b, with its gradient and Hessian in (a, b).

    Evaluated once per Newton step on every row: four work arrays are allocated
    once and reused (fresh temporaries cost as much as the arithmetic on 1M rows).
    """

    def __init__(self, x: np.ndarray, t: np.ndarray) -> None:
        self.x = x
        self.t = t
        self.x_max = float(np.abs(x).max(initial=0.0))
        self._eta, self._e, self._one_plus, self._tmp = (np.empty_like(x) for _ in range(4))

    def __call__(self, a: float, b: float) -> _LogisticTerms:
        x, t, eta, e, one_plus, tmp = self.x, self.t, self._eta, self._e, self._one_plus, self._tmp
        np.multiply(x, a, out=eta)
        eta += b
        if abs(a) * self.x_max + abs(b) < 700:
            # exp(eta) cannot overflow: the short form
            np.exp(eta, out=e)
            np.add(e, 1, out=one_plus)
            loss = float(np.log(one_plus, out=tmp).sum() - t @ eta)
            mu = np.divide(e, one_plus, out=e)
            w = np.divide(mu, one_plus, out=one_plus)  # mu (1 - mu)
        else:
            z = np.exp(-np.abs(eta), out=e)
            loss = float(np.maximum(eta, 0).sum() + np.log1p(z).sum() - t @ eta)
            np.add(z, 1, out=one_plus)
            mu = np.where(eta >= 0, 1.0, z) / one_plus
            w = np.divide(z, one_plus, out=e)
            w /= one_plus  # z / (1 + z)^2 = mu (1 - mu), without cancellation
        r = np.subtract(mu, t, out=tmp)
        grad = np.array([float(x @ r), float(r.sum())])
        w_sum = float(w.sum())
        wx = np.multiply(w, x, out=tmp)
        wx_sum = float(wx.sum())
        hess = np.array([[float(wx @ x), wx_sum], [wx_sum, w_sum]])
        return _LogisticTerms(loss, grad, hess)


def fit_logistic(
    x: np.ndarray, t: np.ndarray, *, start: tuple[float, float] = (1.0, 0.0), max_iter: int = 100
) -> tuple[float, float] | None:
    """Unpenalised logistic regression of targets ``t`` in [0, 1] on one feature ``x``.

    Newton's method with step halving. It starts from ``start`` (the identity
    map, near the optimum for reasonable scores) or, when that fits worse than
    the base rate alone (saturated, ill-conditioned), from ``(0, logit(mean t))``;
    on many rows, from the fit on a systematic subsample, so that the full data
    only sees the last two or three (quadratically converging) steps. Returns
    ``(a, b)`` of ``P(t = 1) = sigmoid(a x + b)``, or None if it did not converge
    (no finite optimum: separable data; callers check separation first).
    """
    t = np.asarray(t, dtype=np.float64)
    if x.size >= 4 * _WARM_START_ROWS:
        every = x.size // _WARM_START_ROWS
        start = fit_logistic(x[::every], t[::every], start=start, max_iter=max_iter) or start
    evaluate = _LogisticLoss(x, t)
    params = np.array(start, dtype=np.float64)
    terms = evaluate(*params)
    base = float(t.mean())
    if 0 < base < 1:
        b0 = float(np.log(base / (1 - base)))
        base_loss = t.size * (float(np.logaddexp(0, b0)) - base * b0)  # closed form at a = 0
        if base_loss < terms.loss:
            params = np.array([0.0, b0])
            terms = evaluate(*params)
    for _ in range(max_iter):
        try:
            step = np.linalg.solve(terms.hess, terms.grad)
        except np.linalg.LinAlgError:
            return None
        if not np.isfinite(step).all():
            return None
        if float(np.abs(step).max()) <= 1e-8 * (1 + float(np.abs(params).max())):
            # converged: the last (tiny, quadratically accurate) step needs no line search
            return float(params[0] - step[0]), float(params[1] - step[1])
        lam = 1.0
        for _ in range(60):
            candidate = params - lam * step
            new = evaluate(*candidate)
            # near the optimum the loss changes below its rounding error: accept those steps
            if new.loss <= terms.loss + 1e-13 * (1 + abs(terms.loss)):
                break
            lam /= 2
        else:
            return None
        params, terms = candidate, new
    return None


def overlapping(x: np.ndarray, hit: np.ndarray) -> bool:
    """Whether the logistic MLE of ``hit`` on ``x`` is finite: the two classes' ranges of x overlap.

    In one dimension the data are (quasi-)separated, and the MLE diverges, exactly
    when every positive's x is >= every negative's x, or <=.
    """
    pos, neg = x[hit], x[~hit]
    if pos.size == 0 or neg.size == 0:
        return False
    return bool(pos.min() < neg.max() and neg.min() < pos.max())


# --------------------------------------------------------------------------- maps


def _one_vs_rest(scores: np.ndarray, labels: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(probability column, hits) for the positive class (binary) or each class (multiclass)."""
    if scores.ndim == 1:
        yield scores, labels.astype(bool)
    else:
        for c in range(scores.shape[1]):
            yield scores[:, c], labels == c


def _combine(columns: list[np.ndarray]) -> np.ndarray:
    if len(columns) == 1:
        return columns[0]
    probs = np.column_stack(columns)
    total = probs.sum(axis=1, keepdims=True)
    out = np.full_like(probs, 1 / probs.shape[1])
    np.divide(probs, total, out=out, where=total > 0)
    return out


class RecalibrationMap(Protocol):
    def apply(self, scores: np.ndarray) -> np.ndarray: ...

    def parameters(self, class_names: Sequence[str]) -> Parameters: ...


@dataclass(frozen=True)
class PlattMap:
    """p' = sigmoid(a logit(p) + b) per column; ``a`` and ``b`` have one entry per column."""

    a: np.ndarray
    b: np.ndarray

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray) -> PlattMap:
        """Platt (1999): logistic fit on the logit with his smoothed targets.

        Targets are ``(N+ + 1) / (N+ + 2)`` for hits and ``1 / (N- + 2)`` for the
        rest (as scikit-learn's sigmoid calibration), which keeps ``a`` and ``b``
        finite on separable or one-class folds; on large sets they are the plain
        logistic fit. Constant scores get ``a = 0`` (only the base rate is known).
        """
        a, b = [], []
        for p, hit in _one_vs_rest(scores, labels):
            x = logit(p)
            n_pos = int(np.count_nonzero(hit))
            t = np.where(hit, (n_pos + 1) / (n_pos + 2), 1 / (hit.size - n_pos + 2))
            fitted = fit_logistic(x, t) if x.size and x.min() < x.max() else None
            if fitted is None:
                base = float(t.mean()) if t.size else 0.5
                fitted = (0.0, float(np.log(base / (1 - base))))
            a.append(fitted[0])
            b.append(fitted[1])
        return cls(np.array(a), np.array(b))

    def apply(self, scores: np.ndarray) -> np.ndarray:
        columns = [scores] if scores.ndim == 1 else list(scores.T)
        return _combine([expit(a * logit(p) + b) for p, a, b in zip(columns, self.a, self.b, strict=True)])

    def parameters(self, class_names: Sequence[str]) -> Parameters:
        if self.a.size == 1:
            return {"a": float(self.a[0]), "b": float(self.b[0])}
        return {"a": self.a.tolist(), "b": self.b.tolist()}


@dataclass(frozen=True)
class IsotonicMap:
    """p' = np.interp(p, x, y) per column (constant beyond the first and last breakpoint)."""

    x: list[np.ndarray]
    y: list[np.ndarray]

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray) -> IsotonicMap:
        xs, ys = [], []
        for p, hit in _one_vs_rest(scores, labels):
            iso = IsotonicRegression(out_of_bounds="clip").fit(p, hit.astype(np.float64))
            xs.append(np.asarray(iso.X_thresholds_, dtype=np.float64))
            ys.append(np.asarray(iso.y_thresholds_, dtype=np.float64))
        return cls(xs, ys)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        # np.interp clamps outside [x[0], x[-1]]: IsotonicRegression(out_of_bounds="clip").predict
        columns = [scores] if scores.ndim == 1 else list(scores.T)
        return _combine([np.interp(p, x, y) for p, x, y in zip(columns, self.x, self.y, strict=True)])

    def parameters(self, class_names: Sequence[str]) -> Parameters:
        if len(self.x) == 1:
            return {"x": self.x[0].tolist(), "y": self.y[0].tolist()}
        out: Parameters = {}
        for name, x, y in zip(class_names, self.x, self.y, strict=True):
            out[f"x.{name}"] = x.tolist()
            out[f"y.{name}"] = y.tolist()
        return out


def _log_probs(scores: np.ndarray) -> np.ndarray:
    """Log-probabilities by class, shape (K, n), p clipped to [eps, 1 - eps]; binary p is (1 - p, p).

    Class-major, so the per-row sums over classes are K - 1 vector additions.
    """
    q = np.clip(scores, EPS, 1 - EPS)
    out: np.ndarray = np.log(np.stack([1 - q, q]) if scores.ndim == 1 else np.ascontiguousarray(q.T))
    return out


@dataclass(frozen=True)
class TemperatureMap:
    """p' = softmax(log p / T) per row; binary: sigmoid(logit(p) / T)."""

    temperature: float

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray) -> TemperatureMap:
        """Minimise the mean NLL of softmax(beta log p) over beta = 1 / T.

        The NLL is convex in beta (a log-sum-exp of linear functions), so a
        safeguarded Newton iteration on its derivative finds the unique optimum
        in a handful of passes over the rows.
        """
        logp = _log_probs(scores)
        n = logp.shape[1]
        if n == 0:
            return cls(1.0)
        d = logp - logp.max(axis=0)  # <= 0: exp(beta d) cannot overflow
        d_true = float(d[labels.astype(np.intp), np.arange(n)].mean())

        def slope_and_curvature(beta: float) -> tuple[float, float]:
            """First and second derivative of the mean NLL in beta."""
            e = np.exp(beta * d)
            total = e.sum(axis=0)
            ed = e * d
            m1 = ed.sum(axis=0) / total  # E_softmax[d] per row
            m2 = (ed * d).sum(axis=0) / total
            return float(m1.mean()) - d_true, float((m2 - m1 * m1).mean())

        lo, hi = _BETA_MIN, _BETA_MAX
        if slope_and_curvature(lo)[0] >= 0:
            return cls(1 / lo)
        if slope_and_curvature(hi)[0] <= 0:
            return cls(1 / hi)
        beta = 1.0
        for _ in range(200):
            g, h = slope_and_curvature(beta)
            if g > 0:
                hi = beta
            elif g < 0:
                lo = beta
            else:
                break
            step = g / h if h > 0 else np.inf
            if abs(step) <= 1e-12 * beta:
                beta -= step
                break
            beta -= step
            if not lo < beta < hi:
                beta = float(np.sqrt(lo * hi))  # bisect on the log scale of the bracket
        return cls(1 / beta)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        z = _log_probs(scores)
        z /= self.temperature
        z -= z.max(axis=0)
        np.exp(z, out=z)
        z /= z.sum(axis=0)
        return z[1] if scores.ndim == 1 else np.ascontiguousarray(z.T)

    def parameters(self, class_names: Sequence[str]) -> Parameters:
        return {"temperature": self.temperature}


_MAPS: dict[str, type[PlattMap] | type[IsotonicMap] | type[TemperatureMap]] = {
    "platt": PlattMap,
    "isotonic": IsotonicMap,
    "temperature": TemperatureMap,
}


def fit_map(method: str, scores: np.ndarray, labels: np.ndarray) -> RecalibrationMap:
    """Fit ``method`` on ``scores`` ((n,) positive-class or (n, K)) and labels (0/1 hits or codes)."""
    return _MAPS[method].fit(scores, labels)


# --------------------------------------------------------------------------- cross-fitting


def fold_ids(labels: np.ndarray, *, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each row: shuffled, then dealt round-robin class by class (stratified)."""
    n = labels.size
    order = rng.permutation(n)
    order = order[np.argsort(labels[order], kind="stable")]
    ids = np.empty(n, dtype=np.intp)
    ids[order] = np.arange(n) % folds
    return ids


def cross_fit(
    method: str, scores: np.ndarray, labels: np.ndarray, *, assignment: np.ndarray, folds: int
) -> tuple[np.ndarray, RecalibrationMap]:
    """Out-of-fold recalibrated probabilities and the map fitted on all rows.

    ``assignment`` is the fold of each row (:func:`fold_ids`); every method of a
    report sees the same folds, so their "after" scores compare like for like.
    """
    out = np.empty_like(scores)
    for k in range(folds):
        held_out = assignment == k
        train = ~held_out
        fitted = fit_map(method, scores[train], labels[train])
        out[held_out] = fitted.apply(scores[held_out])
    return out, fit_map(method, scores, labels)


# --------------------------------------------------------------------------- applying parameters


def apply_recalibration(
    scores: np.ndarray,
    method: str,
    parameters: Parameters,
    *,
    class_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Apply a reported recalibration (``Recalibration.method`` / ``.parameters``) to new scores.

    Parameters
    ----------
    scores : ndarray, shape (n,) or (n, K)
        Binary: probability of the positive class. Multiclass: one column per class.
    method : {"platt", "isotonic", "temperature"}
    parameters : dict
        As reported: platt ``{a, b}`` (lists over classes for multiclass), isotonic
        ``{x, y}`` (multiclass ``x.<class>``, ``y.<class>``), temperature ``{temperature}``.
    class_names : sequence of str, optional
        Needed for multiclass isotonic (its parameters are keyed by class name).

    Returns
    -------
    ndarray
        Recalibrated probabilities, same shape as ``scores``.

    Examples
    --------
    >>> import numpy as np
    >>> apply_recalibration(np.array([0.2, 0.5, 0.9]), "platt", {"a": 1.0, "b": 0.0})
    array([0.2, 0.5, 0.9])
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim not in (1, 2) or (s.size and not (s.min() >= 0 and s.max() <= 1)):
        raise ValueError("scores must be probabilities in [0, 1], shape (n,) or (n, K), without NaN.")
    columns = 1 if s.ndim == 1 else s.shape[1]
    try:
        if method == "platt":
            a = np.atleast_1d(np.asarray(parameters["a"], dtype=np.float64))
            b = np.atleast_1d(np.asarray(parameters["b"], dtype=np.float64))
            if a.size != b.size:
                raise ValueError(f"platt a and b differ in length: {a.size} vs {b.size}.")
            fitted: RecalibrationMap = PlattMap(a, b)
            size = a.size
        elif method == "isotonic":
            if s.ndim == 1:
                keys = [("x", "y")]
            elif class_names is None:
                raise ValueError("multiclass isotonic parameters are keyed by class: pass class_names.")
            else:
                keys = [(f"x.{c}", f"y.{c}") for c in class_names]
            xs = [np.asarray(parameters[x], dtype=np.float64) for x, _ in keys]
            ys = [np.asarray(parameters[y], dtype=np.float64) for _, y in keys]
            if any(x.ndim != 1 or x.shape != y.shape or x.size == 0 for x, y in zip(xs, ys, strict=True)):
                raise ValueError("isotonic breakpoints x and y must be non-empty lists of equal length.")
            fitted = IsotonicMap(xs, ys)
            size = len(keys)
        elif method == "temperature":
            temperature = parameters["temperature"]
            if not isinstance(temperature, int | float) or not temperature > 0:
                raise ValueError(f"temperature must be a positive number, got {temperature!r}.")
            fitted = TemperatureMap(float(temperature))
            size = columns
        else:
            raise ValueError(f"unknown recalibration method {method!r}; use one of {', '.join(METHODS)}.")
    except KeyError as missing:
        raise ValueError(f"{method} parameters lack {missing}.") from None
    if size != columns:
        raise ValueError(f"{method} parameters are for {size} columns; scores have {columns}.")
    return fitted.apply(s)
