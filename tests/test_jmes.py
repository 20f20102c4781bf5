"""Property: a field path compiled by alertpull.rest.jmes reads exactly what jmespath's own
interpreter reads (the same value, the same type, the same error), whatever the object."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertpull.rest.jmes import compile_tree
from alertpull.rest.recipes import RECIPES, spec_path

# The shapes specs use (the shipped recipes' paths among them, below) and the kinds of node
# compile_tree leaves to the interpreter (slices, flatten, ordering, not, wildcards).
EXPRESSIONS = [
    "a", "a.b", "a.b.c", "a || b", "a && b", "[a, b]", "{x: a, y: b.c}", "a[?b]",
    "a[?b == 'x']", "a[?b != `1`]", "a == 'x' && 'y' || b", "a.b == `true`",
    "[a.{type: 'd', id: b, name: c}][?id]", "{hashes: [a, b], ips: [c.a, c.b]}",
    "join(' ', ['from', a || 'x', 'to', b || c || 'y'])", "a[*].b", "a[].b", "a[0]", "a[1:]",
    "!a", "a > `1`", "a.*", "length(a)", "a | b", "a | [0]", "@", "a.b | c", "`[1, 2]`",
    "a[?b > `0`].c", "sort_by(a, &b)", "a.[b, c]", "a.{k: b}", "a.b[*].c || d", "*.a",
    "a[?b].c.d", "not_null(a, b)", "to_string(a)", "a[-1]", "a[::2]", "a && b || c", "a == b",
]

KEYS = st.sampled_from("abcdx")
SCALARS = st.sampled_from([None, True, False, 0, 1, 2, -1, 1.5, "", "x", "y", "0"])
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=5), max_leaves=12)


def _read(search: Any, value: Any) -> tuple[Any, ...]:
    try:
        return ("value", repr(search(value)))
    except Exception as exc:  # an error must be the same error
        return ("error", type(exc).__name__, str(exc))


def _recipe_paths() -> list[str]:
    """Every field path of the shipped recipes (a link_template is a template, not a path)."""
    import yaml

    paths = []
    for name in sorted(RECIPES.values()):
        fields = yaml.safe_load(spec_path(name).read_text())["fields"]
        for key, value in fields.items():
            path = value.get("path") if isinstance(value, dict) else value
            if key != "link_template" and isinstance(path, str):
                paths.append(path)
    return paths


@pytest.mark.parametrize("expression", EXPRESSIONS + _recipe_paths())
@settings(max_examples=300, deadline=None)
@given(value=VALUES)
def test_compiled_path_reads_what_the_interpreter_reads(expression: str, value: Any) -> None:
    parsed = jmespath.compile(expression)
    assert _read(compile_tree(parsed.parsed), value) == _read(parsed.search, value)
