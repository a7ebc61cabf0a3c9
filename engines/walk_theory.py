"""Exact laws of simple random walks, for checking simulations and drawing theory curves.

Everything here is pure numpy/scipy and vectorised. Probabilities such as ``C(2n, n)/4^n``
overflow or underflow in plain arithmetic long before ``n = 10^4`` (``4^5000`` is far beyond
float64), so every law is evaluated in log space (``scipy.special.gammaln``) and only
exponentiated at the end.

Conventions (shared with :mod:`engines.walk`):

* Time is counted in steps ``m = 0, 1, 2, ...``; a law that lives on even times returns 0 at
  odd ``m`` instead of re-indexing by ``2n``, so arrays line up with simulation histograms
  indexed by step.
* ``u_m = P(S_m = 0)`` (return probability at time ``m``), ``f_m`` = probability that the
  *first* return happens at time ``m`` (``f_0 = 0``).
* "Simple walk in d dimensions": each step moves ±1 along one axis chosen uniformly, so
  each axis has variance ``n/d`` after ``n`` steps and ``E|S_n|^2 = n``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln, logsumexp, xlogy

__all__ = [
    "arcsine_cdf",
    "arcsine_density",
    "binomial_pmf",
    "brownian_scaling",
    "first_passage_pmf",
    "first_return_pmf",
    "first_return_pmf_1d",
    "gamblers_ruin",
    "gamblers_ruin_duration",
    "gaussian_limit_density",
    "heat_kernel",
    "last_zero_pmf",
    "log_binom",
    "no_return_prob_1d",
    "polya_return_probability",
    "positive_count_pmf_continuous",
    "renewal_first_return",
    "return_by_prob",
    "return_prob_1d",
    "return_probs",
    "time_positive_pmf",
]

FloatArray = NDArray[np.float64]


def log_binom(n: ArrayLike, k: ArrayLike) -> FloatArray:
    """``log C(n, k)`` for real arrays; ``-inf`` outside ``0 <= k <= n``.

    Log space because ``C(10^4, 5*10^3)`` has ~3000 decimal digits.
    """
    n_arr = np.asarray(n, dtype=np.float64)
    k_arr = np.asarray(k, dtype=np.float64)
    valid = (k_arr >= 0) & (k_arr <= n_arr)
    n_safe = np.where(valid, n_arr, 0.0)
    k_safe = np.where(valid, k_arr, 0.0)
    out = gammaln(n_safe + 1.0) - gammaln(k_safe + 1.0) - gammaln(n_safe - k_safe + 1.0)
    return np.where(valid, out, -np.inf)


def binomial_pmf(n: ArrayLike, k: ArrayLike, p: float = 0.5) -> FloatArray:
    """``P(S_n = k)`` for the ±1 walk with ``P(+1) = p`` started at 0.

    ``S_n = k`` needs ``(n + k)/2`` up-steps, so the law is 0 when ``n + k`` is odd or
    ``|k| > n``. Broadcasts over ``n`` and ``k``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    n_arr = np.asarray(n, dtype=np.int64)
    k_arr = np.asarray(k, dtype=np.int64)
    n_b, k_b = np.broadcast_arrays(n_arr, k_arr)
    ups2 = n_b + k_b
    ok = (ups2 % 2 == 0) & (np.abs(k_b) <= n_b) & (n_b >= 0)
    ups = np.where(ok, ups2 // 2, 0)
    downs = np.where(ok, n_b - ups, 0)
    # xlogy gives 0 * log(0) = 0, so p = 0 or 1 (a sure walk) needs no special case.
    logp = log_binom(np.where(ok, n_b, 0), ups) + xlogy(ups, p) + xlogy(downs, 1.0 - p)
    return np.where(ok, np.exp(logp), 0.0)


def gaussian_limit_density(x: ArrayLike, n: float, p: float = 0.5) -> FloatArray:
    """Density of the CLT approximation ``N(n(2p-1), 4npq)`` of ``S_n``.

    ``S_n`` lives on a lattice of spacing 2 (fixed parity), so ``P(S_n = k)`` is
    approximately ``2 * gaussian_limit_density(k, n, p)`` for ``k`` of the right parity.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    q = 1.0 - p
    mean = n * (2.0 * p - 1.0)
    var = 4.0 * n * p * q
    if var <= 0:
        raise ValueError("degenerate walk (p in {0, 1}) has no density")
    x_arr = np.asarray(x, dtype=np.float64)
    return np.exp(-((x_arr - mean) ** 2) / (2.0 * var)) / math.sqrt(2.0 * math.pi * var)


def return_prob_1d(m: ArrayLike) -> FloatArray:
    """``u_m = P(S_m = 0)`` for the unbiased 1-D walk: ``C(m, m/2)/2^m`` for even ``m``.

    Equivalently ``u_2n = C(2n, n)/4^n ~ 1/sqrt(pi n)``.
    """
    m_arr = np.asarray(m, dtype=np.int64)
    even = (m_arr % 2 == 0) & (m_arr >= 0)
    half = np.where(even, m_arr // 2, 0)
    logu = log_binom(2 * half, half) - 2.0 * half * math.log(2.0)
    return np.where(even, np.exp(logu), 0.0)


def no_return_prob_1d(m: ArrayLike) -> FloatArray:
    """``P(S_1 != 0, ..., S_m != 0)`` for the unbiased 1-D walk.

    Classical identity: ``P(no return by 2n) = u_2n``; an odd time adds nothing because a
    return can only happen at even times.
    """
    m_arr = np.asarray(m, dtype=np.int64)
    return return_prob_1d(2 * (m_arr // 2))


def first_return_pmf_1d(m: ArrayLike) -> FloatArray:
    """``f_m`` for the unbiased 1-D walk: ``u_m/(m - 1)`` at even ``m >= 2``, else 0."""
    m_arr = np.asarray(m, dtype=np.int64)
    ok = (m_arr >= 2) & (m_arr % 2 == 0)
    denom = np.where(ok, m_arr - 1, 1).astype(np.float64)
    return np.where(ok, return_prob_1d(np.where(ok, m_arr, 0)) / denom, 0.0)


@functools.lru_cache(maxsize=4)
def _log_u_even_3d(half: int) -> FloatArray:
    """``log u_{2n}`` of the 3-D simple walk for ``n = 0..half`` (cached, read-only).

    ``u_2n = C(2n, n)/36^n * sum_{j+k<=n} (n!/(j! k! (n-j-k)!))^2``; summing the squared
    multinomials over one index collapses the double sum to
    ``sum_k C(n, k)^2 C(2k, k)`` (OEIS A002896), an O(n) log-sum-exp per ``n`` instead of
    O(n^2). Every term is positive, so log-sum-exp loses nothing to cancellation. Rows are
    evaluated in blocks against a table of ``log k!`` so ``n = 5000`` takes a fraction of a
    second rather than thousands of Python-level calls.
    """
    lf = gammaln(np.arange(2 * half + 2, dtype=np.float64))  # lf[j] = log((j-1)!)
    lfact = lf[1:]  # lfact[j] = log(j!)
    k_all = np.arange(half + 1)
    log_c2k = lfact[2 * k_all] - 2.0 * lfact[k_all]
    out = np.empty(half + 1, dtype=np.float64)
    block = max(1, (1 << 21) // (half + 1))
    for start in range(0, half + 1, block):
        n = np.arange(start, min(half + 1, start + block))[:, None]
        k = k_all[None, : int(n[-1, 0]) + 1]
        valid = k <= n
        nk = np.where(valid, n - k, 0)
        terms = 2.0 * (lfact[n] - lfact[np.where(valid, k, 0)] - lfact[nk]) + log_c2k[k]
        terms = np.where(valid, terms, -np.inf)
        n1 = n[:, 0]
        out[n1] = lfact[2 * n1] - 2.0 * lfact[n1] - n1 * math.log(36.0) + logsumexp(terms, axis=1)
    out.flags.writeable = False
    return out


def return_probs(dim: int, m_max: int) -> FloatArray:
    """``u_m = P(S_m = 0)`` for ``m = 0..m_max`` of the simple walk in ``dim`` = 1, 2 or 3.

    1-D: ``C(2n, n)/4^n``; 2-D: its square (rotating the lattice by 45 degrees turns the
    2-D walk into two independent 1-D walks); 3-D: see :func:`_log_u_even_3d`.
    """
    if m_max < 0:
        raise ValueError("m_max must be >= 0")
    m = np.arange(m_max + 1)
    if dim == 1:
        return return_prob_1d(m)
    if dim == 2:
        return return_prob_1d(m) ** 2
    if dim == 3:
        u = np.zeros(m_max + 1, dtype=np.float64)
        u[0::2] = np.exp(_log_u_even_3d(m_max // 2))
        return u
    raise ValueError(f"dim must be 1, 2 or 3, got {dim}")


def renewal_first_return(u: ArrayLike) -> FloatArray:
    """First-return law from return probabilities: ``f_m = u_m - sum_{0<k<m} f_k u_{m-k}``.

    This is the renewal identity ``U(s) = 1/(1 - F(s))`` written coefficient by
    coefficient; it holds for any walk in any dimension, which is why it is the bridge from
    the easy ``u_m`` to the hard ``f_m`` in 2-D and 3-D. ``u[0]`` must be 1.
    """
    u_arr = np.asarray(u, dtype=np.float64)
    if u_arr.ndim != 1 or u_arr.size == 0 or u_arr[0] != 1.0:
        raise ValueError("u must be a 1-D array with u[0] == 1")
    size = u_arr.size
    f = np.zeros_like(u_arr)
    u_rev = u_arr[::-1].copy()  # u_rev[size-1-j] = u_j, so u_{m-k} for k=1..m-1 is a slice
    for m in range(1, size):
        # sum_{k=1}^{m-1} f_k u_{m-k}
        f[m] = u_arr[m] - float(np.dot(f[1:m], u_rev[size - m : size - 1]))
    return f


def first_return_pmf(dim: int, m_max: int) -> FloatArray:
    """``f_m`` for ``m = 0..m_max`` of the simple walk in ``dim`` dimensions (renewal)."""
    if dim == 1:
        return first_return_pmf_1d(np.arange(m_max + 1))
    return renewal_first_return(return_probs(dim, m_max))


def return_by_prob(dim: int, m_max: int) -> FloatArray:
    """``P(return to the origin at some step 1..m)`` for ``m = 0..m_max``."""
    return np.cumsum(first_return_pmf(dim, m_max))


def polya_return_probability(dim: int) -> float:
    """``P(ever return)``: 1 in 1-D and 2-D (Pólya), ``1 - 1/u(1)`` in 3-D.

    ``u(1) = sum_m u_m`` is Watson's integral, in closed form
    ``sqrt(6)/(32 pi^3) Gamma(1/24) Gamma(5/24) Gamma(7/24) Gamma(11/24) = 1.5163860592``,
    which gives ``0.3405373296``.
    """
    if dim in (1, 2):
        return 1.0
    if dim == 3:
        g = math.gamma
        watson = math.sqrt(6.0) / (32.0 * math.pi**3) * g(1 / 24) * g(5 / 24) * g(7 / 24) * g(11 / 24)
        return 1.0 - 1.0 / watson
    raise ValueError(f"dim must be 1, 2 or 3, got {dim}")


def last_zero_pmf(n: int) -> FloatArray:
    """Law of the last visit to 0 up to horizon ``n`` (discrete arcsine law), index = time.

    ``P(L_n = 2k) = u_2k * P(no return in the remaining n - 2k steps)``; for even ``n`` that
    is ``u_2k u_{n-2k}``. Returned as an array of length ``n + 1`` (odd times are 0).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    t = np.arange(n + 1)
    return np.where(t % 2 == 0, return_prob_1d(t) * no_return_prob_1d(n - t), 0.0)


def time_positive_pmf(n: int) -> FloatArray:
    """Law of the number of positive steps in ``n`` (even) steps, Chung–Feller convention.

    Step ``k`` counts as positive when ``S_{k-1} > 0`` or ``S_k > 0`` (the edge lies above
    the axis). Then the count is even and ``P(2k positive steps) = u_2k u_{n-2k}``, the same
    discrete arcsine law as :func:`last_zero_pmf`. Odd ``n`` has no such clean law.
    """
    if n < 0 or n % 2:
        raise ValueError("time_positive_pmf needs an even horizon n >= 0")
    t = np.arange(n + 1)
    return np.where(t % 2 == 0, return_prob_1d(t) * return_prob_1d(n - t), 0.0)


def positive_count_pmf_continuous(n: int) -> FloatArray:
    """``P(#{1 <= k <= n : S_k > 0} = j)``, ``j = 0..n``, for symmetric *continuous* steps.

    Sparre Andersen's theorem: for any symmetric continuous step law (e.g. the Gaussian
    walk) this count is distribution-free, ``u_2j u_{2n-2j}`` with the 1-D lattice ``u``.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    j = np.arange(n + 1)
    return return_prob_1d(2 * j) * return_prob_1d(2 * (n - j))


def arcsine_density(x: ArrayLike) -> FloatArray:
    """Arcsine density ``1/(pi sqrt(x(1-x)))`` on (0, 1): the limit of both discrete laws."""
    x_arr = np.asarray(x, dtype=np.float64)
    inside = (x_arr > 0) & (x_arr < 1)
    xs = np.where(inside, x_arr, 0.5)
    return np.where(inside, 1.0 / (math.pi * np.sqrt(xs * (1.0 - xs))), 0.0)


def arcsine_cdf(x: ArrayLike) -> FloatArray:
    """``(2/pi) arcsin(sqrt(x))``, for binned comparisons with :func:`arcsine_density`."""
    x_arr = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return 2.0 / math.pi * np.arcsin(np.sqrt(x_arr))


def first_passage_pmf(n: ArrayLike, a: int, p: float = 0.5) -> FloatArray:
    """``P(T_a = n)``, first time the walk hits level ``a > 0``.

    Hitting-time theorem (reflection principle for ``p = 1/2``, Kemperman in general):
    ``P(T_a = n) = (a/n) P(S_n = a)``; it holds for any ``p`` because ±1 walks are
    skip-free upward.
    """
    if a <= 0:
        raise ValueError("level a must be a positive integer")
    n_arr = np.asarray(n, dtype=np.int64)
    pos = n_arr > 0
    n_safe = np.where(pos, n_arr, 1)
    return np.where(pos, a / n_safe * binomial_pmf(n_safe, a, p), 0.0)


def gamblers_ruin(i: ArrayLike, big_n: int, p: float = 0.5) -> FloatArray:
    """``P(hit N before 0 | start at i)`` with absorbing barriers at 0 and ``N``.

    ``(1 - (q/p)^i)/(1 - (q/p)^N)`` for ``p != q``, ``i/N`` for ``p = q``. Written with
    ``expm1``-style ratios in log space so ``N`` in the thousands does not overflow.
    """
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    i_arr = np.asarray(i, dtype=np.float64)
    if p == 0.5:
        return i_arr / big_n
    r = math.log((1.0 - p) / p)  # log(q/p)
    if r > 0:
        # (q/p)^i grows: divide numerator and denominator by (q/p)^N.
        num = np.exp((i_arr - big_n) * r) - np.exp(-big_n * r)
        den = 1.0 - math.exp(-big_n * r)
        return num / den
    return np.expm1(i_arr * r) / math.expm1(big_n * r)


def gamblers_ruin_duration(i: ArrayLike, big_n: int, p: float = 0.5) -> FloatArray:
    """Expected time to absorption at 0 or ``N`` from ``i``.

    ``i (N - i)`` for ``p = 1/2``; otherwise ``i/(q-p) - N/(q-p) * P(hit N first)``.
    """
    i_arr = np.asarray(i, dtype=np.float64)
    if p == 0.5:
        return i_arr * (big_n - i_arr)
    q = 1.0 - p
    return i_arr / (q - p) - big_n / (q - p) * gamblers_ruin(i_arr, big_n, p)


def heat_kernel(x: ArrayLike, n: float, dim: int = 1) -> FloatArray:
    """Density of ``N(0, (n/dim) I_dim)`` at points ``x`` of shape ``(..., dim)``.

    After ``n`` steps of the simple walk each axis has variance ``n/dim``; by the local CLT
    ``P(S_n = x) ~ 2 * heat_kernel(x, n, dim)`` on sites of the right parity. For
    ``dim = 1`` a plain array of positions is accepted.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    x_arr = np.asarray(x, dtype=np.float64)
    if dim == 1 and (x_arr.ndim == 0 or x_arr.shape[-1] != 1):
        x_arr = x_arr[..., None]
    if x_arr.shape[-1] != dim:
        raise ValueError(f"last axis of x must have length dim={dim}")
    var = n / dim
    r2 = np.sum(x_arr**2, axis=-1)
    return np.exp(-r2 / (2.0 * var)) / (2.0 * math.pi * var) ** (dim / 2.0)


def brownian_scaling(path: ArrayLike, n: int, t: ArrayLike) -> FloatArray:
    """Donsker rescaling ``S_floor(n t)/sqrt(n)`` of a path ``S_0, S_1, ...``.

    ``path`` has shape ``(T, ...)`` with ``T > floor(n * max(t))``; as ``n`` grows the
    rescaled path converges in law to Brownian motion (variance ``t`` per unit of ``t`` in
    1-D, ``t/dim`` per axis in ``dim`` dimensions).
    """
    if n <= 0:
        raise ValueError("n must be positive")
    path_arr = np.asarray(path)
    t_arr = np.asarray(t, dtype=np.float64)
    idx = np.floor(n * t_arr + 1e-9).astype(np.int64)
    if np.any(idx < 0) or np.any(idx >= path_arr.shape[0]):
        raise ValueError("t * n falls outside the path")
    return path_arr[idx].astype(np.float64) / math.sqrt(n)
