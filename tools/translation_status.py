"""Per chapter, how much of the Chinese edition is translated, and which strings are not.

Usage: uv run --group docs python tools/translation_status.py [--list] [page ...]
Reads notebooks/locales/zh_CN/LC_MESSAGES/<page>.po (refresh them first after English edits:
``uv run --group docs python tools/build_book.py --update-catalogues``). A string counts as
translated when it has a translation that is not marked fuzzy (sphinx-intl marks a string fuzzy
when its English changed). ``--list`` prints each untranslated or fuzzy string.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
CATALOGUES = ROOT / "notebooks" / "locales" / "zh_CN" / "LC_MESSAGES"


@dataclass
class Status:
    page: str
    total: int = 0
    translated: int = 0
    untranslated: list[str] = field(default_factory=list)
    fuzzy: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.translated / self.total if self.total else 1.0


def status(page: str) -> Status:
    """Count the translated, non-fuzzy strings of one page's catalogue."""
    with open(CATALOGUES / f"{page}.po", "rb") as f:
        catalog = read_po(f)
    result = Status(page)
    for message in catalog:
        if not message.id:
            continue
        result.total += 1
        if message.fuzzy:
            result.fuzzy.append(message.id)
        elif message.string:
            result.translated += 1
        else:
            result.untranslated.append(message.id)
    return result


def pages() -> list[str]:
    return sorted(p.stem for p in CATALOGUES.glob("*.po"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", help="pages (default: all)")
    parser.add_argument("--list", action="store_true", help="print the missing strings")
    args = parser.parse_args(argv)
    for page in args.pages or pages():
        s = status(page)
        print(
            f"{page:32s} {s.translated:4d}/{s.total:<4d} {100 * s.share:5.1f} %"
            f"  untranslated {len(s.untranslated)}, fuzzy {len(s.fuzzy)}"
        )
        if args.list:
            for kind, ids in (("untranslated", s.untranslated), ("fuzzy", s.fuzzy)):
                for msgid in ids:
                    print(f"    {kind}: {msgid[:110]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
