"""Tolerances for comparing float32 results, derived from float32 rounding, not from one CPU.

float32 keeps a 24-bit significand: its unit roundoff is u = 2**-24 ~ 6.0e-8. A dot product of
k terms summed in another order (another BLAS kernel: OpenBLAS's Haswell, SkylakeX or Zen
GEMM; another block size; another chunk of rows) can change by up to k*u times the sum of the
terms' magnitudes (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., eq. 3.5);
rounding errors of random sign make the typical change about sqrt(k)*u. The longest sums in
the networks are 1,024 terms (the CNN's first Dense; the MLP's is 784, a 5x5x32 conv 800).
Two correct float32 results are therefore not equal bit for bit, and a test of "the same
computation" must allow for this, while a real mistake (a wrong row, weight or layer) changes
a probability by far more than 1e-3.
"""

from __future__ import annotations

import numpy as np

U = float(np.finfo(np.float32).eps) / 2  # 2**-24: float32 unit roundoff
LONGEST_SUM = 1024  # terms in the networks' longest dot product (above)

# Probabilities from the same network computed in another order (chunk size, kernel, folded
# or unfolded BatchNorm). A probability's relative change equals its logit's absolute change;
# the worst-case bound of one layer's sums is LONGEST_SUM*u = 6.1e-5, and the network has up to
# five such layers whose typical errors add in quadrature: 1e-4 covers them with margin, and
# is a thousand times smaller than a mistake. The absolute term covers probabilities near 1,
# where float32 itself resolves only ~u: 16*u rounded up.
PROBABILITY_RTOL = 1e-4
PROBABILITY_ATOL = 1e-6

# A sum of ten float32 probabilities vs 1: at most 10*u from the sum, a few u from the
# normalising division; 1e-5 is about a hundred times that.
SUM_TO_ONE_RTOL = 1e-5

# Pre-activations of one Dense layer (784 inputs of 0..255 pixels) computed two ways:
# LONGEST_SUM*u = 6.1e-5 relative to the sum of magnitudes in the worst case, sqrt(784)*u =
# 1.7e-6 typically; 1e-5 relative plus 1e-5 absolute (for sums that cancel to near 0).
DENSE_RTOL = 1e-5
DENSE_ATOL = 1e-5
