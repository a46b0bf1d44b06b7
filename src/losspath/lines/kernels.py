"""Compiled loops (numba) for the parts of line evaluation that are not matrix products.

The ReLU-pair shortcut (`relu_pair.py`) needs, per example, the α at which each hidden unit switches and then a
sweep over the α in increasing order that updates the second layer's quadratic coefficients only where a unit
switches. Both loops compile on first use (seconds; numba caches them on disk). Plain IEEE arithmetic (no
fastmath), so a unit's on/off state is decided the same way everywhere. `_run` holds `LOCK`: numba's parallel
runtime must not be entered from two Python threads at once; it also puts torch's thread count back.
"""
from __future__ import annotations

import functools
import threading

import numpy as np
import torch

LOCK = threading.Lock()


@functools.cache
def _compiled():
    """The two kernels, cached on disk where numba finds a writable place (else compiled per process)."""
    try:
        return _define(cache=True)
    except RuntimeError:  # "cannot cache function ...: no locator available" (read-only install and home)
        return _define(cache=False)


def _define(cache: bool):
    import numba


    @numba.njit(parallel=True, cache=cache)
    def switch_points(p, q, sorted_alphas, on_first, switch):  # pragma: no cover (compiled)
        """on_first[n, j]: unit j is on at the smallest α; switch[n, j]: the first sorted index where its state
        differs from that (len(alphas) if never). z = p + α·q is monotone in α, also after rounding, so the
        number of indices where the unit is on locates the switch."""
        n_examples, hidden = p.shape
        k_count = sorted_alphas.shape[0]
        for n in numba.prange(n_examples):
            for j in range(hidden):
                pj, qj = p[n, j], q[n, j]
                on = 0
                for k in range(k_count):
                    on += pj + sorted_alphas[k] * qj > 0
                first = pj + sorted_alphas[0] * qj > 0
                on_first[n, j] = first
                switch[n, j] = on if first else k_count - on

    @numba.njit(parallel=True, cache=cache)
    def sweep(p, q, on_first, switch, alphas, order, P0, P1, P2, Mt, Dt, bias, relu, out):  # pragma: no cover
        """out[k, n] = P0 + α_k·P1 + α_k²·P2 + bias[k], with (P0, P1, P2) updated at every unit switch; then
        max(·, 0) if `relu` (NaN stays NaN, as in torch.relu)."""
        n_examples, hidden = p.shape
        k_count, outputs = order.shape[0], Mt.shape[1]
        for n in numba.prange(n_examples):
            count = np.zeros(k_count + 1, np.int64)
            for j in range(hidden):
                count[switch[n, j]] += 1
            slot = np.zeros(k_count + 1, np.int64)  # counting sort of the units by switch index
            for k in range(1, k_count + 1):
                slot[k] = slot[k - 1] + count[k - 1]
            units = np.empty(hidden, np.int64)
            for j in range(hidden):
                units[slot[switch[n, j]]] = j
                slot[switch[n, j]] += 1
            c0 = P0[n].astype(np.float64)
            c1 = P1[n].astype(np.float64)
            c2 = P2[n].astype(np.float64)
            t = 0
            for k in range(k_count):
                while t < hidden and switch[n, units[t]] == k:
                    j = units[t]
                    sign = -1.0 if on_first[n, j] else 1.0  # switching off removes its terms, on adds them
                    pj, qj = sign * p[n, j], sign * q[n, j]
                    m, d = Mt[j], Dt[j]
                    for o in range(outputs):
                        c0[o] += pj * m[o]
                        c1[o] += qj * m[o] + pj * d[o]
                        c2[o] += qj * d[o]
                    t += 1
                a = alphas[order[k]]
                row, b = out[order[k], n], bias[order[k]]
                for o in range(outputs):
                    v = c0[o] + a * (c1[o] + a * c2[o]) + b[o]
                    row[o] = 0.0 if relu and v < 0.0 else v

    return switch_points, sweep


def _run(which: int, *args) -> None:
    """Kernel `which` (0: switch_points, 1: sweep) on torch's thread count, one caller at a time."""
    import numba

    with LOCK:
        threads = torch.get_num_threads()
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        try:
            _compiled()[which](*args)
        finally:
            # numba's OpenMP layer shares libgomp with torch: a kernel left torch at numba's thread count, and
            # every later torch op in the process (training after lines, as the MLI studies do) ran ~200× slower
            torch.set_num_threads(threads)


def switch_points(p: torch.Tensor, q: torch.Tensor,
                  alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(on_first, switch, order) for units z = p + α·q, (batch, hidden) each, at `alphas` (float64, any order):
    the state of every unit at the smallest α (bool), the sorted α index where it changes, and the sort order."""
    a = alphas.cpu().numpy()
    order = np.argsort(a, kind="stable")
    on_first = torch.empty(p.shape, dtype=torch.bool)
    switch = torch.empty(p.shape, dtype=torch.int64)
    _run(0, p.contiguous().numpy(), q.contiguous().numpy(), a[order].astype(p.numpy().dtype), on_first.numpy(),
         switch.numpy())
    return on_first, switch, order


def relu_pair_sweep(p, q, on_first, switch, alphas: torch.Tensor, order: np.ndarray,
                    coefficients: tuple[torch.Tensor, ...], m_t: torch.Tensor, d_t: torch.Tensor,
                    bias: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """Second-layer outputs (len(alphas), batch, outputs) of y(α) = (M + αD)·relu(p + αq) + bias[α], or relu(y)
    with `relu`.

    coefficients (P0, P1, P2), each (batch, outputs): the quadratic's coefficients over the units on at the
    smallest α; m_t, d_t: Mᵀ and Dᵀ, (hidden, outputs); bias: (len(alphas), outputs). Accumulates in float64.
    """
    out = torch.empty((len(order), p.shape[0], m_t.shape[1]), dtype=p.dtype)
    arrays = [t.contiguous().numpy() for t in (p, q, on_first, switch)]
    more = [t.contiguous().numpy() for t in (*coefficients, m_t, d_t, bias)]
    _run(1, *arrays, alphas.cpu().numpy(), order, *more, relu, out.numpy())
    return out
