"""labkit.config: the library versions every chapter prints."""

from importlib import metadata

import labkit as lk


def test_versions_reports_installed_and_missing_packages():
    found = lk.config.versions(("numpy", "no-such-package-xyz"))
    assert found["numpy"] == metadata.version("numpy")
    assert found["labkit"] == metadata.version("labkit")
    assert found["no-such-package-xyz"] == "not installed"
    assert found["python"].startswith("3.11")
