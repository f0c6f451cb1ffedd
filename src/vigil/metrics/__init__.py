"""Vigil's metric functions, for use in a notebook: ``vigil.metrics.psi(reference, current)``.

Pure functions over arrays (and over profile counts); the same code the
monitoring layer runs. See :mod:`vigil.core.metrics` for the details.

>>> import vigil
>>> round(vigil.metrics.psi([1, 2, 3, 4] * 50, [1, 2, 3, 4] * 50), 6)
0.0
"""

from vigil.core.metrics import *  # noqa: F403
from vigil.core.metrics import __all__  # noqa: F401
