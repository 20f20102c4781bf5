"""Load and strictly validate the YAML config.

Every problem becomes a ConfigError with one line naming the key and the fix.
Secrets are expanded here (from ${VAR} or {file: PATH}) and wrapped in `Secret`
so that they can never be printed by accident.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from alertpull.connector import Option, Secret
from alertpull.errors import ConfigError
from alertpull.timeutil import parse_duration
from alertpull.validate import ca_bundles, endpoint_url, require_modules

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

STATE_OPTIONS: dict[str, dict[str, Option]] = {
    "local": {
        "backend": Option(required=True),
        "path": Option(default=".alertpull/state", help="directory of state files"),
    },
    "s3": {
        "backend": Option(required=True),
        "bucket": Option(required=True, help="bucket holding state documents"),
        "prefix": Option(default="alertpull/state"),
        "endpoint_url": Option(help="S3 endpoint override"),
        "region": Option(),
        "lease_seconds": Option(kind="seconds", default=900,
                                help="lock lease, renewed while held"),
    },
    "gcs": {
        "backend": Option(required=True),
        "bucket": Option(required=True, help="bucket holding state documents"),
        "prefix": Option(default="alertpull/state"),
        "credentials_file": Option(kind="path", help="service-account key; default ADC"),
        "project": Option(help="billing project (requester-pays buckets)"),
        "endpoint": Option(help="JSON API endpoint override"),
        "lease_seconds": Option(kind="seconds", default=900,
                                help="lock lease, renewed while held"),
    },
}
# One line per alert version: the native record, or an OCSF Detection Finding event.
_FORMAT = Option(default="native", choices=("native", "ocsf"), help="native | ocsf")
SINK_OPTIONS: dict[str, dict[str, Option]] = {
    "jsonl": {
        "type": Option(required=True),
        "path": Option(default="./alerts"),
        "compression": Option(default="none", choices=("none", "gzip")),
        "format": _FORMAT,
    },
    "s3": {
        "type": Option(required=True),
        "bucket": Option(required=True),
        "prefix": Option(default=""),
        "compression": Option(default="gzip", choices=("gzip", "none")),
        "endpoint_url": Option(),
        "region": Option(),
        "sse": Option(choices=("AES256", "aws:kms")),
        "sse_kms_key_id": Option(),
        "spool_dir": Option(help="local directory for staged parts"),
        "format": _FORMAT,
    },
    "gcs": {
        "type": Option(required=True),
        "bucket": Option(required=True),
        "prefix": Option(default=""),
        "compression": Option(default="gzip", choices=("gzip", "none")),
        "credentials_file": Option(kind="path", help="service-account key; default ADC"),
        "project": Option(help="billing project (requester-pays buckets)"),
        "endpoint": Option(help="JSON API endpoint override"),
        "spool_dir": Option(help="local directory for staged parts"),
        "format": _FORMAT,
    },
    "stdout": {"type": Option(required=True), "format": _FORMAT},
}

# Engine settings a source may override; `defaults:` sets them for every source.
TIMING_OPTIONS: dict[str, Option] = {
    "overlap": Option(kind="duration", help="re-read this much before the watermark"),
    "settle": Option(kind="duration", default=timedelta(minutes=2), help="skip the newest"),
    "first_run_since": Option(kind="duration", default=timedelta(hours=24)),
    "concurrency": Option(kind="int", default=4, help="scopes pulled at once"),
}


@dataclass(frozen=True)
class SourceConfig:
    name: str
    type: str
    timing: Mapping[str, Any]  # TIMING_OPTIONS values (overlap may be None = connector's)
    settings: Mapping[str, Any]  # the connector's own options


@dataclass(frozen=True)
class Config:
    path: str
    state: Mapping[str, Any]
    sink: Mapping[str, Any]
    sources: Mapping[str, SourceConfig]
    notify: tuple[Any, ...] = ()  # alertpull.notify.config.Target, one per `notify:` item


def _expand_env(value: str, where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set; export it")
        return os.environ[name]

    return _VAR.sub(replace, value)


def _read_secret_file(path: str, where: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot read secret file {path}: {exc.strerror}; fix the path or permissions"
        ) from None


def _coerce(value: Any, option: Option, where: str, base_dir: str) -> Any:
    """Check one value against its Option; return the typed value."""
    if option.secret:
        if isinstance(value, Mapping) and set(value) == {"file"}:
            path = _path(_expand_env(str(value["file"]), where), base_dir)
            return Secret(_read_secret_file(path, where))
        if isinstance(value, str):
            return Secret(_expand_env(value, where))
        raise ConfigError(f"{where}: expected a string or {{file: PATH}}")
    if option.kind == "path_or_mapping":  # a file, or the same content inline
        return dict(value) if isinstance(value, Mapping) else _coerce(
            value, Option("path"), where, base_dir)
    if option.kind == "path":
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a file path, got {type(value).__name__}")
        return _path(_expand_env(value, where), base_dir)
    if option.kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
        value = _expand_env(value, where)
        if option.choices and value not in option.choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(option.choices)}")
        return value
    if option.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < option.minimum:
            wanted = ("a positive whole number" if option.minimum == 1
                      else f"a whole number, {option.minimum} or more")
            raise ConfigError(f"{where}: expected {wanted}, got {value!r}")
        return value
    if option.kind == "seconds":
        # Fractions too: a test (or an impatient operator) need not wait whole seconds.
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(f"{where}: expected a positive number of seconds, e.g. 30 or 0.5, "
                              f"got {value!r}")
        return value
    if option.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if option.kind == "duration":
        try:
            return parse_duration(str(value))
        except (ValueError, OverflowError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if option.kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, e.g. [a, b]")
        items = list(dict.fromkeys(_expand_env(v, where) for v in value))
        if option.choices:
            wrong = [v for v in items if v not in option.choices] or ([] if items else ["[]"])
            if wrong:
                raise ConfigError(f"{where}: {wrong[0]} is not one of "
                                  f"{', '.join(option.choices)}")
        return items
    if option.kind == "map":
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping")
        return dict(value)
    raise AssertionError(f"unknown option kind {option.kind}")


def validate_block(
    data: Any, spec: Mapping[str, Option], where: str, base_dir: str
) -> dict[str, Any]:
    """Validate a mapping against a spec; apply defaults; reject unknown keys."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key; valid keys are {', '.join(sorted(spec))}"
        )
    result: dict[str, Any] = {}
    for key, option in spec.items():
        if key in data and data[key] is not None:
            result[key] = _coerce(data[key], option, f"{where}.{key}", base_dir)
        elif option.required:
            raise ConfigError(f"{where}.{key}: required key is missing; add it")
        else:
            result[key] = option.default
    return result


def _pick_variant(
    data: Any, variants: Mapping[str, Mapping[str, Option]], key: str, where: str
) -> Mapping[str, Option]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    kind = data.get(key)
    if not isinstance(kind, str) or kind not in variants:
        raise ConfigError(f"{where}.{key}: {kind!r} is not one of {', '.join(variants)}")
    return variants[kind]


def _path(value: str, base_dir: str) -> str:
    """~ expands to the home directory; a relative path is relative to the config file."""
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def _resolve_paths(block: dict[str, Any], keys: tuple[str, ...], base_dir: str) -> None:
    for key in keys:
        if block.get(key):
            block[key] = _path(block[key], base_dir)


def _check_s3_block(block: Mapping[str, Any], kind: str, where: str) -> None:
    """An S3 state or sink needs boto3, and an endpoint_url that is a URL."""
    if kind != "s3":
        return
    require_modules(f"{where} (s3)", {"boto3": "aws"})
    if block["endpoint_url"]:
        endpoint_url(block["endpoint_url"], f"{where}.endpoint_url",
                     form="http(s)://host[:port] of an S3-compatible endpoint")


def _source(name: str, data: Any, defaults: Mapping[str, Any], base_dir: str) -> SourceConfig:
    from alertpull.connectors import REGISTRY, connector_class

    where = f"sources.{name}"
    if not _SOURCE_NAME.match(name):
        raise ConfigError(f"{where}: source names may use letters, digits, '_', '.', '-' only")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping with at least 'type'")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in REGISTRY:
        types = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"{where}.type: {kind!r} is not a source type; use one of {types}")
    connector = connector_class(kind).configured(where, data, base_dir)
    connector_spec = connector.options
    unknown = sorted(set(data) - {"type", *connector_spec, *TIMING_OPTIONS})
    if unknown:
        valid = ", ".join(sorted({"type", *connector_spec, *TIMING_OPTIONS}))
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key for type {kind}; valid keys are {valid}"
        )
    timing = dict(defaults)
    for key, option in TIMING_OPTIONS.items():
        if data.get(key) is not None:
            timing[key] = _coerce(data[key], option, f"{where}.{key}", base_dir)
    if timing["first_run_since"] <= timing["settle"]:
        raise ConfigError(f"{where}: first_run_since must be longer than settle, or the first "
                          "run has nothing to pull")
    own = {k: v for k, v in data.items() if k in connector_spec}
    settings = validate_block(own, connector_spec, where, base_dir)
    require_modules(f"source {name} ({kind})", connector.requires)
    connector.check_settings(where, settings)
    return SourceConfig(name=name, type=kind, timing=timing, settings=settings)


def parse_config(raw: Any, path: str) -> Config:
    base_dir = os.path.dirname(os.path.abspath(path))
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a YAML mapping with state, sink and sources")
    unknown = sorted(set(raw) - {"state", "sink", "defaults", "sources", "notify"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown top-level key; valid keys are "
                          "state, sink, defaults, sources, notify")
    state_raw = raw.get("state") or {"backend": "local"}
    state = validate_block(state_raw, _pick_variant(state_raw, STATE_OPTIONS, "backend", "state"),
                           "state", base_dir)
    sink_raw = raw.get("sink") or {"type": "jsonl"}
    sink = validate_block(sink_raw, _pick_variant(sink_raw, SINK_OPTIONS, "type", "sink"),
                          "sink", base_dir)
    _check_s3_block(state, state["backend"], "state")
    _check_s3_block(sink, sink["type"], "sink")
    _resolve_paths(state, ("path",), base_dir)
    _resolve_paths(sink, ("path", "spool_dir"), base_dir)
    defaults = validate_block(raw.get("defaults") or {}, TIMING_OPTIONS, "defaults", base_dir)
    sources_raw = raw.get("sources")
    if sources_raw is not None and not isinstance(sources_raw, Mapping):
        raise ConfigError("sources: expected a mapping of source name to its settings, "
                          "e.g. sources: {aws-prod: {type: guardduty}}")
    if not sources_raw:
        raise ConfigError("sources: no sources configured; add at least one under 'sources:'")
    sources = {str(n): _source(str(n), d, defaults, base_dir) for n, d in sources_raw.items()}
    return Config(path=path, state=state, sink=sink, sources=sources,
                  notify=_notify(raw.get("notify"), sink, sources, base_dir))


def _notify(raw: Any, sink: Mapping[str, Any], sources: Mapping[str, SourceConfig],
            base_dir: str) -> tuple[Any, ...]:
    if raw is None:  # no targets: their HTTP layer (requests) is not imported
        return ()
    from alertpull.notify.config import parse_notify

    return parse_notify(raw, sink, sources, base_dir)


def load_config(path: str) -> Config:
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found; pass -c PATH or set ALERTPULL_CONFIG "
            "(see config.example.yaml)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{at}: {problem}; fix the YAML syntax") from None
    config = parse_config(raw, path)
    ca_bundles()
    return config
