"""The identity provider's public keys: fetched from a JWKS URL, or read from a file.

Each JWK is parsed once into a `cryptography` public key and kept, with the
algorithms it may verify, in an immutable `KeySet`; verifying a token only
looks keys up, it never parses them again.

The remote source caches its set for `jwks_cache_ttl` seconds and starts at
most one fetch per `jwks_refetch_interval`, whatever asks for it (an expired
cache, an unknown `kid`, a readiness probe), so a flood of tokens with random
kids cannot be amplified into requests to the IdP. While the IdP is down it
keeps serving its last good keys for up to `jwks_max_stale` seconds past the
TTL. Fetches run on a daemon thread that callers wait for at most
`jwks_timeout`, so a slow IdP never holds a worker longer than that.

Where keys come from is configuration only: nothing a token says (`kid`,
`jku`, `x5u`, `jwk`, `x5c`) can add a key or change the URL.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import IO, Any, NoReturn, Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK, PyJWTError

from identity_service.errors import ConfigError, ConfigProblem, KeySourceUnavailableError
from identity_service.settings import BearerAuthSettings

log = logging.getLogger(__name__)

PublicKey = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey
Clock = Callable[[], float]
Fetch = Callable[[str, float], bytes]

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
# ES256 is P-256 only, and so on: a curve that does not match the algorithm is refused.
EC_ALGORITHMS: Mapping[str, str] = {
    "secp256r1": "ES256",
    "secp384r1": "ES384",
    "secp521r1": "ES512",
}
MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 256 * 1024
MAX_KEYS = 64  # a kid-less token is tried against each matching key; keep that bounded


# -- strict JSON ----------------------------------------------------------------


def load_json_object(data: bytes | str) -> dict[str, Any]:
    """Parse a JSON object as JOSE requires: duplicate member names and NaN/Infinity refused.

    With `json.loads` the last duplicate wins, so a header or payload could
    mean one thing to us and another to a different parser (RFC 7515 §5.2,
    RFC 8725 §3.6); refusing is the only safe reading.
    """
    try:
        # JWS and JWKS JSON is UTF-8 (RFC 7515 §5.1, RFC 8259 §8.1); a bad byte is ValueError.
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = _STRICT_DECODER.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


def _refuse(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not valid JSON")


# Built once: `json.loads(..., object_pairs_hook=...)` would build a decoder per call.
_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_refuse_duplicates, parse_constant=_refuse)


# -- keys -----------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedKey:
    """A public key from a configured source, and the algorithms it may verify."""

    key: PublicKey
    algorithms: tuple[str, ...]  # configured allowlist ∩ key type ∩ the JWK's own `alg`
    kid: str | None = None


@dataclass(frozen=True)
class KeySet:
    """The keys one source currently trusts, indexed by `kid` once rather than per token."""

    keys: tuple[TrustedKey, ...]
    _by_kid: Mapping[str, tuple[TrustedKey, ...]] = field(init=False, repr=False, compare=False)
    unnamed: tuple[TrustedKey, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kid: dict[str, list[TrustedKey]] = {}
        for trusted in self.keys:
            if trusted.kid is not None:
                by_kid.setdefault(trusted.kid, []).append(trusted)
        object.__setattr__(self, "_by_kid", {k: tuple(v) for k, v in by_kid.items()})
        object.__setattr__(self, "unnamed", tuple(k for k in self.keys if k.kid is None))

    def with_kid(self, kid: str) -> tuple[TrustedKey, ...]:
        """The keys published under `kid` (usually one; empty when unknown)."""
        return self._by_kid.get(kid, ())


def algorithms_for(key: PublicKey) -> frozenset[str]:
    """Which JWS algorithms a key of this type and curve can verify."""
    if isinstance(key, RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, EllipticCurvePublicKey):
        alg = EC_ALGORITHMS.get(key.curve.name)
        return frozenset({alg}) if alg else frozenset()
    return frozenset({"EdDSA"})


def trusted_key(
    key: object, allowed: Collection[str], *, kid: str | None = None, alg: str | None = None
) -> TrustedKey | None:
    """`key` as a TrustedKey, or None when it cannot verify any allowed algorithm."""
    if not isinstance(key, PublicKey):
        return None  # private keys and exotic types are never used to verify
    if isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return None
    usable = algorithms_for(key) & set(allowed)
    if alg is not None:
        usable &= {alg}  # a JWK that names its algorithm verifies that one only
    if not usable:
        return None
    return TrustedKey(key=key, algorithms=tuple(sorted(usable)), kid=kid)


def key_from_jwk(jwk: Mapping[str, Any], allowed: Collection[str]) -> TrustedKey | None:
    """One JWK as a TrustedKey, or None when it is not a usable signature-verification key."""
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if (kid is not None and not isinstance(kid, str)) or (
        alg is not None and not isinstance(alg, str)
    ):
        return None
    if jwk.get("use", "sig") != "sig" or jwk.get("kty") not in {"RSA", "EC", "OKP"}:
        return None  # encryption keys and symmetric ("oct") keys never verify tokens
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if "d" in jwk:
        # Private material in a JWKS is an IdP misconfiguration; never use it.
        log.warning("ignoring JWK %r: it contains a private key", kid)
        return None
    try:
        parsed = PyJWK(dict(jwk)).key
    except (PyJWTError, ValueError, TypeError, KeyError):
        return None
    return trusted_key(parsed, allowed, kid=kid, alg=alg)


def keyset_from_jwks(document: Mapping[str, Any], allowed: Collection[str]) -> KeySet:
    """The usable keys of a JWK Set (or of a single JWK); ValueError when there are none."""
    raw = document.get("keys", [document])
    if not isinstance(raw, list):
        raise ValueError("'keys' is not a list")
    keys = [k for k in (key_from_jwk(j, allowed) for j in raw if isinstance(j, dict)) if k]
    if not keys:
        raise ValueError("no usable signature-verification key for the allowed algorithms")
    if len(keys) > MAX_KEYS:
        log.warning("the JWKS has %d usable keys; using the first %d", len(keys), MAX_KEYS)
    return KeySet(tuple(keys[:MAX_KEYS]))


def keyset_from_file(path: Path, allowed: Collection[str]) -> KeySet:
    """Keys from a PEM public key or certificate(s), or a JWK or JWKS file; ValueError if none."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"{"):
        return keyset_from_jwks(load_json_object(data), allowed)
    if b"-----BEGIN CERTIFICATE-----" in data:
        # A certificate (as Auth0 and Okta offer for download) is only a container
        # for the key here: pinning the file is the trust decision, so its dates
        # and chain are not checked.
        candidates: list[object] = [c.public_key() for c in x509.load_pem_x509_certificates(data)]
    else:
        candidates = [load_pem_public_key(data)]
    keys = [k for k in (trusted_key(c, allowed) for c in candidates) if k]
    if not keys:
        raise ValueError("no public key usable with the allowed algorithms")
    return KeySet(tuple(keys))


# -- sources --------------------------------------------------------------------


class KeySource(Protocol):
    """Where a bearer authenticator gets the keys it trusts."""

    def current(self) -> KeySet:
        """The keys to verify with now; KeySourceUnavailableError (503) when there are none."""
        ...

    def refetch(self) -> KeySet:
        """The keys after a rate-limited refetch, for a token whose `kid` is unknown."""
        ...

    def ready(self) -> bool:
        """Whether keys are cached or can be fetched (for /readyz)."""
        ...


class StaticKeySource:
    """Keys pinned in a local file, loaded once at start-up."""

    def __init__(self, path: Path, allowed: Collection[str]) -> None:
        try:
            self._keys = keyset_from_file(path, allowed)
        except (OSError, ValueError) as exc:
            problem = ConfigProblem("key_file", f"cannot use {path} as the IdP's public key: {exc}")
            raise ConfigError(str(path), [problem]) from None

    def current(self) -> KeySet:
        return self._keys

    def refetch(self) -> KeySet:
        return self._keys

    def ready(self) -> bool:
        return True


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The JWKS URL is configured exactly; a redirect must not move trust to another URL."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> None:
        return None  # urllib then raises HTTPError for the 3xx


_OPENER = urllib.request.build_opener(_NoRedirects)


def fetch_url(url: str, timeout: float) -> bytes:
    """GET `url` (no redirects), giving up after `timeout` seconds or MAX_JWKS_BYTES."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(  # noqa: S310 (scheme checked by RemoteKeySource)
        url, headers={"Accept": "application/jwk-set+json, application/json"}
    )
    with _OPENER.open(request, timeout=timeout) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        body = b""
        # read1 returns after one socket read, so a server trickling bytes
        # cannot stretch the download past the deadline.
        while chunk := response.read1(65536):
            body += chunk
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError(f"response larger than {MAX_JWKS_BYTES} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError("JWKS download exceeded the timeout")
    return body


@dataclass
class _Fetch:
    """One fetch in flight: callers wait on `done` until `deadline` (real monotonic time)."""

    generation: int
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)


class RemoteKeySource:
    """Keys from the IdP's JWKS URL: cached, refreshed, rate-limited, bounded in time."""

    def __init__(
        self,
        url: str,
        allowed: Collection[str],
        *,
        timeout: float,
        refetch_interval: float,
        cache_ttl: float,
        max_stale: float,
        clock: Clock = time.monotonic,
        fetch: Fetch = fetch_url,
    ) -> None:
        if urlsplit(url).scheme not in {"https", "http"}:
            raise ValueError("the JWKS URL must be http(s)")
        self._url = url
        self._allowed = frozenset(allowed)
        self._timeout = timeout
        self._refetch_interval = refetch_interval
        self._cache_ttl = cache_ttl
        self._max_stale = max_stale
        self._clock = clock
        self._fetch = fetch
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = -math.inf  # cache clock, last successful fetch
        self._attempted_at = -math.inf  # cache clock, last fetch started
        self._generation = 0  # of the last fetch started
        self._installed = 0  # generation of the keys in `_keys`
        self._pending: _Fetch | None = None

    def current(self) -> KeySet:
        keys = self._keys
        if keys is not None and self._clock() - self._fetched_at < self._cache_ttl:
            return keys  # the hot path: no lock, no I/O
        self._refresh()
        return self._usable()

    def refetch(self) -> KeySet:
        self._refresh()
        return self._usable()

    def ready(self) -> bool:
        try:
            self.current()
        except KeySourceUnavailableError:
            return False
        return True

    def _usable(self) -> KeySet:
        keys = self._keys
        if keys is None or self._clock() - self._fetched_at >= self._cache_ttl + self._max_stale:
            raise KeySourceUnavailableError(
                "the identity provider's signing keys cannot be fetched; try again shortly"
            )
        return keys

    def _refresh(self) -> None:
        """Start a fetch unless one started within the refetch interval; wait for it, bounded."""
        with self._lock:
            pending = self._pending
            if pending is None or time.monotonic() >= pending.deadline:
                # No fetch in flight (or only one we have given up on).
                now = self._clock()
                if now - self._attempted_at < self._refetch_interval:
                    return
                self._attempted_at = now
                self._generation += 1
                pending = _Fetch(self._generation, time.monotonic() + self._timeout)
                self._pending = pending
                threading.Thread(
                    target=self._run, args=(pending,), name="jwks-fetch", daemon=True
                ).start()
        pending.done.wait(max(0.0, pending.deadline - time.monotonic()))

    def _run(self, pending: _Fetch) -> None:
        try:
            keys = keyset_from_jwks(
                load_json_object(self._fetch(self._url, self._timeout)), self._allowed
            )
        except Exception as exc:  # any failure means "keep the keys we have"
            log.warning("fetching the JWKS from %s failed: %s", self._url, _describe(exc))
        else:
            with self._lock:
                # A fetch we stopped waiting for may finish after a newer one.
                if pending.generation > self._installed:
                    self._keys, self._fetched_at = keys, self._clock()
                    self._installed = pending.generation
        finally:
            with self._lock:
                if self._pending is pending:
                    self._pending = None
            pending.done.set()


def _describe(exc: Exception) -> str:
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def key_source(settings: BearerAuthSettings, clock: Clock = time.monotonic) -> KeySource:
    """The key source `settings` configure: a JWKS URL or a key file."""
    if settings.jwks_url is not None:
        return RemoteKeySource(
            settings.jwks_url,
            settings.algorithms,
            timeout=settings.jwks_timeout,
            refetch_interval=settings.jwks_refetch_interval,
            cache_ttl=settings.jwks_cache_ttl,
            max_stale=settings.jwks_max_stale,
            clock=clock,
        )
    if settings.key_file is not None:
        return StaticKeySource(settings.key_file, settings.algorithms)
    raise ValueError("bearer authentication needs a jwks_url or a key_file")
