"""Tables for chapters: Markdown text and an HTML display object (``labkit.results``)."""

from __future__ import annotations

import html

from labkit._checks import ParameterError, check_int

__all__ = ["format_table", "Table", "show_table"]


def format_table(rows: list[dict], columns: list[str], precision: int = 3) -> str:
    """Return ``rows`` as a Markdown table of ``columns``, floats at fixed significant digits.

    A missing value (None, e.g. no epsilon without DP) shows as an en dash, not as "None".
    """

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(_cell(r.get(c, ""), precision) for c in columns) + " |" for r in rows
    ]
    return "\n".join(lines)


def _cell(v, precision: int) -> str:
    if v is None:
        return "–"
    return f"{v:.{precision}g}" if isinstance(v, float) else str(v)


class Table:
    """A table that Jupyter shows as HTML, with Markdown and plain-text (Markdown) fallbacks.

    The course site renders Markdown outputs as run-on text, so HTML comes first; ``data`` is
    the Markdown of ``format_table``, the same text as before.
    """

    def __init__(self, rows: list[dict], columns: list[str], precision: int = 3):
        self.rows, self.columns, self.precision = rows, list(columns), precision
        self.data = format_table(rows, self.columns, precision=precision)

    def _repr_markdown_(self) -> str:
        return self.data

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, ''), self.precision))}</td>"
                             for c in self.columns) + "</tr>"
            for r in self.rows
        )  # fmt: skip
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>"

    def __repr__(self) -> str:
        return self.data


def show_table(rows: list[dict], columns: list[str], precision: int = 3) -> Table:
    """Return ``rows`` as a ``Table``: HTML in Jupyter and on the site, Markdown as fallback."""
    if not isinstance(rows, list | tuple) or not all(isinstance(r, dict) for r in rows):
        raise ParameterError("rows", rows, "a list of dicts, one per row")
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise ParameterError("columns", columns, "a list of column names")
    return Table(list(rows), list(columns), check_int("precision", precision, 1, 17))
