"""Inference as a private service: the client's features go in encrypted, the score comes back so.

The client encrypts its feature vector x under its own Paillier key (fixed point, DJN fast
encryption from ``labkit.he``) and sends the ciphertexts. The service holds a linear model
(W, b) in the clear and computes, on ciphertexts only,

    E(s_k) = prod_j E(x_j)^(w_jk) * E(b_k) * E(0)       (Paillier: E(a) E(c) = E(a + c),
                                                        E(a)^w = E(w a))

with integer weight codes w_jk = round(W_jk 2^f_w). The fresh E(0) re-randomises the result, so
the ciphertext the client gets back says nothing about W beyond the scores themselves. Only the
client can decrypt. The service learns the input's length, the time and size of each request -
nothing about the values; the client learns the k scores (which, over many queries, can reveal a
linear model: d + 1 well-chosen queries determine it, Tramer et al. 2016).

Error: with fixed-point codes at f_x bits for x and f_w bits for W (b at f_x + f_w bits), the
decrypted score differs from ``x @ W + b`` by at most ``score_error_bound(...)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import gmpy2
import numpy as np
from phe import paillier

from labkit._checks import ParameterError, check_finite_array
from labkit.he import (
    EncryptedVector,
    FastEncryptor,
    FixedPoint,
    KeyMismatchError,
    ValueRangeError,
    check_private_key,
    ciphertext_bytes,
    decrypt_vector,
    encrypt_vector,
)
from labkit.he.keys import check_public_key

__all__ = ["LinearService", "score_error_bound", "private_query", "FLOAT32_BYTES"]

FLOAT32_BYTES = 4  # a plaintext request sends float32 features and gets float32 scores back


def score_error_bound(x, weights, bias, x_frac_bits: int, w_frac_bits: int) -> np.ndarray:
    """Return, per score, the largest |decrypted - (x @ W + b)| the fixed-point codes allow.

    Each x_j is off by at most e_x = 2^-(f_x+1), each W_jk by e_w = 2^-(f_w+1) and b_k by
    2^-(f_x+f_w+1); the products' errors add up: sum_j |W_jk| e_x + |x_j| e_w + e_x e_w.
    """
    x = np.abs(check_finite_array("x", x).ravel())
    w = np.abs(_check_weights(weights))
    if w.shape[0] != x.size:
        raise ParameterError("x", x, f"{w.shape[0]} features, one per row of weights")
    x_frac_bits = FixedPoint(x_frac_bits).frac_bits  # validates: a multiple of 4 in [0, 256]
    w_frac_bits = FixedPoint(w_frac_bits).frac_bits
    ex, ew = 2.0 ** -(x_frac_bits + 1), 2.0 ** -(w_frac_bits + 1)
    eb = 2.0 ** -(x_frac_bits + w_frac_bits + 1)
    return w.sum(axis=0) * ex + x.sum() * ew + len(x) * ex * ew + eb + _float_slack(x, w)


def _check_weights(weights) -> np.ndarray:
    """Return weights as a (d, k) float64 array: real, finite, 1-D (one score) or 2-D."""
    w = check_finite_array("weights", weights, allow_empty=False)
    if w.ndim not in (1, 2) or 0 in w.shape:
        raise ParameterError("weights", w, "a non-empty (d,) or (d, k) array of real numbers")
    return w[:, None] if w.ndim == 1 else w


def _float_slack(x, w):
    # x @ W in float64 rounds too (about d ulps of the largest term); the bound must cover it.
    return 4 * len(x) * np.finfo(np.float64).eps * (x @ w + 1.0)


@dataclass
class LinearService:
    """A service holding a linear model ``x @ weights + bias`` in the clear.

    ``score`` takes the client's ``EncryptedVector`` (one ciphertext per feature) and returns
    an ``EncryptedVector`` of the k scores under the client's key.
    """

    weights: np.ndarray  # (d, k)
    bias: np.ndarray  # (k,)
    w_frac_bits: int = 24

    def __post_init__(self):
        self.weights = _check_weights(self.weights)
        self.bias = check_finite_array("bias", self.bias).reshape(-1)
        if self.bias.shape != (self.weights.shape[1],):
            raise ParameterError(
                "bias", self.bias, f"{self.weights.shape[1]} values (one per score)"
            )
        self._fp = FixedPoint(self.w_frac_bits)  # validates w_frac_bits
        self._codes = np.array(
            [self._fp.encode(col) for col in self.weights.T], dtype=object
        )  # (k, d) integers

    @property
    def num_features(self) -> int:
        """Return d, the number of input features."""
        return self.weights.shape[0]

    def plaintext_scores(self, x) -> np.ndarray:
        """Return ``x @ weights + bias`` (what an ordinary, non-private service computes)."""
        x = check_finite_array("x", x)
        if x.shape[-1:] != (self.num_features,):
            raise ParameterError("x", x, f"{self.num_features} features per row")
        return x @ self.weights + self.bias

    def score(self, query: EncryptedVector, encryptor: FastEncryptor | None = None):
        """Return the encrypted scores ``E(x @ W + b)`` computed on ciphertexts only."""
        if not isinstance(query, EncryptedVector):
            raise ParameterError("query", type(query).__name__, "an EncryptedVector")
        if len(query) != self.num_features:
            raise ParameterError(
                "query", f"{len(query)} features", f"exactly {self.num_features} features",
                f"query has {len(query)} features; this model takes exactly {self.num_features}",
            )  # fmt: skip
        pk = check_public_key("query.public_key", query.public_key)
        if encryptor is not None:
            if not isinstance(encryptor, FastEncryptor):
                raise ParameterError("encryptor", type(encryptor).__name__, "a FastEncryptor")
            if encryptor.public_key != pk:  # its E(0) would be under another n: garbage
                raise KeyMismatchError(
                    "encryptor", "built for another key", "built for the query's public key"
                )
        n, n2 = pk.n, gmpy2.mpz(pk.nsquare)
        x_exp = query.numbers[0].exponent
        if any(q.exponent != x_exp for q in query.numbers):
            raise ParameterError(
                "query", "features with different exponents", "one fixed-point exponent"
            )
        if any(q.public_key != pk for q in query.numbers):
            raise KeyMismatchError("query", "mixed public keys", "one public key per query")
        cts = [gmpy2.mpz(q.ciphertext(be_secure=False)) for q in query.numbers]
        # E(x)^-w = (E(x)^-1)^w: one inversion per feature instead of one per negative weight
        inv = [gmpy2.invert(c, n2) for c in cts]
        bias_fp = FixedPoint(-4 * x_exp + self.w_frac_bits)
        out = []
        for k, codes in enumerate(self._codes):
            acc = gmpy2.mpz(1)
            for c, ci, w in zip(cts, inv, codes, strict=True):
                if w:
                    acc = acc * gmpy2.powmod(c if w > 0 else ci, abs(w), n2) % n2
            b = bias_fp.encode([self.bias[k]])[0]
            acc = acc * ((1 + (b % n) * n) % n2) % n2  # (n+1)^b = 1 + b n mod n^2
            if encryptor is not None:
                acc = acc * encryptor.obfuscator() % n2  # re-randomise: times a fresh E(0)
            number = paillier.EncryptedNumber(pk, int(acc), x_exp - self.w_frac_bits // 4)
            out.append(number)
        return EncryptedVector(pk, out)


def _check_plaintext_space(service: LinearService, x, fp: FixedPoint, public_key) -> None:
    """Raise unless every score's integer code stays within the key's max_int (else: garbage)."""
    x_codes = np.array([abs(c) for c in fp.encode(x)], dtype=object)
    w_codes = np.abs(service._codes)  # (k, d) Python ints
    bias_fp = FixedPoint(fp.frac_bits + service.w_frac_bits)
    b_codes = [abs(c) for c in bias_fp.encode(service.bias)]
    worst = max(int(np.dot(w_codes[k], x_codes)) + b_codes[k] for k in range(len(b_codes)))
    if worst > public_key.max_int:
        raise ValueRangeError(
            "x", x, "scores whose codes fit the key's plaintext space (|code| <= max_int)",
            f"a {worst.bit_length()}-bit score code exceeds the {public_key.max_int.bit_length()}"
            "-bit max_int; use smaller features or fewer frac_bits, or a larger key",
        )  # fmt: skip


def private_query(
    service: LinearService,
    x,
    public_key,
    private_key,
    x_frac_bits: int = 24,
    encryptor: FastEncryptor | None = None,
) -> dict:
    """Run one private query end to end and measure it against a plaintext request.

    Returns the decrypted scores, the plaintext scores, the error bound, the seconds spent by the
    client (encrypt, decrypt) and the service (score), and the bytes each way.
    """
    if not isinstance(service, LinearService):
        raise ParameterError("service", type(service).__name__, "a LinearService")
    x = check_finite_array("x", x).ravel()
    if x.size != service.num_features:
        raise ParameterError("x", x, f"{service.num_features} features")
    public_key = check_public_key("public_key", public_key)
    check_private_key(private_key, public_key)
    fp = FixedPoint(x_frac_bits)
    _check_plaintext_space(service, x, fp, public_key)
    t0 = time.perf_counter()
    query = encrypt_vector(public_key, x, fp, encryptor)
    t1 = time.perf_counter()
    answer = service.score(query, encryptor)
    t2 = time.perf_counter()
    scores = decrypt_vector(private_key, answer)
    t3 = time.perf_counter()
    plain = service.plaintext_scores(x)
    t4 = time.perf_counter()
    bound = score_error_bound(x, service.weights, service.bias, x_frac_bits, service.w_frac_bits)
    return {
        "scores": scores,
        "plaintext_scores": plain,
        "error_bound": bound,
        "seconds_encrypt": t1 - t0,
        "seconds_service": t2 - t1,
        "seconds_decrypt": t3 - t2,
        "seconds_total": t3 - t0,
        "seconds_plaintext": t4 - t3,
        "bytes_up": query.nbytes,
        "bytes_down": len(answer) * ciphertext_bytes(public_key),
        "plaintext_bytes_up": FLOAT32_BYTES * len(x),
        "plaintext_bytes_down": FLOAT32_BYTES * len(plain),
        "key_bits": public_key.n.bit_length(),
        "within_bound": bool(np.all(np.abs(scores - plain) <= bound)),
    }
