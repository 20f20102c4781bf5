"""Checks of what a user can fix before anything is pulled: an SDK that is not installed, a
key file that is not there, an endpoint that is not a URL, a CA bundle that does not exist.

The config loader and the connectors' `check_settings` call these while the config loads,
so each problem is one ConfigError line (exit 2) naming the key and the fix, instead of a
failure halfway through a run.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from alertpull.errors import ConfigError

# Where requests, botocore, urllib3 and OpenSSL look for a custom CA bundle.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_FILE")


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it nor its parent packages
    (find_spec("google.auth") would import `google`): config checks stay SDK-free."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None: known not to be importable
    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    for part in rest.split(".") if rest else ():
        if spec is None or spec.submodule_search_locations is None:
            return False
        name = f"{spec.name}.{part}"
        if name in sys.modules:
            return sys.modules[name] is not None
        spec = importlib.machinery.PathFinder.find_spec(name, list(spec.submodule_search_locations))
    return spec is not None


def require_modules(what: str, requires: Mapping[str, str]) -> None:
    """`requires` maps a module to the alertpull extra that installs it."""
    for module, extra in requires.items():
        if not installed(module):
            raise ConfigError(f"{what} needs {module}: pip install 'alertpull[{extra}]'")


def endpoint_url(value: str, where: str, *, what: str = "an endpoint URL", form: str,
                 path: bool = False, bare_host: bool = False) -> str:
    """http(s)://host[:port] (with a path only when `path`), returned without a trailing
    slash. `bare_host` also accepts host[:port] alone, as Google's clients do."""
    text = value.strip()
    if bare_host and "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # not a number, or out of range
        port_ok = False
    problem = (
        "no http:// or https://" if parts.scheme not in ("http", "https")
        else "no host" if not parts.hostname
        else "a port that is not a number from 1 to 65535" if not port_ok
        else "user:password@ in it" if "@" in parts.netloc
        else "a query or fragment" if parts.query or parts.fragment or "?" in text
        else "a path" if not path and parts.path.strip("/")
        else None
    )
    if problem:
        raise ConfigError(f"{where}: {value!r} is not {what} (it has {problem}); use {form}")
    return text.rstrip("/")


def key_file(path: str, where: str, *, types: tuple[str, ...], fix: str) -> dict[str, Any]:
    """A credentials JSON the user points at: there, a readable file, JSON, of one of `types`
    (its `type` field). Its content never appears in an error."""
    if not os.path.lexists(path):
        raise ConfigError(f"{where}: {path} does not exist; {fix}")
    if os.path.isdir(path):
        raise ConfigError(f"{where}: {path} is a directory; {fix}")
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except OSError as err:
        raise ConfigError(f"{where}: cannot read {path}: {err.strerror}; fix the path or its "
                          "permissions") from None
    except ValueError:  # also UnicodeDecodeError
        raise ConfigError(f"{where}: {path} is not JSON; {fix}") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind not in types:
        raise ConfigError(f"{where}: {path} is not a {' or '.join(types)} key "
                          f"(its type is {kind!r}); {fix}")
    assert isinstance(info, dict)
    return info


def ca_bundles(environ: Mapping[str, str] = os.environ) -> None:
    """A CA bundle variable naming a path that does not exist fails every TLS call later,
    reported as whatever call came first (often the output): name it now instead."""
    for name in CA_BUNDLE_VARIABLES:
        path = environ.get(name)
        if path and not os.path.exists(path):
            raise ConfigError(f"environment variable {name} names {path}, which does not "
                              "exist; point it at a PEM CA bundle or unset it")
