"""Test-wide settings: headless plots, no progress bars, offline by construction."""

import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("LABKIT_PROGRESS", "0")
