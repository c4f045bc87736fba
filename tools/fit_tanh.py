"""Fit the rational tanh of ``kernels/activation/numba.py`` and print its coefficients.

Usage: python tools/fit_tanh.py   (then copy TANH_P and TANH_Q into that module)

tanh is odd, so the fit is ``tanh(x) ~ x P(x^2) / Q(x^2)`` with P and Q of degree 4 in
``x^2`` and ``P(0) = Q(0) = 1`` (exact slope at 0). For ``Q``'s coefficients fixed,
``P - tanh * Q`` is linear in the unknowns; the Sanathanan-Koerner iteration solves
that least-squares problem on Chebyshev nodes of [0, CLAMP], weighting each point by
``1 / (tanh(x) Q_prev(x))`` so that the error it minimises tends to the relative error
``(x P / Q - tanh) / tanh``. Beyond CLAMP = 9, ``1 - tanh(x) < 3e-8`` is below half a
float32 unit of 1, so the kernel clamps its input there. The script prints the largest
relative error of the float32 evaluation against float64 ``tanh``.
"""

from __future__ import annotations

import numpy as np

CLAMP, DEGREE = 9.0, 4


def fit(iterations: int = 40):
    """(P, Q) coefficients, constant term first."""
    x = (np.cos(np.linspace(0, np.pi, 8001))[::-1] + 1) * CLAMP / 2
    x = x[x > 1e-3]
    t, z = np.tanh(x), x * x
    weight = np.ones_like(x)
    for _ in range(iterations):
        # unknowns: P_0..P_4, Q_1..Q_4 (Q_0 = 1): x P(z) - t (Q(z) - 1) = t
        a = np.concatenate([np.stack([x * z**k for k in range(DEGREE + 1)], 1),
                            -np.stack([t * z**k for k in range(1, DEGREE + 1)], 1)], 1)
        w = weight / t
        sol, *_ = np.linalg.lstsq(a * w[:, None], t * w, rcond=None)
        p, q = sol[:DEGREE + 1], np.concatenate([[1.0], sol[DEGREE + 1:]])
        weight = 1 / np.polynomial.polynomial.polyval(z, q)
    return p, q


def evaluate(p, q, x):
    """The kernel's float32 evaluation (Horner's rule) at ``x``."""
    p, q = p.astype(np.float32), q.astype(np.float32)
    v = np.clip(x, np.float32(-CLAMP), np.float32(CLAMP))
    z = v * v
    num, den = p[-1], q[-1]
    for k in range(DEGREE - 1, -1, -1):
        num, den = num * z + p[k], den * z + q[k]
    return v * num / den


def main() -> None:
    p, q = fit()
    x = np.linspace(-12, 12, 2_000_001, dtype=np.float32)
    exact = np.tanh(x.astype(np.float64))
    nonzero = exact != 0
    err = np.abs(evaluate(p, q, x) - exact)[nonzero] / np.abs(exact[nonzero])
    print(f"TANH_P = {tuple(float(c) for c in p.astype(np.float32))}")
    print(f"TANH_Q = {tuple(float(c) for c in q.astype(np.float32))}")
    print(f"largest relative error (float32): {err.max():.2e}")


if __name__ == "__main__":
    main()
