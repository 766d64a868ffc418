"""Accelerated scikit-learn with scikit-learn-intelex, and honest reports of what ran accelerated.

``accelerated()`` patches scikit-learn under a policy (``measured``: only what calibration on this
machine found faster; ``all``), ``report()`` says per estimator method what ran accelerated, what
fell back and why. sklearnex itself is imported only when a block starts.
"""

from cpuai.ml.session import accelerated, report

__all__ = ["accelerated", "report"]
