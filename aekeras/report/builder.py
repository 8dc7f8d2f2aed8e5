"""`build_report`: every part in turn, then REPORT.md and metrics.json."""

import dataclasses
import json
import time

from aekeras.report.context import Context, ReportSettings
from aekeras.report.parts import PARTS
from aekeras.training.records import environment


def _header(ctx, seconds):
    settings = dataclasses.asdict(ctx.settings)
    return (
        "# aekeras report\n\nThe lecture's and the lesson's autoencoder applications on the real MNIST "
        f"test set ({len(ctx.test_images)} images), produced by `aekeras report`. Settings (seed "
        f"{ctx.settings.seed}):\n\n```json\n{json.dumps(settings, indent=2)}\n```\n\n"
        f"Environment: {json.dumps(environment())}. Took {seconds:.0f} s. Numbers: `metrics.json`.\n"
    )


def build_report(out, settings=None, data_dir=None, progress=print):
    """Computes every part, writes the PNG figures, `REPORT.md` and `metrics.json` to `out`.

    Models are cached in `out/cache/` by a hash of their settings and of
    the source that trains them (`context.training_code`), so a second run
    reuses them and one after a change of objective trains them again.

    Returns:
        The metrics dict written to `metrics.json`.
    """
    ctx = Context(out, settings or ReportSettings(), data_dir, progress)
    ctx.out.mkdir(parents=True, exist_ok=True)
    sections, metrics = [], {}
    for number, part in enumerate(PARTS, start=1):
        ctx.step(f"{number}/{len(PARTS)} {part.__name__.replace('_', ' ')}")
        section = part(ctx)
        sections.append(section.markdown())
        if section.metrics is not None:
            metrics[section.key] = section.metrics
    seconds = round(time.time() - ctx.started, 1)
    metrics.update(settings=dataclasses.asdict(ctx.settings), environment=environment(), seconds=seconds)
    (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    (ctx.out / "REPORT.md").write_text(_header(ctx, seconds) + "\n" + "\n".join(sections))
    ctx.step(f"wrote {ctx.out / 'REPORT.md'}")
    return metrics
