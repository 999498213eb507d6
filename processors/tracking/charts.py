"""The feature-importance chart of a job's confirmed candidates (matplotlib, Agg canvas, PNG).

Importance here is what the evaluation measured for each candidate: its lift over
the raw features (mean paired difference over the confirm splits, in the metric's
natural direction) with its 95% CI; selected features carry their importance rank.
A child run's chart marks its own feature among the job's other candidates.

The figure is laid out and drawn once per job; each run's chart is that picture with
one bar (and its error bar) drawn again in the highlight colour. Drawing the text is
most of a chart's time: 0.1 s of CPU a chart drawn whole, against 10 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from processors.tracking.specs import Bar

MAX_LABEL = 40
SELECTED, OTHER, HIGHLIGHT = "#2b7bba", "#b8c4ce", "#e4572e"
ERROR_COLOR = "#444444"
DPI = 80


class ImportanceChart:
    """`bars` (most important first) on one figure; `save(path, highlight=feature_id)` writes a PNG."""

    def __init__(self, bars: Sequence[Bar], metric: str) -> None:
        # a Figure on its own Agg canvas, not pyplot: no global backend or figure registry, safe in any thread
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.shown = list(reversed(bars))  # barh draws bottom-up: the most important on top
        self.figure = Figure(figsize=(8.0, max(2.4, 0.4 * len(self.shown) + 1.4)), dpi=DPI)
        self.canvas: Any = cast(Any, FigureCanvasAgg(self.figure))  # its methods carry no annotations
        self.axes = self.figure.add_subplot()
        self.rows: list[tuple[Any, Any]] = []  # per bar: its patch and its error bar's artists
        if self.shown:
            colors = [SELECTED if b.selected else OTHER for b in self.shown]
            patches = self.axes.barh(range(len(self.shown)), [b.lift for b in self.shown], color=colors).patches
            for y, (bar, patch) in enumerate(zip(self.shown, patches, strict=True)):
                error = self.axes.errorbar(
                    bar.lift,
                    y,
                    xerr=[[max(bar.lift - bar.ci_low, 0.0)], [max(bar.ci_high - bar.lift, 0.0)]],
                    fmt="none",
                    ecolor=ERROR_COLOR,
                    capsize=3,
                )
                self.rows.append((patch, error))
            self.axes.set_yticks(list(range(len(self.shown))), [_label(b) for b in self.shown], fontsize=8)
            self.axes.axvline(0.0, color=ERROR_COLOR, linewidth=0.8)
        else:
            self.axes.text(
                0.5, 0.5, "no candidate reached confirmation", ha="center", va="center", transform=self.axes.transAxes
            )
            self.axes.set_yticks([])
        self.axes.set_xlabel(f"lift in {metric} over the raw features (mean over confirm splits, 95% CI)")
        self.axes.set_title("feature importance: confirmed candidates (blue: selected)", fontsize=10)
        self.figure.tight_layout()
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.figure.bbox)

    def save(self, path: Path, *, highlight: str | None = None) -> Path:
        from PIL import Image

        self.canvas.restore_region(self.background)
        for bar, (patch, error) in zip(self.shown, self.rows, strict=True):
            if bar.feature_id == highlight:
                color = patch.get_facecolor()
                patch.set_facecolor(HIGHLIGHT)
                self.axes.draw_artist(patch)
                for artist in error.get_children():
                    self.axes.draw_artist(artist)
                patch.set_facecolor(color)
        width, height = self.canvas.get_width_height()
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.frombuffer("RGBA", (width, height), bytes(self.canvas.buffer_rgba()), "raw", "RGBA", 0, 1).save(
            path, format="png"
        )
        return path


def importance_png(bars: Sequence[Bar], metric: str, path: Path, *, highlight: str | None = None) -> Path:
    """One chart into the PNG at `path` (see `ImportanceChart` to draw several)."""
    return ImportanceChart(bars, metric).save(path, highlight=highlight)


def _label(bar: Bar) -> str:
    name = bar.name if len(bar.name) <= MAX_LABEL else bar.name[: MAX_LABEL - 1] + "…"
    return f"#{bar.importance_rank} {name}" if bar.importance_rank is not None else name
