"""Test-wide settings for tests/ and the nbval-run notebooks: headless plots, no progress bars."""

import importlib.util
import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("LABKIT_PROGRESS", "0")

# Chapter 09 needs Flower (`uv sync --group flower`); without it nbval skips the chapter.
if importlib.util.find_spec("flwr") is None:
    collect_ignore_glob = ["notebooks/09_*.ipynb"]
