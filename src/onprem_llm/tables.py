"""Plain-text tables for terminals and logs."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def render_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], right: Collection[int] = ()
) -> str:
    """Columns padded to their widest cell; columns listed in `right` are right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(values: Sequence[str]) -> str:
        parts = []
        for index, value in enumerate(values):
            aligned = value.rjust if index in right else value.ljust
            parts.append(aligned(widths[index]))
        return "  ".join(parts).rstrip()

    separator = "  ".join("-" * width for width in widths)
    return "\n".join([line(list(headers)), separator, *(line(row) for row in cells)])
