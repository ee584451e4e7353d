"""The local performance page for people: each rate over time as plot geometry (the card's
interval as a band, the local intervals as error bars) and the figures in the lab's words.
Everything comes from the one set of figures the API answers; nothing is computed again."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.domain.performance import LocalPerformance, Rate, ReferenceRate

RATE_WORDS = {
    "sensitivity": (
        "Sensitivity",
        "of the cells your reviewers confirmed ALL-like, the share the model suggested ALL for",
    ),
    "specificity": (
        "Specificity",
        "of the cells your reviewers confirmed normal, the share the model suggested normal for",
    ),
    "balanced_accuracy": ("Balanced accuracy", "the mean of the two"),
}
WIDTH, HEIGHT = 320.0, 160.0
LEFT, BOTTOM = 34.0, 30.0
TOP = 8.0  # room above 100% for its tick label and a dot drawn there


@dataclass(frozen=True)
class PlotPoint:
    x: float
    y: float
    y_low: float
    y_high: float
    label: str
    wilson: bool
    text: str


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    meaning: str
    points: list[PlotPoint]
    band: tuple[float, float, float] | None
    """The card's interval (top, bottom, value line) in plot coordinates."""
    ticks: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    summary: str
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    bottom: float = BOTTOM


def y_of(value: float) -> float:
    return TOP + (HEIGHT - BOTTOM - TOP) * (1 - value)


def percent(value: float | None) -> str:
    return "none" if value is None else f"{100 * value:.0f}%"


def rate_text(rate: Rate) -> str:
    if rate.value is None:
        return "no reviewed cells of this class"
    if rate.low is None or rate.high is None:
        return percent(rate.value)
    return f"{percent(rate.value)} (95% {percent(rate.low)} to {percent(rate.high)})"


def _period_label(period: str, kind: str) -> str:
    return period[:7] if kind == "month" else period[5:]


def plot(figures: LocalPerformance, name: str) -> Plot:
    title, meaning = RATE_WORDS[name]
    periods = figures.by_period
    inner = WIDTH - LEFT - 10
    step = inner / max(len(periods), 1)
    points = []
    for index, period in enumerate(periods):
        rate: Rate = getattr(period, name)
        if rate.value is None or rate.low is None or rate.high is None:
            continue
        points.append(
            PlotPoint(
                x=LEFT + step * (index + 0.5),
                y=y_of(rate.value),
                y_low=y_of(rate.low),
                y_high=y_of(rate.high),
                label=_period_label(period.period, figures.period),
                wilson=rate.method == "wilson_cells",
                text=f"{period.period}: {rate_text(rate)}, {rate.cells} cells of "
                f"{rate.samples} samples",
            )
        )
    every = max(1, round(len(periods) / 6))
    x_labels = [
        (LEFT + step * (index + 0.5), _period_label(period.period, figures.period))
        for index, period in enumerate(periods)
        if index % every == 0
    ]
    band = None
    card: ReferenceRate | None = getattr(figures.reference, name, None)
    if card is not None:
        band = (y_of(card.high), y_of(card.low), y_of(card.value))
    summary = f"{title} over time, per {figures.period}: " + (
        "; ".join(point.text for point in points) or "no reviewed cells yet"
    )
    if card is not None:
        summary += (
            f". The card's rate on unseen patients: {percent(card.value)} (95% "
            f"{percent(card.low)} to {percent(card.high)}), the shaded band."
        )
    return Plot(
        name=name,
        title=title,
        meaning=meaning,
        points=points,
        band=band,
        ticks=[(y_of(t), f"{100 * t:.0f}%") for t in (0, 0.25, 0.5, 0.75, 1)],
        x_labels=x_labels,
        summary=summary,
    )


@dataclass
class PageView:
    figures: LocalPerformance
    plots: list[Plot] = field(default_factory=list)
    narrow: list[str] = field(default_factory=list)
    """Per rate: how many more reviewed samples would narrow its interval to ±0.05."""
    against_card: dict[str, str] = field(default_factory=dict)
    """Per rate: the local figure against the card's range, in words."""


def narrowing_words(title: str, rate: Rate) -> str:
    needed = rate.more_samples_for_0_05
    if needed is None:
        return f"{title}: no reviewed cells of its class yet."
    if needed == 0:
        return f"{title}: its interval is already within ±5 percentage points."
    rough = " (a rough guess from too few samples)" if rate.method == "wilson_cells" else ""
    return (
        f"{title}: about {needed:,} more reviewed samples like these would narrow its "
        f"interval to ±5 percentage points{rough}."
    )


def against_card_words(rate: Rate, card: ReferenceRate | None, side: str | None) -> str:
    """Where the local value lies against the card's range, and whether the two ranges can be
    told apart yet: a value outside the card's range whose own interval still overlaps it says
    little (a few samples, a wide interval)."""
    if card is None or side is None:
        return "\N{EN DASH}"
    if side == "within":
        return "within its range"
    overlaps = (
        rate.low is None or rate.high is None or (rate.low <= card.high and rate.high >= card.low)
    )
    if overlaps:
        return f"{side} its range, but the two ranges overlap: not told apart yet"
    return f"{side} its range"


def page_view(figures: LocalPerformance) -> PageView:
    view = PageView(figures=figures)
    for name in RATE_WORDS:
        rate: Rate = getattr(figures, name)
        view.plots.append(plot(figures, name))
        view.narrow.append(narrowing_words(RATE_WORDS[name][0], rate))
        card = getattr(figures.reference, name) if figures.reference else None
        view.against_card[name] = against_card_words(rate, card, getattr(figures.drift, name))
    return view
