"""Build the course website from the committed notebook outputs, for reading offline.

Usage: uv run --group docs python tools/build_book.py [-W]
Then open build/book/_build/html/index.html in a browser.

Steps: (1) fetch the pinned widget manager and require.js from the npm registry into build/npm
once (checked against their registry integrity hashes) and lay them out under build/book-assets,
which notebooks/_config.yml ships through ``html_extra_path`` (not ``_static/``, whose .js files
Jupyter Book would load on every page, a second time on widget pages); (2) run
``jupyter-book build`` (nothing is executed). MathJax 3 comes from the sphinx-mathjax-offline
wheel. ``-W`` turns warnings into errors (the tests use it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
OUT = BUILD / "book"
HTML = OUT / "_build" / "html"
NPM_CACHE = BUILD / "npm"
ASSETS = BUILD / "book-assets"
WIDGETS = ASSETS / "_static" / "widgets"  # served as _static/widgets/ (see _config.yml)

# name, version, npm integrity (sha512), files taken from the tarball's package/ folder.
# html-manager 1.x renders the state saved by ipywidgets 8 (controls 2.x, base 2.x).
NPM_PACKAGES = [
    (
        "@jupyter-widgets/html-manager",
        "1.0.15",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        (
            "dist/embed-amd.js",
            "dist/*.woff2",
            "dist/*.woff",
            "dist/*.ttf",
            "dist/*.eot",
            "dist/*.svg",
            "LICENSE",
        ),
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


def _tarball(name: str, version: str, integrity: str) -> Path:
    """Return the package tarball from build/npm, fetching it with `npm pack` when missing."""
    path = NPM_CACHE / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if not path.exists() or _integrity(path) != integrity:
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is needed once to fetch the widget scripts (apt-get install npm)")
        subprocess.run(
            [npm, "pack", f"{name}@{version}", "--pack-destination", str(NPM_CACHE)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if _integrity(path) != integrity:
        raise SystemExit(f"{path.name}: integrity mismatch with the pinned npm hash")
    return path


def widget_assets() -> list[Path]:
    """Lay out the widget manager and require.js under build/book-assets; return the files."""
    shutil.rmtree(WIDGETS, ignore_errors=True)
    WIDGETS.mkdir(parents=True)
    written = []
    for name, version, integrity, patterns in NPM_PACKAGES:
        with tarfile.open(_tarball(name, version, integrity)) as tar:
            for member in tar.getmembers():
                rel = Path(member.name).relative_to("package")
                if member.isfile() and any(rel.match(p) for p in patterns):
                    target = WIDGETS / (
                        f"LICENSE.{name.split('/')[-1]}" if rel.name == "LICENSE" else rel.name
                    )
                    target.write_bytes(tar.extractfile(member).read())
                    written.append(target)
    (WIDGETS / "require-config.js").write_text(REQUIRE_CONFIG)
    return [*written, WIDGETS / "require-config.js"]


def build(warnings_as_errors: bool = False) -> Path:
    """Build the site into build/book; return the path of its index.html."""
    widget_assets()
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", "--all"]
    cmd += ["--path-output", str(OUT), str(ROOT / "notebooks")]
    if warnings_as_errors:
        cmd += ["-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return HTML / "index.html"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-W", action="store_true", help="treat warnings as errors")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    index = build(warnings_as_errors=args.W)
    print(f"built in {time.perf_counter() - start:.0f} s; open {index.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
