"""Test-wide settings for tests/ and the nbval-run notebooks: headless plots, no progress bars."""

import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("LABKIT_PROGRESS", "0")
