"""Load and validate the TOML configuration into frozen `Settings`.

The loader walks the settings dataclasses' fields (settings.py: each key's
type, default and limits, written there once). Every problem is collected with
its key path (`workspaces.eu.attributes[3].name`) and what would fix it, and all
of them are reported together in one `ConfigError`, so an operator fixes a file
in one pass. Nothing here runs at import time.

Two steps: `read_settings` turns the file into Settings and reads no secret;
`load_settings` then resolves every secret as the running service does
(`secrets.resolve`), which is what the app factory and `serve` use.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import tomllib
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import MISSING, Field, dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, cast, get_args, get_origin, get_type_hints

from identity_service.auth.algorithms import IDP_ALGORITHMS
from identity_service.errors import ConfigError, ConfigProblem
from identity_service.intercom import (
    CDA_SOFT_LIMIT,
    DEFAULT_REGION,
    REGIONS,
    REST_API_BASES,
    STANDARD_ATTRIBUTES,
    name_problem,
)
from identity_service.schema import default, field_rule, is_key, profile_backend, toml_keys
from identity_service.secrets import SecretSource
from identity_service.secrets import resolve as resolve_secrets
from identity_service.settings import (
    DEMO_IDP_ISSUER,
    MOBILE_PLATFORMS,
    PLATFORMS,
    SECRET_KEYS,
    WORKSPACE_KEY_PATTERN,
    AttributeSpec,
    AuthSettings,
    BearerAuthSettings,
    IntercomApiSettings,
    Platform,
    PlatformSettings,
    PlatformsSettings,
    ProfileSettings,
    RateLimitSettings,
    ServiceSettings,
    SessionAuthSettings,
    Settings,
    WorkspaceSettings,
)

CONFIG_ENV = "IDENTITY_SERVICE_CONFIG"
INSTANCE_ENV = "IDENTITY_SERVICE_INSTANCE"
WORKSPACE_KEY = re.compile(WORKSPACE_KEY_PATTERN)

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


def read_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read and validate the configuration into frozen Settings; no secret is read, no file written.

    For commands that need what the file says but not its secrets (lint-frontend,
    in a product's CI). A ConfigError lists every problem.
    """
    loader = _parse(path, os.environ if environ is None else environ)
    return loader.result(loader.problems)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    generate_dev_secrets: bool = False,
) -> Settings:
    """`read_settings`, then every secret resolved as the running service resolves it.

    One ConfigError lists the file's problems and the secrets' together.
    `generate_dev_secrets` makes missing development secrets now (`serve`);
    otherwise the service makes them when it first needs them.
    """
    env = os.environ if environ is None else environ
    loader = _parse(path, env)
    unavailable = resolve_secrets(loader.secrets, env, generate=generate_dev_secrets)
    return loader.result([*loader.problems, *unavailable])


def _parse(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> _Loader:
    config = read_config(path, env)
    loader = _Loader(config.source, config.base, instance_folder(env))
    loader.load(config.data)
    return loader


class _Loader:
    """Walks the parsed TOML along the settings' fields, collecting problems with key paths."""

    def __init__(self, source: str, base: Path, instance: Path) -> None:
        self.source = source
        self.base = base
        self.instance = instance
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []
        self.path: list[str] = []
        self.secrets: list[SecretSource] = []  # every secret named, for the runtime to resolve
        self.settings: Settings | None = None
        # Workspaces with a session [[auth]] table, even a broken one, so the
        # cross-checks report every problem in one pass.
        self.session_workspaces: list[str] = []
        # Generated development secret files, by the key path each one is for.
        self.dev_files: dict[str, str] = {}

    def result(self, problems: list[ConfigProblem]) -> Settings:
        if problems or self.settings is None:
            raise ConfigError(self.source, problems)
        return self.settings

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

    def only_keys(self, table: Mapping[str, Any], cls: type) -> None:
        allowed = sorted(toml_keys(cls))
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed: {allowed}"
                self.problem(key, f"unknown key; {hint}")

    def values(
        self, table: Mapping[str, Any], cls: type, skip: Collection[str] = ()
    ) -> dict[str, Any]:
        """Each key of `cls` read from `table` by its field's type, default and rule.

        A missing required key, or one of the wrong type or out of its limits,
        is a problem; its value is then the default (or a placeholder), so the
        walk goes on and reports the rest.
        """
        hints = _type_hints(cls)
        found: dict[str, Any] = {}
        for spec in fields(cls):
            if is_key(spec) and spec.name not in skip:
                found[spec.name] = self.value(table, spec, hints[spec.name])
        return found

    def value(self, table: Mapping[str, Any], spec: Field[Any], kind: Any) -> Any:
        key, check, fallback = spec.name, field_rule(spec), default(spec)
        raw = table.get(key, _MISSING)
        if raw is _MISSING:
            if fallback is MISSING:
                self.problem(key, check.missing or f"is required ({_kind_name(kind)})")
                return _placeholder(kind)
            return fallback
        value = self.typed(key, raw, kind)
        if value is _MISSING:
            return _placeholder(kind) if fallback is MISSING else fallback
        if check.each is not None:
            with self.at(key):
                for index, item in enumerate(value):
                    if (reason := check.each(item)) is not None:
                        self.problem(index, reason)
        if (reason := check.problem(value)) is not None:
            self.problem(key, reason)
        return value

    def typed(self, key: str, value: Any, kind: Any) -> Any:
        """`value` as `kind` (int, float, str, bool, Path, Literal, tuple of str), or _MISSING."""
        kind = _required(kind)
        if get_origin(kind) is Literal:
            allowed = get_args(kind)
            if not isinstance(value, str):
                self.problem(key, f"must be a string, got {type(value).__name__}")
                return _MISSING
            if value not in allowed:
                self.problem(key, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
                return _MISSING
            return value
        if get_origin(kind) is tuple:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                self.problem(key, "must be a list of non-empty strings")
                return _MISSING
            return tuple(value)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        expected = str if kind is Path else kind
        if not isinstance(value, expected) or (kind is int and isinstance(value, bool)):
            self.problem(key, f"must be {_kind_name(kind)}, got {type(value).__name__}")
            return _MISSING
        return self.file_path(value) if kind is Path else value

    def strings(self, table: Mapping[str, Any], key: str) -> tuple[str, ...]:
        """An optional list of strings (a lone string is a list of one)."""
        if key not in table:
            return ()
        value = self.typed(key, table[key], tuple[str, ...])
        return () if value is _MISSING else cast(tuple[str, ...], value)

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
        self,
        table: Mapping[str, Any],
        owner: type,
        name: str,
        what: str,
        *,
        optional: bool | None = None,
    ) -> SecretSource | None:
        """Where the secret of field `name` comes from: exactly one of its keys, never its value.

        Its keys (`secret_env`, `secret_file`, `secret_dev`) and fewest bytes are the
        field's rule; a field with a default (None) may also be left out, unless
        `optional` says otherwise (a web secret is required without platforms).
        """
        spec = _field(owner, name)
        check = field_rule(spec)
        if optional is None:
            optional = default(spec) is not MISSING
        options = check.keys or ()
        keys = [k for k in options if k in table]
        if not keys and optional:
            return None
        if len(keys) != 1:
            found = "none" if not keys else " and ".join(keys)
            self.problem(
                None,
                f"set exactly one of {_secret_options(options)}; found {found}. "
                "Secrets are never written in this file",
            )
            return None
        key, raw = keys[0], table[keys[0]]
        if key.endswith("_dev"):
            if raw is not True:
                others = " or ".join(k for k in options if not k.endswith("_dev"))
                self.problem(key, f"can only be true; use {others} instead")
                return None
            # The Messenger secret keeps the file name it always had: dev-workspaces-eu.secret.
            here = self.here(None if name == "secret" else name)
            slug = re.sub(r"[^A-Za-z0-9_]+", "-", here)
            dev = str(self.instance / f"dev-{slug.strip('-')}.secret")
            # Workspace keys may hold "-", so two key paths can make one file name
            # (workspace "eu-platforms-ios" and eu's iOS secret): never share it.
            holder = self.dev_files.setdefault(dev, here)
            if holder != here:
                self.problem(
                    key,
                    f"its development secret file {Path(dev).name} is already {holder}'s: "
                    "rename this workspace, or give one of them secret_env or secret_file",
                )
                return None
            return self.named(SecretSource("dev", dev, what, check.min_bytes), key)
        if not isinstance(raw, str) or not raw:
            self.problem(key, "must be a non-empty string")
            return None
        if key.endswith("_env"):
            return self.named(SecretSource("env", raw, what, check.min_bytes), key)
        path = str(self.file_path(raw))
        return self.named(SecretSource("file", path, what, check.min_bytes), key)

    def named(self, source: SecretSource, key: str) -> SecretSource:
        """The secret, told the key that names it and kept for the runtime to resolve."""
        source.key = self.here(key)
        self.secrets.append(source)
        return source

    # -- the document -----------------------------------------------------------

    def load(self, data: Mapping[str, Any]) -> None:
        self.only_keys(data, Settings)
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
        default_workspace = self.default_workspace(data, raw_workspaces)
        self.cross_checks(service, workspaces)
        self.settings = Settings(
            source=self.source,
            service=service,
            workspaces=workspaces,
            default_workspace=default_workspace,
            warnings=tuple(self.warnings),
        )

    def default_workspace(self, data: Mapping[str, Any], workspaces: Mapping[str, Any]) -> str:
        if "default_workspace" in data:
            name = self.typed("default_workspace", data["default_workspace"], str)
            if workspaces and name not in workspaces:
                self.problem(
                    "default_workspace", f"names no workspace; choose one of {sorted(workspaces)}"
                )
            return name if isinstance(name, str) else ""
        if len(workspaces) > 1:
            self.problem(
                "default_workspace",
                f"is required when there are several workspaces ({sorted(workspaces)})",
            )
        return next(iter(workspaces), "")

    def service(self, table: Mapping[str, Any]) -> ServiceSettings:
        self.only_keys(table, ServiceSettings)
        found = self.values(table, ServiceSettings, skip={"rate_limit"})
        rate_limit = self.rate_limit(self.table(table, "rate_limit") or {})
        return ServiceSettings(**found, instance_path=self.instance, rate_limit=rate_limit)

    def rate_limit(self, table: Mapping[str, Any]) -> RateLimitSettings:
        with self.at("rate_limit"):
            self.only_keys(table, RateLimitSettings)
            return RateLimitSettings(**self.values(table, RateLimitSettings))

    def workspace(self, key: str, table: Mapping[str, Any]) -> WorkspaceSettings | None:
        self.only_keys(table, WorkspaceSettings)
        found = self.values(
            table,
            WorkspaceSettings,
            skip={
                "api_base",
                "region",
                "secret",
                "attributes",
                "auth",
                "profile",
                "user_id_pattern",
                "intercom_api",
                "platforms",
            },
        )
        api_base, region = self.api_base(table)
        raw_platforms = self.table(table, "platforms")
        # The workspace's own secret_* keys are the web secret, as before platforms
        # existed; a workspace that lists platforms may leave web out (not served).
        secret = self.secret(
            table,
            WorkspaceSettings,
            "secret",
            f"workspaces.{key} Messenger secret",
            optional=raw_platforms is not None,
        )
        platforms = None
        if raw_platforms is not None:
            with self.at("platforms"):
                platforms = self.platforms(raw_platforms, secret)
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
        if platforms is not None and not any(isinstance(m, BearerAuthSettings) for m in auth):
            self.warnings.append(
                f"workspaces.{key}: serves {' and '.join(_served(platforms))} but has no bearer "
                "[[auth]] method; mobile apps authenticate with the IdP's bearer token (the "
                "session cookie is refused for them), so every such request is refused"
            )
        return WorkspaceSettings(
            **found,
            key=key,
            api_base=api_base,
            secret=secret,
            region=region,
            attributes=attributes,
            auth=auth,
            profile=profile,
            user_id_pattern=user_id_pattern,
            intercom_api=intercom_api,
            platforms=platforms,
        )

    def platforms(
        self, table: Mapping[str, Any], web: SecretSource | None
    ) -> PlatformsSettings | None:
        """The mobile platforms' secrets, each its own or one another platform holds."""
        if "web" in table:
            self.problem(
                "web",
                "web's secret is the workspace's own secret_env / secret_file (as before "
                "platforms existed); platforms holds only ios and android",
            )
        self.only_keys({k: v for k, v in table.items() if k != "web"}, PlatformsSettings)
        found: dict[Platform, PlatformSettings] = {}
        for platform in MOBILE_PLATFORMS:
            item = self.table(table, platform)
            if item is not None:
                with self.at(platform):
                    found[platform] = self.platform(item)
        if not found:
            if not table:
                self.problem(None, "must hold a [...platforms.ios] and/or [...platforms.android]")
            return None
        holders: dict[str, bool] = {"web": web is not None}
        holders.update({p: t.secret is not None for p, t in found.items()})
        for platform, settings in found.items():
            target = settings.same_secret_as
            if target is not None and target != platform and not holders.get(target):
                with self.at(platform):
                    self.problem("same_secret_as", _share_problem(target, found))
        return PlatformsSettings(**found)

    def platform(self, item: Mapping[str, Any]) -> PlatformSettings:
        """One platform: exactly one of its own secret_* keys, or same_secret_as."""
        self.only_keys(item, PlatformSettings)
        found = self.values(item, PlatformSettings, skip={"secret"})
        share, mine = found["same_secret_as"], self.path[-1]
        own_keys = [k for k in SECRET_KEYS if k in item]
        if share is not None and own_keys:
            self.problem(
                "same_secret_as",
                "set either same_secret_as or this platform's own secret_env / secret_file / "
                "secret_dev, not both",
            )
            return PlatformSettings(same_secret_as=share)
        if share == mine:
            others = [p for p in PLATFORMS if p != mine]
            self.problem(
                "same_secret_as",
                f"must name another platform whose secret this one shares: one of {others}",
            )
        if share is not None:
            return PlatformSettings(same_secret_as=share)
        secret = self.secret(
            item, PlatformSettings, "secret", f"{self.here()} Messenger secret", optional=False
        )
        return PlatformSettings(secret=secret)

    def pattern(self, table: Mapping[str, Any], key: str) -> re.Pattern[str] | None:
        source = self.typed(key, table[key], str) if key in table else None
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
            base = self.value(table, _field(WorkspaceSettings, "api_base"), str)
            return base.rstrip("/"), None
        region = self.typed("region", table.get("region", DEFAULT_REGION), str)
        if region is _MISSING:
            return REGIONS[DEFAULT_REGION], None
        if region not in REGIONS:
            self.problem("region", f"must be one of {sorted(REGIONS)}, or set api_base instead")
            return REGIONS[DEFAULT_REGION], region
        return REGIONS[region], region

    def intercom_api(
        self, table: Mapping[str, Any], region: str | None
    ) -> IntercomApiSettings | None:
        """[workspaces.<name>.intercom_api]: the REST access token for `intercom check`/`sync`."""
        self.only_keys(table, IntercomApiSettings)
        found = self.values(table, IntercomApiSettings, skip={"token", "rest_base"})
        token = None
        if "secret_dev" in table or not ({"secret_env", "secret_file"} & set(table)):
            self.problem(
                None,
                "set secret_env (an environment variable name) or secret_file (a file path) "
                "holding an Intercom access token (Developer Hub > your app > Authentication); "
                "a development secret cannot stand in for one",
            )
        else:
            token = self.secret(table, IntercomApiSettings, "token", f"{self.here()} access token")
        if "rest_base" in table:
            rest_base = self.value(table, _field(IntercomApiSettings, "rest_base"), str)
            rest_base = rest_base.rstrip("/")
        elif region is not None and region in REST_API_BASES:
            rest_base = REST_API_BASES[region]
        else:
            rest_base = ""
            self.problem(
                "rest_base",
                "is required when the workspace sets api_base instead of region: name "
                f"Intercom's REST host ({', '.join(REST_API_BASES.values())})",
            )
        if token is None:
            return None
        return IntercomApiSettings(**found, token=token, rest_base=rest_base)

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
        self.only_keys(item, AttributeSpec)
        before = len(self.problems)
        found = self.values(item, AttributeSpec)
        name, type_ = found["name"], found["type"]
        # Every problem of this attribute is reported; a broken one is then left out,
        # so it never shows up again as a bogus duplicate.
        if name and (reason := name_problem(name, type_)):
            self.problem("name", reason)
        if name in STANDARD_ATTRIBUTES and STANDARD_ATTRIBUTES[name] != type_:
            standard = STANDARD_ATTRIBUTES[name]
            self.problem("type", f"{name!r} is a standard attribute of type {standard!r}")
        if not found["claim"] and not found["profile"]:
            self.problem(
                None, 'say where the value comes from: claim = "..." and/or profile = "..."'
            )
        if not name or len(self.problems) > before:
            return None
        return AttributeSpec(**{**found, "claim": found["claim"] or None,
                                "profile": found["profile"] or None})  # fmt: skip

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
                    built: AuthSettings | None = None
                    if method == "bearer":
                        built = self.bearer(item)
                    elif method == "session":
                        built = self.session(item)
                    else:
                        self.problem("method", 'must be "bearer" or "session"')
                    if built is not None:
                        methods.append(built)
        return tuple(methods)

    def bearer(self, item: Mapping[str, Any]) -> BearerAuthSettings:
        self.only_keys(item, BearerAuthSettings)
        found = self.values(item, BearerAuthSettings, skip={"method"})
        if found["issuer"] == DEMO_IDP_ISSUER:
            # `identity-service demo` adds this method itself; in a file it would let
            # `serve` trust tokens signed for published demo passwords.
            self.problem(
                "issuer",
                f"{DEMO_IDP_ISSUER!r} is the demo's development identity provider, which only "
                "`identity-service demo` trusts (it adds it itself): name your IdP's issuer",
            )
        for alg in found["algorithms"]:
            if alg not in IDP_ALGORITHMS:
                self.problem(
                    "algorithms",
                    f"{alg!r} is not allowed; use asymmetric algorithms only "
                    f"({', '.join(sorted(IDP_ALGORITHMS))})",
                )
        if len([k for k in ("jwks_url", "key_file") if k in item]) != 1:
            self.problem(None, "set exactly one of jwks_url or key_file (a PEM or JWK file)")
        if found["key_file"] is not None:
            self.key_file(found["key_file"], found["algorithms"])
        return BearerAuthSettings(**found)

    def key_file(self, path: Path, algorithms: tuple[str, ...]) -> None:
        """The IdP's pinned keys must be usable now, not first when a worker builds them."""
        if not path.is_file():
            self.problem("key_file", f"no such file: {path}")
            return
        # Imported here: the key parsers (cryptography) are needed only for a key file.
        from identity_service.auth.keys import keyset_from_file

        try:
            keyset_from_file(path, [a for a in algorithms if a in IDP_ALGORITHMS])
        except (OSError, ValueError) as exc:
            self.problem("key_file", f"cannot use {path} as the IdP's public key: {exc}")

    def session(self, item: Mapping[str, Any]) -> SessionAuthSettings | None:
        self.only_keys(item, SessionAuthSettings)
        found = self.values(
            item, SessionAuthSettings, skip={"method", "secret", "fallback_secrets"}
        )
        what = f"{self.here()} session key"
        secret = self.secret(item, SessionAuthSettings, "secret", what)
        min_bytes = field_rule(_field(SessionAuthSettings, "fallback_secrets")).min_bytes
        fallbacks: list[SecretSource] = []
        for name in self.strings(item, "fallback_secret_envs"):
            # A fallback is revoked, not kept, when its file goes bad: removing a
            # key is how an operator stops trusting it (secrets.py).
            source = SecretSource("env", name, f"{what} (fallback)", min_bytes, on_refused="revoke")
            fallbacks.append(self.named(source, "fallback_secret_envs"))
        for raw in self.strings(item, "fallback_secret_files"):
            path = str(self.file_path(raw))
            source = SecretSource(
                "file", path, f"{what} (fallback)", min_bytes, on_refused="revoke"
            )
            fallbacks.append(self.named(source, "fallback_secret_files"))
        if secret is None:
            return None
        return SessionAuthSettings(**found, secret=secret, fallback_secrets=tuple(fallbacks))

    def profile(self, table: Mapping[str, Any]) -> ProfileSettings:
        self.only_keys(table, ProfileSettings)
        found = self.values(table, ProfileSettings)
        url, query, id_column = found["url"], found["query"], found["id_column"]
        if url and (reason := profile_backend(url)):
            self.problem(None, reason)
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            # A relative SQLite path is relative to the configuration file, not the cwd.
            relative = url.removeprefix("sqlite:///")
            if relative and relative != ":memory:":
                instance_relative = relative.replace("{instance}", str(self.instance.resolve()))
                found["url"] = f"sqlite:///{self.file_path(instance_relative)}"
        if query and ":user_id" not in query:
            self.problem("query", "must use the bound parameter :user_id (never string formatting)")
        if id_column and query and not re.search(rf"\b{re.escape(id_column)}\b", query):
            self.problem("id_column", f"{id_column!r} does not appear in the query; select it")
        return ProfileSettings(**found)

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


def _part(key: str | int) -> str:
    if isinstance(key, int):
        return f"[{key}]"
    return key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'


def _served(platforms: PlatformsSettings) -> list[str]:
    return [p for p in MOBILE_PLATFORMS if getattr(platforms, p) is not None]


def _share_problem(target: str, found: Mapping[Platform, PlatformSettings]) -> str:
    named = next((t for p, t in found.items() if p == target), None)
    if named is not None and named.same_secret_as is not None:
        return (
            f"{target!r} itself uses same_secret_as: name the platform that holds the "
            f"secret ({named.same_secret_as!r})"
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


def _secret_options(keys: tuple[str, ...]) -> str:
    """'secret_env (an environment variable name), secret_file (a file path) or ...'."""
    said = {"_env": "(an environment variable name)", "_file": "(a file path)",
            "_dev": "= true (development only)"}  # fmt: skip
    named = [f"{k} {said[k[k.rindex('_') :]]}" for k in keys]
    return ", ".join(named[:-1]) + f" or {named[-1]}" if len(named) > 1 else "".join(named)


def _required(kind: Any) -> Any:
    """`X` of `X | None` (an optional key's value, when it is set)."""
    args = [a for a in get_args(kind) if a is not type(None)]
    return args[0] if get_origin(kind) in (Union, UnionType) and len(args) == 1 else kind


def _kind_name(kind: Any) -> str:
    kind = _required(kind)
    if get_origin(kind) is tuple:
        return "a string or a list of strings"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(kind, "a string" if kind is Path or get_origin(kind) is Literal else str(kind))


def _placeholder(kind: Any) -> Any:
    """What a missing required key reads as while the walk goes on (the settings are refused)."""
    kind = _required(kind)
    return () if get_origin(kind) is tuple else "" if kind is str else None


@cache
def _type_hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _field(cls: type, name: str) -> Field[Any]:
    return next(f for f in fields(cls) if f.name == name)
