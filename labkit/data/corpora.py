"""Public and private text for the model-service chapter, from the shipped Shakespeare.

A model service pretrains on public text and fine-tunes on its users' private text. Here both
come from the plays in ``labkit/datasets/shakespeare``: some plays are "public" (the comedies and
histories by default), others "private" (tragedies: another domain, so fine-tuning has something
to learn). Canaries (``"<name>'s pin is <digits>"``) are planted in the private training text,
as Carlini et al. (2019) plant them; the private part's unique long lines that never occur in the
public plays are the "rare private lines" an extraction attack may reproduce.

The query log: every speaking role is one user, and the first two words of each of its lines are
the "prompts" it sent (``query_log``). Which phrases are popular is what a service would like to
publish; the set of possible phrases is not known in advance (an unknown domain).
Everything here is deterministic for a given seed.
"""

from __future__ import annotations

import re

import numpy as np

from labkit._checks import ParameterError, check_float, check_int
from labkit.config import make_rng
from labkit.data import text

__all__ = [
    "PUBLIC_PLAYS",
    "PRIVATE_PLAYS",
    "CANARY_NAMES",
    "service_corpora",
    "rare_lines",
    "query_log",
]

PUBLIC_PLAYS = (
    "as_you_like_it",
    "twelfth_night",
    "much_ado_about_nothing",
    "merchant_of_venice",
    "henry_iv_part_1",
    "richard_ii",
    "midsummer_nights_dream",
    "taming_of_the_shrew",
)
PRIVATE_PLAYS = ("hamlet", "macbeth", "othello", "lear")
CANARY_NAMES = ("anne", "bill", "cara", "dave", "emma", "fred", "gina", "hugo")


def _check_plays(name: str, plays) -> list[str]:
    known = text.list_plays()
    plays = list(plays)
    if not plays or any(p not in known for p in plays):
        raise ParameterError(name, plays, f"a non-empty list of plays from {known}")
    return plays


def rare_lines(private: str, public: str, min_chars: int = 24) -> list[str]:
    """Return the lines of ``private`` that occur exactly once there, never in ``public``,
    and have at least ``min_chars`` characters: text only the private data can teach."""
    min_chars = check_int("min_chars", min_chars, 1)
    seen_public = set(public.split("\n"))
    counts: dict[str, int] = {}
    for line in private.split("\n"):
        counts[line] = counts.get(line, 0) + 1
    return sorted(
        ln for ln, c in counts.items() if c == 1 and len(ln) >= min_chars and ln not in seen_public
    )


def service_corpora(
    public_plays=PUBLIC_PLAYS,
    private_plays=PRIVATE_PLAYS,
    seq_len: int = 48,
    canary_counts=(1, 4, 16, 64),
    secret_length: int = 5,
    heldout_fraction: float = 0.1,
    max_public_chars: int | None = None,
    max_private_chars: int | None = None,
    seed: int = 0,
) -> dict:
    """Return the public and private corpora as training chunks, with canaries planted.

    Args:
        public_plays, private_plays: disjoint lists of shipped plays.
        seq_len: characters per training chunk (and the model's context).
        canary_counts: how often canary i is planted in the private training text.
        secret_length: digits of each canary's secret (candidate space 10 ** secret_length).
        heldout_fraction: the last part of the private text, kept out of training, on which
            perplexity is measured ("the private domain").
        max_public_chars, max_private_chars: keep only the start of each corpus (quick mode).
        seed: which secrets and where they are planted.

    Returns:
        A dict with ``public`` and ``private`` (``(x, y)`` chunk pairs, chunks overlapping by
        half so a canary cut at one edge is whole in the next), ``heldout`` (``(x, y)``),
        ``spaces`` and ``secrets`` (the canaries, ``labkit.data.text.CanarySpace``),
        ``counts``, ``canaries`` (full strings), ``rare_lines`` of the private training text and
        the texts themselves (``public_text``, ``private_text``).
    """
    public_plays = _check_plays("public_plays", public_plays)
    private_plays = _check_plays("private_plays", private_plays)
    if set(public_plays) & set(private_plays):
        raise ParameterError(
            "private_plays", private_plays, f"disjoint from public_plays {public_plays}"
        )
    seq_len = check_int("seq_len", seq_len, 8)
    secret_length = check_int("secret_length", secret_length, 1, 9)
    heldout_fraction = check_float("heldout_fraction", heldout_fraction, 0.0, 0.5, low_open=True)
    counts = [check_int("canary_counts", c, 0) for c in canary_counts]
    if len(counts) > len(CANARY_NAMES):
        raise ParameterError("canary_counts", canary_counts, f"at most {len(CANARY_NAMES)} entries")
    for name, v in (
        ("max_public_chars", max_public_chars),
        ("max_private_chars", max_private_chars),
    ):
        if v is not None:
            check_int(name, v, 4 * seq_len)
    public = text.role_text(text.load_roles(public_plays))[:max_public_chars]
    private = text.role_text(text.load_roles(private_plays))[:max_private_chars]
    cut = int(len(private) * (1.0 - heldout_fraction))
    rng = make_rng(seed)
    spaces = [text.CanarySpace(f"{n}'s pin is ", length=secret_length) for n in CANARY_NAMES]
    spaces = spaces[: len(counts)]
    secrets = [sp.secret(int(rng.integers(sp.size))) for sp in spaces]
    canaries = [sp.canary(s) for sp, s in zip(spaces, secrets, strict=True)]
    train = text.insert_canaries(private[:cut], canaries, counts, seq_len, seed=seed)
    x_pub, y_pub = text.sequence_chunks(text.encode(public), seq_len, stride=seq_len // 2)
    x_pri, y_pri = text.sequence_chunks(text.encode(train), seq_len, stride=seq_len // 2)
    x_ho, y_ho = text.sequence_chunks(text.encode(private[cut:]), seq_len)
    return {
        "public": (x_pub.astype(np.float32), y_pub),
        "private": (x_pri.astype(np.float32), y_pri),
        "heldout": (x_ho.astype(np.float32), y_ho),
        "spaces": spaces,
        "secrets": secrets,
        "canaries": canaries,
        "counts": counts,
        "rare_lines": rare_lines(private[:cut], public),
        "public_text": public,
        "private_text": train,
        "seq_len": seq_len,
    }


_WORD = re.compile(r"[a-z']+")


def query_log(plays=None, words: int = 2, unit: str = "role") -> list[list[str]]:
    """Return one list of "queries" per user: the first ``words`` words of each line it spoke.

    ``unit='role'``: a user is one speaking role of one play (LEAF-style); ``'line'``: every
    line is its own user. Words are lower-cased, punctuation dropped; lines with fewer than
    ``words`` words are skipped. Users keep their queries in order, repeats included.
    """
    words = check_int("words", words, 1, 8)
    if unit not in ("role", "line"):
        raise ParameterError("unit", unit, "'role' or 'line'")
    plays = text.list_plays() if plays is None else _check_plays("plays", plays)
    users: list[list[str]] = []
    for role in text.load_roles(plays):
        queries = []
        for line in role.lines:
            w = _WORD.findall(line.lower())
            if len(w) >= words:
                queries.append(" ".join(w[:words]))
        if unit == "line":
            users += [[q] for q in queries]
        elif queries:
            users.append(queries)
    return users
