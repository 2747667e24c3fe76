"""Build the course website from the committed notebook outputs, for reading offline.

Usage: uv run --group docs python tools/build_book.py [-W] [--lang en|zh_CN|all] [--pdf]
Then open build/book/_build/html/index.html (Chinese: build/book/_build/html/zh_CN/index.html);
the PDFs land in build/book/course.pdf and build/book/course-zh_CN.pdf.
After editing the English prose: ``tools/build_book.py --update-catalogues`` re-extracts it into
notebooks/locales/zh_CN/LC_MESSAGES/*.po (sphinx-intl), and ``tools/translation_status.py``
lists what is untranslated or fuzzy per chapter.

Steps: (1) copy the widget manager and require.js shipped in tools/book_widgets/ (checked
against its SHA256SUMS; see its README for their licences) under build/book-assets, which
notebooks/_config.yml ships through ``html_extra_path`` (not ``_static/``, whose .js files
Jupyter Book would load on every page, a second time on widget pages); (2) run
``jupyter-book build`` (nothing is executed). MathJax 3 comes from the sphinx-mathjax-offline
wheel. ``-W`` turns warnings into errors (the tests use it). Nothing here uses the network;
``--refresh-widgets`` (maintainers only) re-fetches the pinned npm packages into tools/book_widgets.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
NOTEBOOKS = ROOT / "notebooks"
LOCALES = NOTEBOOKS / "locales"  # gettext catalogues: locales/<lang>/LC_MESSAGES/<page>.po
LANGS = ("en", "zh_CN")
OUT = BUILD / "book"
HTML = OUT / "_build" / "html"
ASSETS = BUILD / "book-assets"
WIDGETS = ASSETS / "_static" / "widgets"  # served as _static/widgets/ (see _config.yml)

VENDORED = ROOT / "tools" / "book_widgets"

# name, version, npm integrity (sha512), files taken from the tarball's package/ folder: used only
# by --refresh-widgets. html-manager 1.x renders the state saved by ipywidgets 8.
NPM_PACKAGES = [
    (
        "@jupyter-widgets/html-manager",
        "1.0.15",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        ("dist/embed-amd.js", "dist/*.woff2", "dist/embed.js.LICENSE.txt"),
    ),
    (
        "requirejs",
        "2.3.8",
        "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
        ("require.js",),
    ),
]


# Loaded between require.js and the manager. The manager's bundled modules (base, controls,
# html-manager) locate their fonts relative to their own module URL, which require.js derives
# from the module name: map those names into this folder instead of the site's root.
REQUIRE_CONFIG = """\
(function () {
  var here = document.currentScript.src.replace(/[?#].*$/, "").replace(/\\/[^/]*$/, "");
  require.config({paths: {"@jupyter-widgets": here, "@jupyter-widgets/html-manager/dist": here}});
})();
"""


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def refresh_widgets() -> None:
    """Maintainers: fetch the pinned npm packages and rewrite tools/book_widgets (network)."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("--refresh-widgets needs npm")
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, integrity, patterns in NPM_PACKAGES:
            subprocess.run(
                [npm, "pack", f"{name}@{version}", "--pack-destination", tmp],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            path = Path(tmp) / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
            if _integrity(path) != integrity:
                raise SystemExit(f"{path.name}: integrity mismatch with the pinned npm hash")
            with tarfile.open(path) as tar:
                for member in tar.getmembers():
                    rel = Path(member.name).relative_to("package")
                    if member.isfile() and any(rel.match(p) for p in patterns):
                        (VENDORED / rel.name).write_bytes(tar.extractfile(member).read())
    files = sorted(p for p in VENDORED.iterdir() if p.suffix in (".js", ".woff2", ".txt"))
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in files)
    (VENDORED / "SHA256SUMS").write_text(sums)


def widget_assets() -> list[Path]:
    """Copy the shipped widget scripts under build/book-assets (checked); return the files."""
    shutil.rmtree(WIDGETS, ignore_errors=True)
    WIDGETS.mkdir(parents=True)
    written = []
    for line in (VENDORED / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        data = (VENDORED / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise SystemExit(f"tools/book_widgets/{name} does not match its SHA256SUMS")
        (WIDGETS / name).write_bytes(data)
        written.append(WIDGETS / name)
    (WIDGETS / "README.md").write_bytes((VENDORED / "README.md").read_bytes())  # the licences
    (WIDGETS / "require-config.js").write_text(REQUIRE_CONFIG)
    return [*written, WIDGETS / "README.md", WIDGETS / "require-config.js"]


_assets_lock = threading.Lock()
_assets_copied = False


def _ensure_assets() -> None:
    """Copy the widget scripts once per process (the editions build in parallel threads)."""
    global _assets_copied
    with _assets_lock:
        if not _assets_copied:
            widget_assets()
            _assets_copied = True


# Sphinx parses each translation as a little document of its own and keeps the English when the
# result is not a paragraph or a title. A translation that opens like a block of Markdown does
# not parse as one: "1. 方法" (a numbered section title) is a list, "+ 安全聚合" (a table cell) a
# bullet. A backslash makes that first character literal text, as in the English source.
_BLOCK_START = re.compile(r"^(\d+)([.)])(?=\s|$)|^([-+*>#])(?=\s|$)")


def _escape_block_start(text: str) -> str:
    """``text`` with a leading list, quote or heading marker escaped (shown unchanged)."""
    return _BLOCK_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", text, count=1)


def _catalogues(lang: str, locales: Path = LOCALES, out: Path = BUILD / "locales") -> Path:
    """The locale folder Sphinx reads: ``locales``' catalogues under ``out``, each translation's
    first character escaped where it would open a Markdown block (see ``_BLOCK_START``).

    A file is rewritten only when its content changes: Sphinx recompiles a newer .po and then
    re-reads every page, which would cost the single-page build its shared doctrees.
    """
    from babel.messages.pofile import read_po, write_po

    for source in sorted((locales / lang / "LC_MESSAGES").glob("*.po")):
        with open(source, "rb") as f:
            catalog = read_po(f)
        for message in catalog:
            if message.id and isinstance(message.string, str) and message.string != message.id:
                message.string = _escape_block_start(message.string)
        buffer = io.BytesIO()
        write_po(buffer, catalog, width=0)
        target = out / lang / "LC_MESSAGES" / source.name
        if not target.exists() or target.read_bytes() != buffer.getvalue():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(buffer.getvalue())
    done = locales / lang / "DONE"  # the pages whose translation is finished (book_cells.py)
    if done.is_file():
        shutil.copy2(done, out / lang / "DONE")
    return out


def _config(lang: str) -> Path:
    """notebooks/_config.yml for one language (paths made absolute); return its path."""
    config = yaml.safe_load((NOTEBOOKS / "_config.yml").read_text())
    sphinx = config["sphinx"]
    sphinx["local_extensions"] = {k: str(ROOT / "tools") for k in sphinx["local_extensions"]}
    sphinx["config"]["html_extra_path"] = [str(ASSETS)]
    sphinx["config"].update(
        language=lang,
        locale_dirs=[str(LOCALES if lang == "en" else _catalogues(lang))],
        gettext_compact=False,  # one catalogue per chapter
        gettext_uuid=False,
        gettext_location=False,  # line numbers would mark every entry changed after an edit
        book_language=lang,
    )
    path = BUILD / f"config-{lang}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


def _toc_captions(toc: dict) -> list[str]:
    return [part["caption"] for part in toc.get("parts", []) if part.get("caption")]


def _toc(lang: str) -> Path:
    """notebooks/_toc.yml with its part captions translated from locales/<lang>/.../_toc.po.

    Jupyter Book writes the toctree (and its captions) at build time, so Sphinx's gettext never
    sees the captions; they have their own small catalogue, kept by ``--update-catalogues``.
    """
    from babel.messages.pofile import read_po

    source = NOTEBOOKS / "_toc.yml"
    if lang == "en":
        return source
    toc = yaml.safe_load(source.read_text())
    with open(LOCALES / lang / "LC_MESSAGES" / "_toc.po", "rb") as f:
        catalog = read_po(f)
    for part in toc.get("parts", []):
        message = catalog.get(part.get("caption", ""))
        if message is not None and message.string and not message.fuzzy:
            part["caption"] = message.string
    path = BUILD / f"toc-{lang}.yml"
    path.write_text(yaml.safe_dump(toc, allow_unicode=True, sort_keys=False))
    return path


def _update_toc_catalogue(lang: str) -> None:
    """Add the part captions that _toc.po lacks (untranslated); drop the ones no longer used."""
    import json

    from babel.messages.pofile import read_po

    path = LOCALES / lang / "LC_MESSAGES" / "_toc.po"
    old = read_po(path.open("rb")) if path.exists() else None
    lines = [
        "# The course website's part captions (notebooks/_toc.yml), kept by",
        "# tools/build_book.py --update-catalogues.",
        'msgid ""',
        'msgstr ""',
        f'"Language: {lang}\\n"',
        '"Content-Type: text/plain; charset=utf-8\\n"',
    ]
    for caption in _toc_captions(yaml.safe_load((NOTEBOOKS / "_toc.yml").read_text())):
        message = old.get(caption) if old is not None else None
        translated = message.string if message is not None and message.string else ""
        # a JSON string literal is a valid PO string literal for these one-line captions
        msgid, msgstr = (json.dumps(t, ensure_ascii=False) for t in (caption, translated))
        lines += ["", f"msgid {msgid}", f"msgstr {msgstr}"]
    path.write_text("\n".join(lines) + "\n")


# `jupyter-book` itself, minus 2-3 s of start-up per build: jsonschema (which jupyter-book imports
# to check _config.yml) imports rfc3987_syntax, which compiles ~35 Earley grammars at import time
# (python-jsonschema/jsonschema#1428), only to check the "iri" format, which jupyter-book's schema
# does not use. A None in sys.modules makes that optional import fail, as if it were not installed.
JUPYTER_BOOK = (
    "import sys; sys.modules['rfc3987_syntax'] = None; "
    "from jupyter_book.cli.main import main; sys.exit(main())"
)


def _jupyter_book(lang: str, out: Path, builder: str, warnings_as_errors: bool) -> None:
    cmd = [sys.executable, "-c", JUPYTER_BOOK, "build"]
    # html reads every page afresh (--all); singlehtml then shares its doctrees (out/_build/
    # .doctrees) and re-reads only pages changed since, which halves its time (the Chinese
    # edition's reading, with its translated paragraphs re-parsed, is most of a build).
    if builder != "singlehtml":
        cmd.append("--all")
    cmd += ["--config", str(_config(lang)), "--toc", str(_toc(lang)), "--path-output", str(out)]
    if builder == "gettext":
        cmd += ["--builder", "custom", "--custom-builder", "gettext"]
    elif builder != "html":
        cmd += ["--builder", builder]
    if warnings_as_errors:
        cmd += ["-W", "-n", "--keep-going"]
    subprocess.run([*cmd, str(NOTEBOOKS)], check=True, cwd=ROOT)


def build(warnings_as_errors: bool = False, lang: str = "en", builder: str = "html") -> Path:
    """Build one edition; return its index.html (html, singlehtml) or output folder.

    The Chinese html edition is copied into the English one as zh_CN/, so that each page can
    link to the same page in the other language with a relative link.
    """
    out = OUT if lang == "en" else BUILD / f"book-{lang}"
    if builder == "gettext":  # its own doctrees and no assets: it may run beside an html build
        out = BUILD / "book-gettext"
    else:
        _ensure_assets()
    _jupyter_book(lang, out, builder, warnings_as_errors)
    if builder == "gettext":
        return out / "_build" / "gettext"
    if builder == "singlehtml":
        return out / "_build" / "singlehtml" / "intro.html"  # the root page (index redirects)
    if lang != "en":
        shutil.rmtree(HTML / lang, ignore_errors=True)
        shutil.copytree(out / "_build" / "html", HTML / lang)
        return HTML / lang / "index.html"
    return HTML / "index.html"


def update_catalogues() -> Path:
    """Extract the English prose (gettext) and merge it into notebooks/locales/*/LC_MESSAGES."""
    pot = build(builder="gettext")
    for lang in LANGS[1:]:
        subprocess.run(
            [str(Path(sys.executable).with_name("sphinx-intl")), "update", "-p", str(pot)]
            + ["-l", lang, "-d", str(LOCALES), "-w", "0"],
            check=True,
            cwd=ROOT,
        )
        _update_toc_catalogue(lang)
    return LOCALES


def pdf(lang: str = "en", warnings_as_errors: bool = False) -> Path:
    """Build the single-page edition and print it to build/book/course[-lang].pdf."""
    import book_pdf

    index = build(warnings_as_errors, lang, "singlehtml")
    name = "course.pdf" if lang == "en" else f"course-{lang}.pdf"
    return book_pdf.print_pdf(index.parent, index.name, OUT / name)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-W", action="store_true", help="treat warnings as errors")
    parser.add_argument("--lang", choices=[*LANGS, "all"], default="en", help="edition(s)")
    parser.add_argument("--pdf", action="store_true", help="also print the course to PDF")
    parser.add_argument(
        "--update-catalogues",
        action="store_true",
        help="re-extract the English prose into notebooks/locales (then translate, rebuild)",
    )
    parser.add_argument(
        "--refresh-widgets", action="store_true", help="re-fetch tools/book_widgets from npm"
    )
    args = parser.parse_args(argv)
    if args.refresh_widgets:
        refresh_widgets()
        return 0
    if args.update_catalogues:
        print(f"catalogues updated in {update_catalogues().relative_to(ROOT)}")
        return 0
    start = time.perf_counter()

    def edition(lang: str) -> list[str]:
        lines = [f"{lang}: open {build(args.W, lang).relative_to(ROOT)}"]
        if args.pdf:
            lines.append(f"{lang}: {pdf(lang, args.W).relative_to(ROOT)}")
        return lines

    # The editions build side by side: each is a chain of single-threaded steps (Sphinx, then
    # Chromium printing), so two use two cores; their outputs never share a file.
    langs = LANGS if args.lang == "all" else [args.lang]
    _ensure_assets()
    with ThreadPoolExecutor(len(langs)) as pool:
        for lines in pool.map(edition, langs):
            print("\n".join(lines))
    print(f"built in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
