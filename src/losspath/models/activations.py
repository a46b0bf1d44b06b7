"""Activations: ReLU and the polynomial stand-in for ReLU of Liao & Poggio (Theory II, 2017).

Liao & Poggio replace every ReLU by a polynomial that approximates it (their Fig. 2) so that the network
output is a polynomial in the weights and Bezout's theorem applies; they report that such a "polynomial
net" trains and performs like the ReLU net as long as the polynomial is close to ReLU, especially near 0.
The paper does not pin down how the polynomial is fitted; here (our choice) it is the least-squares fit
to ReLU on a dense uniform grid over [-interval, interval].
"""

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from losspath.errors import LosspathError

ACTIVATIONS = ("relu", "poly")

_GRID_POINTS = 20001  # dense enough that the discrete fit matches the continuous L2 fit to ~1e-4


def fit_relu_polynomial(degree: int, interval: float) -> tuple[np.ndarray, float]:
    """Least-squares polynomial fit p(x) = sum_k c_k x^k to relu(x) on [-interval, interval].

    Returns (coeffs, max_abs_error): coeffs is a float64 array in *increasing* powers (c_0, ..., c_degree),
    max_abs_error is max |p(x) - relu(x)| over the fitting grid.  The fit is done in the scaled variable
    t = x / interval (a well-conditioned Vandermonde matrix on [-1, 1]) and mapped back: c_k = a_k / interval^k.
    """
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
        raise LosspathError(f"The polynomial degree must be an integer of at least 1, got {degree!r}.")
    if not isinstance(interval, (int, float, np.floating)) or not np.isfinite(interval) or interval <= 0:
        raise LosspathError(f"The polynomial fitting interval must be a positive number, got {interval!r}.")
    degree, interval = int(degree), float(interval)
    t = np.linspace(-1.0, 1.0, _GRID_POINTS)
    x = t * interval
    relu = np.maximum(x, 0.0)
    vandermonde = np.vander(t, degree + 1, increasing=True)
    scaled_coeffs, *_ = np.linalg.lstsq(vandermonde, relu, rcond=None)
    coeffs = scaled_coeffs / interval ** np.arange(degree + 1)
    max_abs_error = float(np.max(np.abs(vandermonde @ scaled_coeffs - relu)))
    return coeffs, max_abs_error


class PolyReLU(nn.Module):
    """Polynomial approximation of ReLU (Liao & Poggio 2017, Fig. 2); the fit itself is ours (see module doc).

    The coefficients are a non-persistent buffer: they move with `.to(device)` but are not a parameter and
    not part of the state dict (they are fixed by `degree` and `interval`, which build_model receives), so
    a polynomial net and its ReLU twin have the same state-dict keys and interpolation never touches them.
    """

    def __init__(self, degree: int = 2, interval: float = 4.0):
        super().__init__()
        coeffs, max_abs_error = fit_relu_polynomial(degree, interval)
        self.degree = int(degree)
        self.interval = float(interval)
        self.fit_error = max_abs_error
        self.register_buffer("coeffs", torch.tensor(coeffs, dtype=torch.get_default_dtype()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coeffs = self.coeffs.to(dtype=x.dtype)
        out = coeffs[-1] * torch.ones_like(x)
        for k in range(self.degree - 1, -1, -1):  # Horner's scheme
            out = out * x + coeffs[k]
        return out

    def extra_repr(self) -> str:
        return f"degree={self.degree}, interval={self.interval}, fit_error={self.fit_error:.4g}"


def make_activation(name: str, poly_degree: int = 2, poly_interval: float = 4.0) -> Callable[[], nn.Module]:
    """A factory that returns a fresh activation module each call ("relu" -> nn.ReLU, "poly" -> PolyReLU)."""
    if name == "relu":
        return nn.ReLU
    if name == "poly":
        PolyReLU(poly_degree, poly_interval)  # validate the arguments once, here, with a clear message
        return lambda: PolyReLU(poly_degree, poly_interval)
    raise LosspathError(f"Unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}.")
