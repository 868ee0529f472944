"""Load and validate the TOML configuration into frozen `Settings`.

Every problem is collected with its key path (`workspaces.eu.attributes[3].name`)
and what would fix it, and all of them are reported together in one
`ConfigError`, so an operator fixes a file in one pass. Nothing here runs at
import time; the app factory and the CLI call `load_settings`.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast, get_args
from urllib.parse import urlsplit

from identity_service import naming
from identity_service.auth.algorithms import IDP_ALGORITHMS
from identity_service.errors import ConfigError, ConfigProblem, SecretUnavailableError
from identity_service.intercom_api.rules import REST_BASES
from identity_service.ratelimit import parse_limit
from identity_service.secrets import DEV_SECRET_BANNER, MIN_SECRET_BYTES, SecretSource
from identity_service.settings import (
    DEMO_IDP_ISSUER,
    MOBILE_PLATFORMS,
    PLATFORMS,
    REGIONS,
    STANDARD_ATTRIBUTES,
    WORKSPACE_KEY_PATTERN,
    AttributeSpec,
    AttributeType,
    AuthSettings,
    BearerAuthSettings,
    IntercomApiSettings,
    OnInvalid,
    OnStorageError,
    OnUnavailable,
    Platform,
    ProfileSettings,
    RateLimitSettings,
    ServiceSettings,
    SessionAuthSettings,
    Settings,
    WorkspaceSettings,
)

log = logging.getLogger(__name__)

CONFIG_ENV = "IDENTITY_SERVICE_CONFIG"
INSTANCE_ENV = "IDENTITY_SERVICE_INSTANCE"
MIN_LIFETIME, MAX_LIFETIME = 60, 24 * 3600
MAX_LEEWAY = 300
CDA_SOFT_LIMIT = 250
WORKSPACE_KEY = re.compile(WORKSPACE_KEY_PATTERN)
SESSION_SECRET_MIN_BYTES = 16
INTERCOM_TOKEN_MIN_BYTES = 20  # Intercom access tokens are about 60 characters
SESSION_DIGESTS = frozenset({"sha1", "sha256", "sha384", "sha512"})

T = TypeVar("T")
_MISSING = object()


BUNDLED_SOURCE = "<bundled example.toml>"
PACKAGE_NAME = "identity_service"


def bundled_config_text() -> str:
    """The example configuration shipped inside the package."""
    return resources.files(PACKAGE_NAME).joinpath("example.toml").read_text("utf-8")


def config_source(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> str | None:
    """Which file to load: `--config`, else $IDENTITY_SERVICE_CONFIG, else None (bundled)."""
    if path is not None:
        return os.fspath(path)
    return environ.get(CONFIG_ENV) or None


@dataclass(frozen=True)
class ConfigText:
    """The configuration every command reads: its name for messages, its TOML, its folder."""

    source: str
    data: Mapping[str, Any]
    base: Path  # relative paths in the file are relative to this folder


def read_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> ConfigText:
    """Find and parse the configuration, the one way every command does (no secret is read).

    `--config`, else $IDENTITY_SERVICE_CONFIG, else the bundled example; an
    unreadable or invalid file is a ConfigError naming it.
    """
    chosen = config_source(path, os.environ if environ is None else environ)
    if chosen is None:
        source, text, base = BUNDLED_SOURCE, bundled_config_text(), Path.cwd()
    else:
        source, base = chosen, Path(chosen).resolve().parent
        try:
            text = Path(chosen).read_text("utf-8")
        except FileNotFoundError as exc:
            # The docs' `--config service.toml` names a file the reader writes
            # first: say where to start it from, not only that it is missing.
            example = resources.files(PACKAGE_NAME).joinpath("example.toml")
            problem = ConfigProblem(
                "<file>",
                f"cannot read the file ({exc.strerror}): check the path, start one from the "
                f"bundled example (cp {example} {chosen}), or run without --config "
                f"(and without ${CONFIG_ENV}) to use the bundled example itself",
            )
            raise ConfigError(source, [problem]) from None
        except OSError as exc:
            problem = ConfigProblem("<file>", f"cannot read the file ({exc.strerror})")
            raise ConfigError(source, [problem]) from None
        except UnicodeDecodeError as exc:
            problem = ConfigProblem(
                "<file>", f"is not UTF-8 text (byte {exc.start}); save it as UTF-8"
            )
            raise ConfigError(source, [problem]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [ConfigProblem("<toml>", f"not valid TOML: {exc}")]) from None
    return ConfigText(source, data, base)


def default_instance_folder(package_dir: Path | None = None) -> Path:
    """Where the instance folder is when $IDENTITY_SERVICE_INSTANCE is not set.

    Flask's rule, so it never depends on the directory a command runs from: in a
    source checkout (the package beside its pyproject.toml, as `make` installs
    it) `<checkout>/instance`; in an installed package
    `<sys.prefix>/var/identity_service-instance`. `package_dir` is this
    package's folder (tests name another).
    """
    package_parent = (package_dir or Path(__file__).resolve().parent).parent
    if (package_parent / "pyproject.toml").is_file():
        return package_parent / "instance"
    return Path(sys.prefix) / "var" / f"{PACKAGE_NAME}-instance"


def instance_folder(environ: Mapping[str, str] | None = None) -> Path:
    """The instance folder (development secrets, the demo database): one rule for every command."""
    env = os.environ if environ is None else environ
    configured = env.get(INSTANCE_ENV)
    return Path(configured).expanduser().resolve() if configured else default_instance_folder()


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read, validate and freeze the configuration, or raise ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    config = read_config(path, env)
    return _Loader(config.source, config.base, instance_folder(env), env).settings(config.data)


class _Loader:
    """Walks the parsed TOML, collecting problems with their key paths."""

    def __init__(self, source: str, base: Path, instance: Path, env: Mapping[str, str]) -> None:
        self.source = source
        self.base = base
        self.instance = instance
        self.env = env
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []
        self.path: list[str] = []
        # Workspaces with a session [[auth]] table, even one whose secret failed, so the
        # cross-checks report every problem in one pass.
        self.session_workspaces: list[str] = []

    # -- plumbing ---------------------------------------------------------------

    def here(self, key: str | int | None = None) -> str:
        parts = [*self.path] if key is None else [*self.path, _part(key)]
        text = ".".join(parts).replace(".[", "[")
        return text or "<top level>"

    def problem(self, key: str | int | None, message: str) -> None:
        self.problems.append(ConfigProblem(self.here(key), message))

    @contextmanager
    def at(self, key: str | int) -> Iterator[None]:
        self.path.append(_part(key))
        try:
            yield
        finally:
            self.path.pop()

    def only_keys(self, table: Mapping[str, Any], allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed: {sorted(allowed)}"
                self.problem(key, f"unknown key; {hint}")

    def get(
        self,
        table: Mapping[str, Any],
        key: str,
        kind: type[T],
        default: Any = _MISSING,
        check: Callable[[T], str | None] | None = None,
        *,
        required: bool = False,
    ) -> T:
        value = table.get(key, _MISSING)
        if value is _MISSING:
            if required or default is _MISSING:
                self.problem(key, f"is required ({_kind_name(kind)})")
            return cast(T, default)
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            self.problem(key, f"must be {_kind_name(kind)}, got {type(value).__name__}")
            return cast(T, default)
        if check is not None and (reason := check(value)) is not None:
            self.problem(key, reason)
        return cast(T, value)

    def strings(self, table: Mapping[str, Any], key: str, *, required: bool) -> tuple[str, ...]:
        value = table.get(key, _MISSING)
        if value is _MISSING:
            if required:
                self.problem(key, "is required (a string or a list of strings)")
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problem(key, "must be a list of non-empty strings")
            return ()
        return tuple(value)

    def choice(self, table: Mapping[str, Any], key: str, options: Any, default: str) -> str:
        allowed = get_args(options)
        value = self.get(table, key, str, default)
        if value not in allowed:
            self.problem(key, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
            return default
        return value

    def table(self, parent: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(key, f"must be a table ([{self.here(key)}]), got {type(value).__name__}")
            return None
        return value

    def file_path(self, raw: str) -> Path:
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.base / path

    def secret(
        self, table: Mapping[str, Any], what: str, min_bytes: int, prefix: str = "secret"
    ) -> SecretSource | None:
        """Exactly one of `<prefix>_env`, `<prefix>_file`, `<prefix>_dev = true`."""
        keys = [k for k in (f"{prefix}_env", f"{prefix}_file", f"{prefix}_dev") if k in table]
        if len(keys) != 1:
            found = "none" if not keys else " and ".join(keys)
            self.problem(
                None,
                f"set exactly one of {prefix}_env (an environment variable name), "
                f"{prefix}_file (a file path) or {prefix}_dev = true (development only); "
                f"found {found}. Secrets are never written in this file",
            )
            return None
        key = keys[0]
        if key.endswith("_dev"):
            if self.get(table, key, bool, False) is not True:
                self.problem(key, "can only be true; use secret_env or secret_file instead")
                return None
            slug = re.sub(r"[^A-Za-z0-9_]+", "-", self.here()).strip("-")
            path = self.instance / f"dev-{slug}.secret"
            log.warning(DEV_SECRET_BANNER.format(what=what, path=path))
            source = SecretSource("dev", str(path), what, min_bytes)
            if not path.exists():
                # Reading the configuration never writes: the service generates this
                # file when it first needs the secret (SecretSource.load).
                return source
        else:
            ref = self.get(table, key, str, "")
            if not ref:
                self.problem(key, "must be a non-empty string")
                return None
            if key.endswith("_env"):
                source = SecretSource("env", ref, what, min_bytes)
            else:
                source = SecretSource("file", str(self.file_path(ref)), what, min_bytes)
        self.check_secret(source, key)
        return source

    def check_secret(self, source: SecretSource, key: str) -> None:
        # The same read and strength check the running service uses, against the
        # environment this configuration is loaded for.
        try:
            source.load(self.env)
        except SecretUnavailableError as exc:
            self.problem(key, exc.detail.removeprefix(f"{source.what}: "))

    # -- the document -----------------------------------------------------------

    def settings(self, data: Mapping[str, Any]) -> Settings:
        self.only_keys(data, {"default_workspace", "service", "workspaces"})
        service_table = self.table(data, "service") or {}
        with self.at("service"):
            service = self.service(service_table)
        workspaces: dict[str, WorkspaceSettings] = {}
        raw_workspaces = self.table(data, "workspaces") or {}
        if not raw_workspaces:
            self.problem("workspaces", "define at least one [workspaces.<name>] table")
        with self.at("workspaces"):
            for key, raw in raw_workspaces.items():
                with self.at(key):
                    if not isinstance(raw, dict):
                        self.problem(None, "must be a table")
                        continue
                    if not WORKSPACE_KEY.fullmatch(key):
                        # Requests name workspaces by key ({"workspace": "eu"}); the API
                        # accepts only this alphabet, so any other key could never be used.
                        self.problem(None, "workspace names use letters, digits, _ and - only")
                    workspace = self.workspace(key, raw)
                    if workspace is not None:
                        workspaces[key] = workspace
        default = self.default_workspace(data, raw_workspaces)
        self.cross_checks(service, workspaces)
        if self.problems:
            raise ConfigError(self.source, self.problems)
        return Settings(
            source=self.source,
            service=service,
            workspaces=workspaces,
            default_workspace=default,
            warnings=tuple(self.warnings),
        )

    def default_workspace(self, data: Mapping[str, Any], workspaces: Mapping[str, Any]) -> str:
        if "default_workspace" in data:
            name = self.get(data, "default_workspace", str, "")
            if workspaces and name not in workspaces:
                self.problem(
                    "default_workspace", f"names no workspace; choose one of {sorted(workspaces)}"
                )
            return name
        if len(workspaces) > 1:
            self.problem(
                "default_workspace",
                f"is required when there are several workspaces ({sorted(workspaces)})",
            )
        return next(iter(workspaces), "")

    def service(self, table: Mapping[str, Any]) -> ServiceSettings:
        self.only_keys(
            table, {"cors_origins", "hsts", "max_body_bytes", "proxy_hops", "rate_limit"}
        )
        origins = self.strings(table, "cors_origins", required=False)
        with self.at("cors_origins"):
            for i, origin in enumerate(origins):
                if origin != "*" and (reason := _origin_problem(origin)):
                    self.problem(i, reason)
        return ServiceSettings(
            cors_origins=origins,
            hsts=self.get(table, "hsts", bool, False),
            max_body_bytes=self.get(
                table, "max_body_bytes", int, 4096, _between(64, 1024 * 1024, "bytes")
            ),
            proxy_hops=self.get(table, "proxy_hops", int, 0, _between(0, 5, "proxies")),
            instance_path=self.instance,
            rate_limit=self.rate_limit(self.table(table, "rate_limit") or {}),
        )

    def rate_limit(self, table: Mapping[str, Any]) -> RateLimitSettings:
        with self.at("rate_limit"):
            self.only_keys(
                table,
                {
                    "enabled", "per_client", "per_user", "storage_url", "on_storage_error",
                    "storage_timeout", "storage_retry_interval",
                },
            )  # fmt: skip
            defaults = RateLimitSettings()
            per_client = self.get(table, "per_client", str, defaults.per_client, _limit_problem)
            per_user = self.get(table, "per_user", str, defaults.per_user, _limit_problem)
            storage = self.get(table, "storage_url", str, defaults.storage_url, _storage_problem)
            on_error = self.choice(table, "on_storage_error", OnStorageError, "open")
            return RateLimitSettings(
                per_client=per_client,
                per_user=per_user,
                storage_url=storage,
                on_storage_error=cast(OnStorageError, on_error),
                enabled=self.get(table, "enabled", bool, True),
                storage_timeout=self.get(
                    table, "storage_timeout", float, defaults.storage_timeout,
                    _between(0.01, 5, "seconds"),
                ),
                storage_retry_interval=self.get(
                    table, "storage_retry_interval", float, defaults.storage_retry_interval,
                    _between(0.1, 300, "seconds"),
                ),
            )  # fmt: skip

    def workspace(self, key: str, table: Mapping[str, Any]) -> WorkspaceSettings | None:
        self.only_keys(
            table,
            {
                "app_id", "region", "api_base", "secret_env", "secret_file", "secret_dev",
                "token_lifetime", "on_invalid", "attributes", "auth", "profile",
                "user_id_pattern", "platforms", "intercom_api",
            },
        )  # fmt: skip
        app_id = self.get(table, "app_id", str, "", _app_id_problem, required=True)
        api_base, region = self.api_base(table)
        raw_platforms = table.get("platforms")
        secret: SecretSource | None = None
        # The workspace's own secret_* keys are the web secret, as before platforms
        # existed; a workspace that lists platforms may leave web out (not served).
        if raw_platforms is None or any(k in table for k in _SECRET_KEYS):
            secret = self.secret(table, f"workspaces.{key} Messenger secret", MIN_SECRET_BYTES)
        platform_secrets = self.platforms(raw_platforms, secret)
        lifetime = self.get(
            table, "token_lifetime", int, 3600, _between(MIN_LIFETIME, MAX_LIFETIME, "seconds")
        )
        on_invalid = cast(OnInvalid, self.choice(table, "on_invalid", OnInvalid, "drop"))
        attributes = self.attributes(table.get("attributes", []))
        raw_auth = table.get("auth", [])
        if isinstance(raw_auth, list) and any(
            isinstance(item, dict) and item.get("method") == "session" for item in raw_auth
        ):
            self.session_workspaces.append(key)
        auth = self.auth_methods(raw_auth)
        user_id_pattern = self.pattern(table, "user_id_pattern")
        profile_table = self.table(table, "profile")
        profile = None
        if profile_table is not None:
            with self.at("profile"):
                profile = self.profile(profile_table)
        intercom_table = self.table(table, "intercom_api")
        intercom_api = None
        if intercom_table is not None:
            with self.at("intercom_api"):
                intercom_api = self.intercom_api(intercom_table, region)
        if platform_secrets is None or (secret is None and raw_platforms is None):
            return None
        if platform_secrets and not any(isinstance(m, BearerAuthSettings) for m in auth):
            self.warnings.append(
                f"workspaces.{key}: serves {' and '.join(platform_secrets)} but has no bearer "
                "[[auth]] method; mobile apps authenticate with the IdP's bearer token (the "
                "session cookie is refused for them), so every such request is refused"
            )
        return WorkspaceSettings(
            key=key,
            app_id=app_id,
            api_base=api_base,
            secret=secret,
            platform_secrets=platform_secrets,
            region=region,
            token_lifetime=lifetime,
            on_invalid=on_invalid,
            attributes=attributes,
            auth=auth,
            profile=profile,
            user_id_pattern=user_id_pattern,
            intercom_api=intercom_api,
        )

    def platforms(self, raw: Any, web: SecretSource | None) -> dict[Platform, SecretSource] | None:
        """The mobile platforms' secrets (`[workspaces.<name>.platforms.ios]`...).

        None when one of them is broken (the workspace is then left out, as for a
        broken web secret); {} when the workspace serves no mobile platform.
        """
        if raw is None:
            return {}
        if not isinstance(raw, dict) or not raw:
            self.problem(
                "platforms",
                "must hold a [workspaces.<name>.platforms.ios] and/or .android table",
            )
            return None
        own: dict[Platform, SecretSource] = {}
        shared: dict[str, str] = {}
        broken = False
        with self.at("platforms"):
            for name, item in raw.items():
                with self.at(name):
                    platform = next((p for p in MOBILE_PLATFORMS if p == name), None)
                    if platform is None:
                        self.problem(None, _unknown_platform(name))
                        broken = True
                    elif not isinstance(item, dict):
                        self.problem(None, "must be a table with secret_env, secret_file, "
                                     "secret_dev or same_secret_as")  # fmt: skip
                        broken = True
                    else:
                        found = self.platform(item)
                        if found is None:
                            broken = True
                        elif isinstance(found, str):
                            shared[name] = found
                        else:
                            own[platform] = found
            holders: dict[str, SecretSource | None] = {"web": web}
            for holder, held in own.items():
                holders[holder] = held
            for sharer, target in shared.items():
                with self.at(sharer):
                    source = holders.get(target)
                    if source is None:
                        self.problem("same_secret_as", _share_problem(target, shared))
                        broken = True
                    else:
                        # The same object under two platforms: shared on purpose.
                        own[next(p for p in MOBILE_PLATFORMS if p == sharer)] = source
        if broken:
            return None
        return {p: own[p] for p in MOBILE_PLATFORMS if p in own}

    def platform(self, item: Mapping[str, Any]) -> SecretSource | str | None:
        """One platform's own secret, or the platform it names in `same_secret_as`."""
        self.only_keys(item, {"secret_env", "secret_file", "secret_dev", "same_secret_as"})
        if "same_secret_as" not in item:
            return self.secret(item, f"{self.here()} Messenger secret", MIN_SECRET_BYTES)
        target = self.get(item, "same_secret_as", str, "")
        if any(k in item for k in _SECRET_KEYS):
            self.problem(
                "same_secret_as",
                "set either same_secret_as or this platform's own secret_env / secret_file / "
                "secret_dev, not both",
            )
            return None
        if target not in PLATFORMS or target == self.path[-1]:
            others = [p for p in PLATFORMS if p != self.path[-1]]
            self.problem(
                "same_secret_as",
                f"must name another platform whose secret this one shares: one of {others}",
            )
            return None
        return target

    def pattern(self, table: Mapping[str, Any], key: str) -> re.Pattern[str] | None:
        source = self.get(table, key, str, "")
        if not source:
            return None
        try:
            return re.compile(source)
        except re.error as exc:
            self.problem(key, f"is not a regular expression ({exc}); write e.g. '[0-9]{{1,18}}'")
            return None

    def api_base(self, table: Mapping[str, Any]) -> tuple[str, str | None]:
        if "region" in table and "api_base" in table:
            self.problem("api_base", "set either region or api_base, not both")
        if "api_base" in table:
            base = self.get(table, "api_base", str, "", _https_problem)
            return base.rstrip("/"), None
        region = self.get(table, "region", str, "us")
        if region not in REGIONS:
            self.problem("region", f"must be one of {sorted(REGIONS)}, or set api_base instead")
            return REGIONS["us"], region
        return REGIONS[region], region

    def intercom_api(
        self, table: Mapping[str, Any], region: str | None
    ) -> IntercomApiSettings | None:
        """[workspaces.<name>.intercom_api]: the REST access token for `intercom check`/`sync`."""
        self.only_keys(
            table,
            {
                "secret_env", "secret_file", "rest_base", "timeout", "connect_timeout",
                "retries", "max_retry_wait",
            },
        )  # fmt: skip
        token = None
        if "secret_dev" in table or not ({"secret_env", "secret_file"} & set(table)):
            self.problem(
                None,
                "set secret_env (an environment variable name) or secret_file (a file path) "
                "holding an Intercom access token (Developer Hub > your app > Authentication); "
                "a development secret cannot stand in for one",
            )
        else:
            token = self.secret(table, f"{self.here()} access token", INTERCOM_TOKEN_MIN_BYTES)
        if "rest_base" in table:
            rest_base = self.get(table, "rest_base", str, "", _https_problem).rstrip("/")
        elif region is not None and region in REST_BASES:
            rest_base = REST_BASES[region]
        else:
            rest_base = ""
            self.problem(
                "rest_base",
                "is required when the workspace sets api_base instead of region: name "
                f"Intercom's REST host ({', '.join(REST_BASES.values())})",
            )
        timing = {
            key: self.get(table, key, kind, _INTERCOM_DEFAULTS[key], _between(low, high, unit))
            for key, (kind, low, high, unit) in _INTERCOM_BOUNDS.items()
        }
        if token is None:
            return None
        return IntercomApiSettings(token=token, rest_base=rest_base, **timing)

    def attributes(self, raw: Any) -> tuple[AttributeSpec, ...]:
        if not isinstance(raw, list):
            self.problem("attributes", "must be an array of tables ([[...attributes]])")
            return ()
        specs: list[AttributeSpec] = []
        seen: set[str] = set()
        with self.at("attributes"):
            for index, item in enumerate(raw):
                with self.at(index):
                    if not isinstance(item, dict):
                        self.problem(None, "must be a table with name and type")
                        continue
                    spec = self.attribute(item)
                    if spec is None:
                        continue
                    if spec.name in seen:
                        self.problem("name", f"duplicate attribute name {spec.name!r}")
                        continue
                    seen.add(spec.name)
                    specs.append(spec)
        cdas = [s for s in specs if not s.is_standard]
        if len(cdas) > CDA_SOFT_LIMIT:
            self.warnings.append(
                f"{self.here('attributes')}: {len(cdas)} custom attributes; Intercom's soft "
                f"limit is about {CDA_SOFT_LIMIT} active CDAs per workspace"
            )
        return tuple(specs)

    def attribute(self, item: Mapping[str, Any]) -> AttributeSpec | None:
        self.only_keys(item, {"name", "type", "description", "claim", "profile"})
        before = len(self.problems)
        name = self.get(item, "name", str, None, required=True)
        type_ = cast(AttributeType, self.choice(item, "type", AttributeType, "string"))
        description = self.get(item, "description", str, "")
        claim = self.get(item, "claim", str, None)
        profile = self.get(item, "profile", str, None)
        # Every problem of this attribute is reported; a broken one is then left out,
        # so it never shows up again as a bogus duplicate.
        if name is not None and (reason := naming.name_problem(name, type_)):
            self.problem("name", reason)
        if name in STANDARD_ATTRIBUTES and STANDARD_ATTRIBUTES[name] != type_:
            standard = STANDARD_ATTRIBUTES[name]
            self.problem("type", f"{name!r} is a standard attribute of type {standard!r}")
        if not claim and not profile:
            self.problem(
                None, 'say where the value comes from: claim = "..." and/or profile = "..."'
            )
        if name is None or len(self.problems) > before:
            return None
        return AttributeSpec(name, type_, description, claim or None, profile or None)

    def auth_methods(self, raw: Any) -> tuple[AuthSettings, ...]:
        if not isinstance(raw, list):
            self.problem("auth", "must be an array of tables ([[workspaces.<name>.auth]])")
            return ()
        methods: list[AuthSettings] = []
        with self.at("auth"):
            for index, item in enumerate(raw):
                with self.at(index):
                    if not isinstance(item, dict):
                        self.problem(None, "must be a table with a method")
                        continue
                    method = item.get("method")
                    if method == "bearer":
                        bearer = self.bearer(item)
                        if bearer is not None:
                            methods.append(bearer)
                    elif method == "session":
                        session = self.session(item)
                        if session is not None:
                            methods.append(session)
                    else:
                        self.problem("method", 'must be "bearer" or "session"')
        return tuple(methods)

    def bearer(self, item: Mapping[str, Any]) -> BearerAuthSettings | None:
        self.only_keys(
            item,
            {
                "method", "issuer", "audience", "algorithms", "jwks_url", "key_file", "leeway",
                "user_id_claim", "max_token_bytes", "jwks_timeout", "jwks_connect_timeout",
                "jwks_read_timeout", "jwks_refetch_interval", "jwks_cache_ttl", "jwks_max_stale",
                "jwks_retry_initial", "jwks_retry_max",
            },
        )  # fmt: skip
        issuer = self.get(item, "issuer", str, "", _non_empty, required=True)
        if issuer == DEMO_IDP_ISSUER:
            # `identity-service demo` adds this method itself; in a file it would let
            # `serve` trust tokens signed for published demo passwords.
            self.problem(
                "issuer",
                f"{issuer!r} is the demo's development identity provider, which only "
                "`identity-service demo` trusts (it adds it itself): name your IdP's issuer",
            )
        audience = self.strings(item, "audience", required=True)
        algorithms = self.strings(item, "algorithms", required=True)
        for alg in algorithms:
            if alg not in IDP_ALGORITHMS:
                self.problem(
                    "algorithms",
                    f"{alg!r} is not allowed; use asymmetric algorithms only "
                    f"({', '.join(sorted(IDP_ALGORITHMS))})",
                )
        sources = [k for k in ("jwks_url", "key_file") if k in item]
        if len(sources) != 1:
            self.problem(None, "set exactly one of jwks_url or key_file (a PEM or JWK file)")
        jwks_url = self.get(item, "jwks_url", str, None, _https_problem)
        key_file_raw = self.get(item, "key_file", str, None)
        key_file = self.file_path(key_file_raw) if key_file_raw else None
        if key_file is not None and not key_file.is_file():
            self.problem("key_file", f"no such file: {key_file}")
        timing = self.jwks_timing(item)
        settings = BearerAuthSettings(
            issuer=issuer,
            audience=audience,
            algorithms=algorithms,
            jwks_url=jwks_url,
            key_file=key_file,
            leeway=self.get(item, "leeway", int, 30, _between(0, MAX_LEEWAY, "seconds")),
            user_id_claim=self.get(item, "user_id_claim", str, "sub", _non_empty),
            jwks_timeout=timing["jwks_timeout"],
            jwks_connect_timeout=timing["jwks_connect_timeout"],
            jwks_read_timeout=timing["jwks_read_timeout"],
            jwks_refetch_interval=timing["jwks_refetch_interval"],
            jwks_cache_ttl=timing["jwks_cache_ttl"],
            jwks_max_stale=timing["jwks_max_stale"],
            jwks_retry_initial=timing["jwks_retry_initial"],
            jwks_retry_max=timing["jwks_retry_max"],
            max_token_bytes=self.get(
                item, "max_token_bytes", int, 8192, _between(512, 65536, "bytes")
            ),
        )
        return settings

    def jwks_timing(self, item: Mapping[str, Any]) -> dict[str, float]:
        """The JWKS deadlines, cache and retry keys; their defaults are BearerAuthSettings'."""
        # The connect and read timeouts are capped by jwks_timeout, and a retry
        # by jwks_retry_max, where they apply: setting one key alone stays valid.
        return {
            key: self.get(item, key, float, _BEARER_DEFAULTS[key], _between(low, high, "seconds"))
            for key, (low, high) in _JWKS_TIMING_BOUNDS.items()
        }

    def session(self, item: Mapping[str, Any]) -> SessionAuthSettings | None:
        self.only_keys(
            item,
            {
                "method", "secret_env", "secret_file", "secret_dev", "fallback_secret_envs",
                "fallback_secret_files", "allowed_origins", "cookie_name", "salt", "digest",
                "max_age", "user_id_key",
            },
        )  # fmt: skip
        what = f"{self.here()} session key"
        secret = self.secret(item, what, SESSION_SECRET_MIN_BYTES)
        fallbacks: list[SecretSource] = []
        for name in self.strings(item, "fallback_secret_envs", required=False):
            # A fallback is revoked, not kept, when its file goes bad: removing a
            # key is how an operator stops trusting it (secrets.py).
            source = SecretSource(
                "env", name, f"{what} (fallback)", SESSION_SECRET_MIN_BYTES, on_refused="revoke"
            )
            self.check_secret(source, "fallback_secret_envs")
            fallbacks.append(source)
        for raw in self.strings(item, "fallback_secret_files", required=False):
            path = str(self.file_path(raw))
            source = SecretSource(
                "file", path, f"{what} (fallback)", SESSION_SECRET_MIN_BYTES, on_refused="revoke"
            )
            self.check_secret(source, "fallback_secret_files")
            fallbacks.append(source)
        origins = self.strings(item, "allowed_origins", required=False)
        with self.at("allowed_origins"):
            for i, origin in enumerate(origins):
                if reason := _origin_problem(origin):
                    self.problem(i, reason)
        digest = self.get(item, "digest", str, "sha1")
        if digest not in SESSION_DIGESTS:
            self.problem("digest", f"must be one of {sorted(SESSION_DIGESTS)}")
        if secret is None:
            return None
        return SessionAuthSettings(
            secret=secret,
            fallback_secrets=tuple(fallbacks),
            allowed_origins=origins,
            cookie_name=self.get(item, "cookie_name", str, "session", _non_empty),
            salt=self.get(item, "salt", str, "cookie-session"),
            digest=digest,
            max_age=self.get(
                item, "max_age", int, 31 * 24 * 3600, _between(60, 400 * 86400, "seconds")
            ),
            user_id_key=self.get(item, "user_id_key", str, "user_id", _non_empty),
        )

    def profile(self, table: Mapping[str, Any]) -> ProfileSettings:
        self.only_keys(
            table,
            {
                "url", "query", "id_column", "timeout", "on_unavailable", "pool_size",
                "breaker_cooldown",
            },
        )  # fmt: skip
        url = self.get(table, "url", str, "", _non_empty, required=True)
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            # A relative SQLite path is relative to the configuration file, not the cwd.
            relative = url.removeprefix("sqlite:///")
            if relative and relative != ":memory:":
                instance_relative = relative.replace("{instance}", str(self.instance.resolve()))
                url = f"sqlite:///{self.file_path(instance_relative)}"
        query = self.get(table, "query", str, "", _non_empty, required=True)
        if query and ":user_id" not in query:
            self.problem("query", "must use the bound parameter :user_id (never string formatting)")
        id_column = self.get(table, "id_column", str, "", _non_empty, required=False)
        if "id_column" not in table:
            # Without it no row can be checked against the token's user id, and the
            # database's own comparison may equate "01" and 1: refuse, do not guess.
            self.problem(
                "id_column",
                "is required: name the query's column holding the user's own id, e.g. "
                'id_column = "id" with query = "SELECT id, plan FROM users WHERE id = :user_id"',
            )
        elif id_column and query and not re.search(rf"\b{re.escape(id_column)}\b", query):
            self.problem("id_column", f"{id_column!r} does not appear in the query; select it")
        on_unavailable = cast(
            OnUnavailable, self.choice(table, "on_unavailable", OnUnavailable, "omit")
        )
        return ProfileSettings(
            url=url,
            query=query,
            id_column=id_column,
            timeout=self.get(table, "timeout", float, 2.0, _between(0.1, 30, "seconds")),
            on_unavailable=on_unavailable,
            pool_size=self.get(table, "pool_size", int, 5, _between(1, 50, "connections")),
            breaker_cooldown=self.get(
                table, "breaker_cooldown", float, 5.0, _between(0, 300, "seconds")
            ),
        )

    def cross_checks(
        self, service: ServiceSettings, workspaces: Mapping[str, WorkspaceSettings]
    ) -> None:
        cookie = self.session_workspaces
        if "*" in service.cors_origins and cookie:
            with self.at("service"):
                self.problem(
                    "cors_origins",
                    f'"*" is refused while cookie authentication is on (workspaces {cookie}); '
                    "list the exact origins",
                )
        for workspace in workspaces.values():
            if not workspace.auth:
                self.warnings.append(
                    f"workspaces.{workspace.key}: no [[auth]] method; the token endpoint "
                    "refuses every request for it"
                )


_SECRET_KEYS = ("secret_env", "secret_file", "secret_dev")


def _unknown_platform(name: str) -> str:
    if name == "web":
        return (
            "web's secret is the workspace's own secret_env / secret_file (as before "
            "platforms existed); platforms holds only ios and android"
        )
    return f"unknown platform; use {' or '.join(MOBILE_PLATFORMS)}"


def _share_problem(target: str, shared: Mapping[str, str]) -> str:
    if target in shared:
        return (
            f"{target!r} itself uses same_secret_as: name the platform that holds the "
            f"secret ({shared[target]!r})"
        )
    if target == "web":
        return (
            "'web' has no secret in this workspace (no secret_env / secret_file of its "
            "own): configure it, or give this platform its own secret"
        )
    return (
        f"{target!r} has no secret in this workspace: add "
        f"[...platforms.{target}] with its secret, or give this platform its own"
    )


def _part(key: str | int) -> str:
    if isinstance(key, int):
        return f"[{key}]"
    return key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        kind, kind.__name__
    )


_BEARER_DEFAULTS: Mapping[str, Any] = {f.name: f.default for f in fields(BearerAuthSettings)}
# Seconds, (lowest, highest) accepted.
_JWKS_TIMING_BOUNDS: Mapping[str, tuple[float, float]] = {
    "jwks_timeout": (0.1, 10),
    "jwks_connect_timeout": (0.05, 10),
    "jwks_read_timeout": (0.05, 10),
    "jwks_refetch_interval": (1, 3600),
    "jwks_cache_ttl": (1, 86400),
    "jwks_max_stale": (0, 7 * 86400),
    "jwks_retry_initial": (0.05, 60),
    "jwks_retry_max": (0.05, 300),
}


_INTERCOM_DEFAULTS: Mapping[str, Any] = {f.name: f.default for f in fields(IntercomApiSettings)}
# (type, lowest, highest, unit) accepted for [workspaces.<name>.intercom_api] timing keys.
_INTERCOM_BOUNDS: Mapping[str, tuple[type, float, float, str]] = {
    "timeout": (float, 0.5, 60, "seconds"),
    "connect_timeout": (float, 0.1, 30, "seconds"),
    "retries": (int, 0, 10, "retries"),
    "max_retry_wait": (float, 0, 300, "seconds"),
}


def _between(low: float, high: float, unit: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not low <= value <= high:
            return f"must be between {low:g} and {high:g} {unit}, got {value:g}"
        return None

    return check


def _limit_problem(value: str) -> str | None:
    if not value:
        return None  # empty: this scope is not limited
    try:
        parse_limit(value)
    except ValueError as exc:
        return f'{exc}; write one, e.g. "30/minute" or "5 per second"'
    return None


def _storage_problem(value: str) -> str | None:
    if value.startswith(("memory://", "redis://", "rediss://")):
        return None
    return "must be memory:// (one process) or redis://host:port/db (shared by every instance)"


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _app_id_problem(value: str) -> str | None:
    if not value or not value.isascii() or not value.isalnum():
        return "must be your Intercom app id (letters and digits, e.g. 'ql8el0gn')"
    return None


def _https_problem(value: str) -> str | None:
    parts = urlsplit(value)
    local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme == "https" or (parts.scheme == "http" and local):
        return None
    return "must be an https:// URL (plain http is allowed only for 127.0.0.1 / localhost)"


def _origin_problem(origin: str) -> str | None:
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"{origin!r} is not an origin; write scheme://host[:port]"
    if parts.path or parts.query or parts.fragment or origin.endswith("/"):
        return f"{origin!r} has a path; an origin is only scheme://host[:port]"
    # Compared exactly with the Origin header, which browsers serialise in
    # lowercase and without the scheme's default port: any other spelling
    # would never match a browser, so it is refused rather than left dead.
    canonical = f"{parts.scheme}://{parts.netloc.lower()}"
    if not _ORIGIN.fullmatch(canonical):
        # Origins are compared exactly. flask-cors would compile an entry with
        # *, ?, [ or ( as an unanchored regex that also matches attacker hosts.
        return f"{origin!r}: list each origin exactly (no wildcards, user info or patterns)"
    try:
        port = parts.port
    except ValueError:
        return f"{origin!r}: the port must be a number from 1 to 65535"
    if port == _DEFAULT_PORTS[parts.scheme]:
        canonical = canonical.rpartition(":")[0]
    if origin != canonical:
        return f"{origin!r}: write {canonical!r}, exactly as browsers send the Origin header"
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


_ORIGIN = re.compile(
    r"https?://(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)
