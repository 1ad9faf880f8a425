"""Result files re-rendered as HTML pages (`s3dlio-ray report`, `s3dlio_ray.report`): where each
page goes; one result's page, the configurations of one run each with the comparison of all,
and several results' comparison page (a new file: never over a result or its own page)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.reports.compare import Named
from s3dlio_ray._internal.reports.files import load_result


def report_page(sources: Sequence[str | Path], html: str | Path | None) -> Path:
    """Where the page goes: `html`; else one result's beside it, several results' comparison
    beside the first as compare-A-B.html."""
    if not sources:
        raise ConfigError("report: give at least one result file")
    paths = [Path(source) for source in sources]
    if html is not None:
        page = Path(html)
    elif len(paths) == 1:
        page = paths[0].with_suffix(".html")
    else:
        page = paths[0].with_name("compare-" + "-".join(p.stem for p in paths) + ".html")
    mine = {p.resolve() for p in paths} | (
        {p.with_suffix(".html").resolve() for p in paths} if len(paths) > 1 else set()
    )
    if page.resolve() in mine:
        raise ConfigError(
            f"--html {page} would overwrite a result or its own page: name a new file"
        )
    return page


def named_results(sources: Sequence[str | Path]) -> Named:
    """Result files, each named by its configuration, else its file's name."""
    return [
        (result.configuration or Path(source).stem, result)
        for source, result in ((source, load_result(source)) for source in sources)
    ]


def write_report(named: Named, page: Path) -> None:
    """One result's page, or several results' comparison page."""
    from s3dlio_ray._internal.reports.html import render_comparison_html, render_html

    page.write_text(render_html(named[0][1]) if len(named) == 1 else render_comparison_html(named))


def write_pages(named: Named, pages: Sequence[Path]) -> None:
    """Each result's HTML page, with the comparison of all when there are several. The charts'
    library loads only here, so a run that writes no page never imports it."""
    from s3dlio_ray._internal.reports.html import render_html

    for (_, result), page in zip(named, pages, strict=True):
        page.write_text(render_html(result, named if len(named) > 1 else ()))
