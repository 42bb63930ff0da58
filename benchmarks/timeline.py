"""The timeline picture (matplotlib is optional: without it the picture is skipped with a note)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.harness import SimResult, path_kind
from benchmarks.scenarios import Table

# Each kind of request gets its own row of ticks below the zero line.
ROWS = {
    "token PUT": -25,
    "role-list GET": -55,
    "iam/info GET": -55,
    "credentials GET": -85,
    "other": -85,
}
COLOURS = {
    "token PUT": "tab:orange",
    "role-list GET": "tab:purple",
    "iam/info GET": "tab:brown",
    "credentials GET": "tab:blue",
    "other": "tab:gray",
}


def draw(tables: list[Table], path: Path) -> str | None:
    """Write the PNG; return None, or why it was not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        return "matplotlib is not installed (pip install 'imdscreds[bench]'): no timeline.png"
    days = [t for t in tables if t.number in (3, 4)]
    if not days:
        return "scenarios 3 and 4 did not run: no timeline.png"
    peers = list(days[0].data)
    figure, axes = plt.subplots(
        len(peers), len(days), figsize=(7 * len(days), 2.1 * len(peers) + 0.8),
        sharex=True, sharey=True, squeeze=False,
    )  # fmt: skip
    for column, table in enumerate(days):
        for row, peer in enumerate(peers):
            ax = axes[row][column]
            result: SimResult = table.data[peer]
            _plot(ax, result)
            if row == 0:
                ax.set_title(f"{table.number}. {table.title}", fontsize=9)
            if column == 0:
                ax.set_ylabel(f"{peer}\nminutes left", fontsize=8)
            if row == len(peers) - 1:
                ax.set_xlabel("simulated hours")
    handles = [
        Line2D([], [], color="black", lw=1, label="minutes left on served credentials"),
        *(
            Line2D([], [], color=c, marker="|", ls="", ms=10, label=f"IMDS {kind}")
            for kind, c in COLOURS.items()
            if kind != "other"
        ),
        Line2D([], [], color="red", marker="x", ls="", label="round with caller exceptions"),
    ]
    figure.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def _plot(ax: Any, result: SimResult) -> None:
    hours = [t / 3600 for t, _, _ in result.series]
    left = [float("nan") if m is None else m for _, m, _ in result.series]
    ax.step(hours, left, where="post", color="black", lw=1)
    ax.axhline(0, color="red", lw=0.6, ls=":")
    ax.set_ylim(-105, 400)
    ax.set_yticks([0, 100, 200, 300])
    ax.set_xlim(-0.3, max(hours, default=24))
    by_kind: dict[str, list[float]] = {}
    origin = result.request_times
    for when, (_, method, path, _) in zip(origin, result.log, strict=True):
        by_kind.setdefault(path_kind(method, path), []).append(when / 3600)
    for kind, times in by_kind.items():
        ax.plot(
            times, [ROWS[kind]] * len(times), ls="", marker="|", ms=5, mew=1.2, color=COLOURS[kind]
        )
    failed = [t / 3600 for t, _, errors in result.series if errors]
    if failed:
        ax.plot(failed, [380] * len(failed), "rx", ms=4)
    ax.tick_params(labelsize=7)
