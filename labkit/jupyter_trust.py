"""Jupyter server extension: trust the workbook's own chapters, so their saved widgets render.

JupyterLab renders a notebook's saved widgets (and any HTML or JavaScript output) only when the
notebook is *trusted*: its signature is in the user's notary database. On a fresh machine nothing
is signed yet, so every knob shows as raw text (``interactive(children=...``) until the learner runs
``jupyter trust``. This extension, enabled by ``etc/jupyter/jupyter_server_config.d/labkit.json``
(shipped with labkit, see ``[tool.hatch.build.targets.wheel.shared-data]``), signs them when the
server starts.

Why this is safe, and why only these files: the chapters ``NN_*.ipynb`` directly in the
``notebooks/`` folder of the checkout that labkit itself is imported from are part of the same
installed code as labkit: whoever can write them can also write ``labkit/*.py``, which runs
unsandboxed in every chapter's kernel and in this very server. Trusting their outputs therefore
grants nothing that installing the project did not already grant. Nothing else is signed: other
notebooks (a learner's own, a downloaded one, a copy elsewhere with other content) stay untrusted
as JupyterLab intends. A signature covers the content, not the path, so a byte-identical copy of a
chapter is trusted too, and a changed chapter only when JupyterLab signs it on save (it does so for
outputs the learner produced). A non-editable install (labkit in site-packages) has no checkout
next to it and signs nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["CHAPTER", "project_chapters", "trust_chapters"]

CHAPTER = re.compile(r"\d\d_[A-Za-z0-9_]+\.ipynb")


def project_chapters(root: Path | None = None) -> list[Path]:
    """The chapter notebooks of the checkout that holds this labkit (empty if there is none)."""
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    if not (root / "pyproject.toml").is_file() or not (root / "labkit").is_dir():
        return []
    folder = root / "notebooks"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and CHAPTER.fullmatch(p.name))


def trust_chapters(notary, root: Path | None = None, log=None) -> list[Path]:
    """Sign every project chapter with ``notary`` (an ``nbformat.sign.NotebookNotary``)."""
    import nbformat

    signed = []
    for path in project_chapters(root):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as err:  # a broken file must not stop the server
            if log is not None:
                log.warning("labkit: cannot read %s to trust it: %s", path, err)
            continue
        if not notary.check_signature(nb):
            notary.sign(nb)
        signed.append(path)
    return signed


def _jupyter_server_extension_points():
    return [{"module": "labkit.jupyter_trust"}]


def _load_jupyter_server_extension(serverapp) -> None:
    signed = trust_chapters(serverapp.contents_manager.notary, log=serverapp.log)
    if signed:
        serverapp.log.info("labkit: trusted %d chapters in %s", len(signed), signed[0].parent)
