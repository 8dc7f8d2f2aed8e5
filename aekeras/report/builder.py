"""`build_report`: every part in turn, then REPORT.md and metrics.json, all moved into place at the end."""

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

from aekeras.data.builtin import MNIST
from aekeras.report.context import Context, ReportSettings
from aekeras.report.parts import PARTS
from aekeras.staging import made_folder, staging_path
from aekeras.training.records import environment


def _header(ctx, seconds):
    settings = dataclasses.asdict(ctx.settings)
    if not ctx.is_mnist:
        where = f"the test split of `{ctx.spec.source}`"
    elif ctx.data_dir is None:
        where = "the real MNIST test set"
    else:
        where = f"the test set of the IDX files in `{ctx.data_dir}`"
    # MNIST's own 28x28 goes without saying; MNIST resized (--image-size) does not.
    size = "" if ctx.is_mnist and ctx.spec.shape == MNIST.shape else f", {ctx.image_size_text()}"
    return (
        f"# aekeras report\n\nThe lecture's and the lesson's autoencoder applications on {where} "
        f"({len(ctx.test_images)} images{size}), produced by `aekeras report`. Settings (seed "
        f"{ctx.settings.seed}):\n\n```json\n{json.dumps(settings, indent=2)}\n```\n\n"
        f"Data: {json.dumps(ctx.data_description)}.\n\n"
        f"Environment: {json.dumps(environment())}. Took {seconds:.0f} s. Numbers: `metrics.json`.\n"
    )


def _write_parts(ctx):
    """Runs every part into `ctx.out`; writes `metrics.json` and `REPORT.md` there; returns the metrics."""
    sections, metrics = [], {}
    for number, part in enumerate(PARTS, start=1):
        ctx.step(f"{number}/{len(PARTS)} {part.__name__.replace('_', ' ')}")
        section = part(ctx)
        sections.append(section.markdown())
        if section.metrics is not None:
            metrics[section.key] = section.metrics
    seconds = round(time.time() - ctx.started, 1)
    metrics.update(
        settings=dataclasses.asdict(ctx.settings),
        data=ctx.data_description,
        environment=environment(),
        seconds=seconds,
    )
    (ctx.out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    (ctx.out / "REPORT.md").write_text(_header(ctx, seconds) + "\n" + "\n".join(sections))
    return metrics


def _publish(staging, out):
    """Moves the finished report's files into `out`, REPORT.md last."""
    files = sorted(staging.iterdir(), key=lambda path: path.name == "REPORT.md")
    for path in files:
        os.replace(path, out / path.name)


def build_report(
    out, settings=None, data_dir=None, progress=print, *, source="mnist", verbose=False, **read_options
):
    """Computes every part on `source`'s images, writes the PNG figures, `REPORT.md` and `metrics.json` to `out`.

    `source`, `verbose` (a folder's scan and decoding show their progress)
    and the `read_options` (`image_size`, `channels`, `test_fraction`, ...)
    are those `aekeras.data.open_source` takes, as `aekeras train --data`
    does; `data_dir` is the IDX folder of MNIST (the default) or
    Fashion-MNIST, or the TFDS data folder of a `tfds:` source. Data too
    thin for every part (`Context`) is refused before anything is trained.
    A part that cannot run on the source's images (one that needs labels,
    on an unlabelled folder) is skipped with a line in REPORT.md saying why.

    Models are cached in `out/cache/` by a digest of their data, their
    settings and the source that trains them (`context.training_code`), so a
    second run reuses them, and one on other data or after a change of
    objective trains them again. The report itself is built in a staging
    folder inside `out` and moved into place when every part has run: an
    interrupted run leaves `out` as it was, an earlier report included.

    Returns:
        The metrics dict written to `metrics.json`.
    """
    out = Path(out)
    with made_folder(out):  # a report that stops before writing (its data unreadable) leaves no folder
        staging = staging_path(out)
        staging.mkdir()
        try:
            ctx = Context(
                staging,
                settings or ReportSettings(),
                data_dir,
                progress,
                cache_dir=out / "cache",
                source=source,
                verbose=verbose,
                **read_options,
            )
            metrics = _write_parts(ctx)
            _publish(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    ctx.step(f"wrote {out / 'REPORT.md'}")
    return metrics
