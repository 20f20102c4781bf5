"""A parsed JMESPath expression turned into nested Python functions, evaluated as
jmespath's TreeInterpreter evaluates it.

Field paths run for every field of every alert. The interpreter dispatches on every node
of the tree on every call (a dict lookup, a bound method, *args), which was a third of a
recipe's mapping; a function per node, built once when the spec loads, does the same
steps without the dispatch (in loops: before Python 3.12 a comprehension builds a function
on every call). Each function below repeats its TreeInterpreter method
(jmespath 1.x, jmespath/visitor.py) step for step; a node of any other kind (slices,
flatten, ordering comparisons, ...) is left to the interpreter itself, so every
expression reads the same values either way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

Node = dict[str, Any]
Evaluate = Callable[[Any], Any]


def compile_tree(node: Node) -> Evaluate:
    """A function of the value the expression is applied to."""
    build = _BUILDERS.get(node["type"])
    if build is None:
        return functools.partial(_interpreter().visit, node)
    return build(node)


def _field(node: Node) -> Evaluate:
    key = node["value"]

    def field(value: Any) -> Any:
        if type(value) is dict:  # the common case, without the interpreter's try
            return value.get(key)
        try:
            return value.get(key)
        except AttributeError:
            return None

    return field


def _subexpression(node: Node) -> Evaluate:
    children = node["children"]
    if all(child["type"] == "field" for child in children):
        return _dotted([child["value"] for child in children])
    steps = [compile_tree(child) for child in children]

    def subexpression(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return subexpression


def _dotted(keys: list[str]) -> Evaluate:
    """a.b.c: a field of a field of a field (visit_field at each level)."""
    fallback = [_field({"value": key}) for key in keys]

    def dotted(value: Any) -> Any:
        for index, key in enumerate(keys):
            if type(value) is not dict:
                for step in fallback[index:]:
                    value = step(value)
                return value
            value = value.get(key)
        return value

    return dotted


def _literal(node: Node) -> Evaluate:
    literal = node["value"]
    return lambda value: literal


def _current(node: Node) -> Evaluate:
    return lambda value: value


def _key_val_pair(node: Node) -> Evaluate:
    return compile_tree(node["children"][0])


def _multi_select_dict(node: Node) -> Evaluate:
    pairs = [(child["value"], compile_tree(child)) for child in node["children"]]

    def multi_select_dict(value: Any) -> Any:
        if value is None:
            return None
        collected = {}
        for key, evaluate in pairs:
            collected[key] = evaluate(value)
        return collected

    return multi_select_dict


def _multi_select_list(node: Node) -> Evaluate:
    items = [compile_tree(child) for child in node["children"]]

    def multi_select_list(value: Any) -> Any:
        if value is None:
            return None
        collected = []
        for evaluate in items:
            collected.append(evaluate(value))
        return collected

    return multi_select_list


def _projection(node: Node) -> Evaluate:
    base, each = (compile_tree(child) for child in node["children"])

    def projection(value: Any) -> Any:
        found = base(value)
        if not isinstance(found, list):
            return None
        collected = []
        for element in found:
            current = each(element)
            if current is not None:
                collected.append(current)
        return collected

    return projection


def _filter_projection(node: Node) -> Evaluate:
    base, each, condition = (compile_tree(child) for child in node["children"])

    def filter_projection(value: Any) -> Any:
        found = base(value)
        if not isinstance(found, list):
            return None
        collected = []
        for element in found:
            if not _is_false(condition(element)):
                current = each(element)
                if current is not None:
                    collected.append(current)
        return collected

    return filter_projection


def _or_expression(node: Node) -> Evaluate:
    left, right = (compile_tree(child) for child in node["children"])

    def or_expression(value: Any) -> Any:
        matched = left(value)
        return right(value) if _is_false(matched) else matched

    return or_expression


def _and_expression(node: Node) -> Evaluate:
    left, right = (compile_tree(child) for child in node["children"])

    def and_expression(value: Any) -> Any:
        matched = left(value)
        return matched if _is_false(matched) else right(value)

    return and_expression


def _comparator(node: Node) -> Evaluate:
    if node["value"] not in ("eq", "ne"):  # ordering: the interpreter's number checks
        return functools.partial(_interpreter().visit, node)
    compare = _interpreter().COMPARATOR_FUNC[node["value"]]
    left, right = (compile_tree(child) for child in node["children"])
    return lambda value: compare(left(value), right(value))


def _function_expression(node: Node) -> Evaluate:
    name = node["value"]
    arguments = [compile_tree(child) for child in node["children"]]
    call = _interpreter()._functions.call_function
    return lambda value: call(name, [argument(value) for argument in arguments])


def _is_false(value: Any) -> bool:
    """TreeInterpreter._is_false: JMESPath's false values, by equality as it tests them."""
    return (value == "" or value == [] or value == {} or value is None
            or value is False)


_BUILDERS: dict[str, Callable[[Node], Evaluate]] = {
    "field": _field,
    "subexpression": _subexpression,
    "pipe": _subexpression,  # a | b: visit_pipe is visit_subexpression's loop
    "literal": _literal,
    "current": _current,
    "identity": _current,
    "key_val_pair": _key_val_pair,
    "multi_select_dict": _multi_select_dict,
    "multi_select_list": _multi_select_list,
    "projection": _projection,
    "filter_projection": _filter_projection,
    "or_expression": _or_expression,
    "and_expression": _and_expression,
    "comparator": _comparator,
    "function_expression": _function_expression,
}


@functools.cache
def _interpreter() -> Any:
    from jmespath.visitor import TreeInterpreter

    return TreeInterpreter()
