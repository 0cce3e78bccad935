"""Markdown tables of the benchmark binaries (one helper, shared without importing a binary)."""

from __future__ import annotations


def table(rows: list[list[str]], header: list[str]) -> str:
    """A Markdown table: `header` then `rows` (lists of cell strings)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
