"""The paper's studies as experiments (issue 19): ``synface reproduce [STUDY ...] --scale``.

``studies`` reads ``configs/reproduce/<study>.yaml`` and plans its runs at a scale;
``runner`` trains and scores them (resumable, shared between studies); ``report`` turns the
results into JSON with a verdict per claim and renders ``reports/reproduction.md``;
``plots`` draws the figures; ``suite`` ties them together.
"""

from synface.experiments.reproduce.suite import reproduce, write_report

__all__ = ["reproduce", "write_report"]
