"""Bias and fairness of a model's decisions, on raw arrays or on counts (no store needed).

- :func:`fairness`: per-group metrics with confidence intervals, disparities
  against a reference group, and a summary equal to Fairlearn's
  ``demographic_parity_difference``/``_ratio`` and ``equalized_odds_difference``;
  one attribute, several, and their intersections. Returns a
  :class:`FairnessReport` (tidy frames, a Plotly figure).
- :meth:`FairnessReport.from_counts` and :func:`group_confusion`: the same
  report from per-group confusion counts (a SQL ``GROUP BY``, a window of a
  store), and the one ``np.bincount`` that makes them from rows.
- :func:`representation`: group shares in a reference (training) set against
  a current one: under- and over-represented groups, a chi-square test.
- :func:`proxies`: features associated with a protected attribute (mutual
  information, single-feature AUC), joined with their attributions.
- :func:`wilson_interval`, :func:`newcombe_interval`: the intervals used;
  :func:`proportions_p_value`: the p-value of a difference of rates (the test
  Newcombe's interval inverts; Fisher's exact test for small counts);
  :func:`adjust_p_values`: Holm and Benjamini-Hochberg, which adjust every
  comparison of a report as one family.

The rows are counted once, over all attributes at a time; everything else is
computed on arrays with one entry per group, so a report on a million rows
costs about what the counting costs (see ``docs/fairness.md``).

>>> from vigil.core.fairness import fairness
>>> report = fairness([0, 1, 1, 0, 1, 1], [0, 1, 0, 0, 1, 1], ["a", "a", "a", "b", "b", "b"], min_group_size=1)
>>> report.by_group[["group", "selection_rate", "tpr"]]
  group  selection_rate  tpr
0     a        0.333333  0.5
1     b        0.666667  1.0
"""

from vigil.core.fairness._engine import group_confusion
from vigil.core.fairness._inputs import MISSING
from vigil.core.fairness._intervals import newcombe_interval, proportions_p_value, wilson_interval
from vigil.core.fairness._multiplicity import adjust_p_values
from vigil.core.fairness._proxies import proxies
from vigil.core.fairness._report import FairnessReport, fairness
from vigil.core.fairness._representation import representation

__all__ = [
    "MISSING",
    "FairnessReport",
    "adjust_p_values",
    "fairness",
    "group_confusion",
    "newcombe_interval",
    "proportions_p_value",
    "proxies",
    "representation",
    "wilson_interval",
]
