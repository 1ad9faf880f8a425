"""Result files re-rendered as HTML pages (`s3dlio-ray report`, `s3dlio_ray.report`): where each
page goes, and each result's page with the comparison of all when there are several."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.reports.compare import Named
from s3dlio_ray._internal.reports.files import load_result


def report_pages(sources: Sequence[str | Path], html: str | Path | None) -> list[Path]:
    """Where each result file's page goes: beside it, or `html` when there is one result."""
    if not sources:
        raise ConfigError("report: give at least one result file")
    if html is not None and len(sources) > 1:
        raise ConfigError("--html names one file: give one result, or leave --html out")
    return [Path(html)] if html is not None else [Path(s).with_suffix(".html") for s in sources]


def named_results(sources: Sequence[str | Path]) -> Named:
    """Result files, each named by its configuration, else its file's name."""
    return [
        (result.configuration or Path(source).stem, result)
        for source, result in ((source, load_result(source)) for source in sources)
    ]


def write_pages(named: Named, pages: Sequence[Path]) -> None:
    """Each result's HTML page, with the comparison of all when there are several. The charts'
    library loads only here, so a run that writes no page never imports it."""
    from s3dlio_ray._internal.reports.html import render_html

    for (_, result), page in zip(named, pages, strict=True):
        page.write_text(render_html(result, named if len(named) > 1 else ()))
