"""`aekeras report`: every application of the lecture and the lesson, measured.

`build_report(out, settings)` trains what it needs (reusing models cached in
`out/cache/` by a hash of their data, settings and training code), runs each
part of `parts` on the test images of its source (MNIST by default), draws the figures with
`aekeras.plotting`, and writes `REPORT.md` and `metrics.json` beside them,
moving them into `out` only once every part has run.
"""

from aekeras.report.builder import build_report
from aekeras.report.context import Context, ReportSettings, cached_model
from aekeras.report.parts import PARTS, Section

__all__ = ["PARTS", "Context", "ReportSettings", "Section", "build_report", "cached_model"]
