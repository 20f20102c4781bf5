"""`alertpull example TYPE`: a commented config block for one source type, generated from
its option declarations, so the example can never drift from what the loader accepts.

Required keys are written out (secrets as `${VAR}` to export, the rest as a value to
replace); optional keys are commented out with their default and help.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from alertpull.connector import Option
from alertpull.connectors import REGISTRY, connector_class
from alertpull.errors import ConfigError
from alertpull.timeutil import format_duration

PLACEHOLDER = "CHANGE-ME"


def render_value(value: Any) -> str:
    """A default as YAML would read it back (flow style: one line per key)."""
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # JSON is YAML: strings quoted, lists in flow style


def _notes(option: Option, secret_var: str) -> str:
    notes = [f"secret: export {secret_var}, or use {{file: PATH}}"] if option.secret else []
    notes += [option.help] if option.help else []
    if option.choices:
        notes.append(("one of " if option.kind == "str" else "any of ")
                     + ", ".join(option.choices))
    return f"  # {'; '.join(notes)}" if notes else ""


def _line(name: str, option: Option, env_prefix: str) -> str:
    secret_var = f"{env_prefix}_{name.upper()}"
    if option.secret:
        value = f'"${{{secret_var}}}"'
    elif option.required:
        value = f"[{PLACEHOLDER}]" if option.kind == "list" else PLACEHOLDER
    else:
        value = render_value(option.default) if option.default is not None else ""
    key = f"{name}: {value}".rstrip()
    return f"    {key if option.required else '# ' + key}{_notes(option, secret_var)}"


def example_block(type_name: str, source_name: str | None = None) -> str:
    """The `sources:` entry for one source type, ready to paste into a config."""
    if type_name not in REGISTRY:
        raise ConfigError(f"unknown source type {type_name!r}; one of: "
                          f"{', '.join(sorted(REGISTRY))}")
    connector = connector_class(type_name)
    name = source_name or type_name.replace("_", "-")
    env_prefix = name.upper().replace("-", "_").replace(".", "_")
    lines = ["sources:", f"  {name}:", f"    type: {type_name}"]
    ordered = sorted(connector.options.items(), key=lambda item: not item[1].required)
    lines += [_line(key, option, env_prefix) for key, option in ordered]
    return "\n".join(lines) + "\n"
