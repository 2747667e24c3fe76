"""Fixtures shared by the Paillier tests (test_he.py, test_combining.py).

Small keys are opt-in and insecure: fine for arithmetic checks, fast enough for unit tests.
"""

import warnings

import pytest

import labkit as lk


def _insecure_keypair(n_length: int, cached: bool = True):
    """Return a small opt-in key pair with the InsecureKeyWarning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lk.he.InsecureKeyWarning)
        make = lk.he.cached_keypair if cached else lk.he.generate_keypair
        return make(n_length, allow_insecure=True)


@pytest.fixture(scope="session")
def other_keys():
    """A second, freshly generated 512-bit key pair, for mixing-keys errors."""
    return _insecure_keypair(512, cached=False)


@pytest.fixture(scope="session")
def insecure_keypair():
    """Return the factory ``insecure_keypair(n_length, cached=True)`` of small opt-in keys."""
    return _insecure_keypair


class NoEncrypt(lk.he.FastEncryptor):
    """An encryptor that fails the test if anything reaches encryption."""

    def raw_encrypt(self, plaintext):
        raise AssertionError("encryption ran before the input was validated")


@pytest.fixture(scope="session")
def no_encrypt():
    """The class of an encryptor that fails the test on any encryption."""
    return NoEncrypt


# Longest first: with pytest-xdist's --dist loadfile (and --no-loadscope-reorder) each file goes
# whole to one worker, in collection order, so the slow files (the website build and browser
# checks ~3 min, three chapters driven in JupyterLab ~1.5 min, the gRPC deployment ~2 min, the
# chapters) start at once and the many short unit-test files fill the gaps around them.
_SLOW_FIRST = ("test_book.py", "test_jupyterlab.py", "test_flower_deployment.py", "test_flower.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        if name in _SLOW_FIRST:
            return _SLOW_FIRST.index(name)
        return len(_SLOW_FIRST) + (0 if item.path.suffix == ".ipynb" else 1)

    items.sort(key=rank)  # stable: the order within a file is kept
