"""Terraform expressions evaluated offline, as far as the files decide them.

python-hcl2 hands an attribute's expression over as source text (``${var.x ? a : b}``) and a
quoted string or heredoc as its template text. This module parses that text (literals, templates,
references with indexes and splats, function calls, operators, conditionals, ``for``) and
evaluates it against a :class:`Scope`. A value the files cannot decide (a variable with no
default, an account id, a resource's ARN) is an :class:`Unknown` that names the one value it
needs; it flows through every operation, so a caller learns exactly what it would take.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EvalError",
    "Namespace",
    "Scope",
    "Unknown",
    "evaluate",
    "evaluate_value",
    "placeholders",
    "render_template",
]

_MAX_DEPTH = 64


class EvalError(Exception):
    """The expression fails as Terraform would fail it (``try()`` moves on to its next argument)."""


@dataclass(frozen=True)
class Unknown:
    """A value the files do not decide. ``needs`` names it; ``partial`` is a string's known text.

    ``branches`` holds, for a conditional on an unknown value, each branch's value by its
    condition ("var.x is true"), so a caller can say what each would mean.
    """

    needs: str
    partial: str | None = None
    branches: tuple[tuple[str, object], ...] = ()

    def placeholder(self) -> str:
        """The value as a ``${...}`` marker inside a rendered document."""
        return self.partial if self.partial is not None else "${" + self.needs + "}"


@dataclass
class Scope:
    """What references resolve to. ``lookup`` answers a root name (``var``, ``data``, ...)."""

    lookup: Callable[[str], object]
    read_file: Callable[[str], str]
    local: dict[str, object] = field(default_factory=dict)

    def child(self, **names: object) -> Scope:
        return Scope(self.lookup, self.read_file, {**self.local, **names})


class Namespace:
    """An object whose attributes are computed on demand (``data``, ``data.aws_partition``)."""

    def __init__(
        self,
        attribute: Callable[[str], object],
        *,
        indexable: bool = True,
        index: Callable[[object], object] | None = None,
    ) -> None:
        self._attribute = attribute
        # ``x[0]`` and ``x["k"]`` are the same instance (count/for_each) unless ``index`` says
        # what one instance is (a body that reads each.key).
        self.indexable = indexable or index is not None
        self.index = index

    def attr(self, name: str) -> object:
        return self._attribute(name)


# ---------------------------------------------------------------------------------------------
# Parsing: text → a small tree of tuples, ("kind", ...).

_IDENT = re.compile(r"[A-Za-z_][\w-]*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "=>", "...")
_BINARY = [("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%")]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    # -- lexing helpers
    def _space(self) -> None:
        while self.at < len(self.text):
            char = self.text[self.at]
            if char in " \t\r\n":
                self.at += 1
            elif self.text.startswith(("#", "//"), self.at):
                end = self.text.find("\n", self.at)
                self.at = len(self.text) if end < 0 else end
            elif self.text.startswith("/*", self.at):
                end = self.text.find("*/", self.at + 2)
                self.at = len(self.text) if end < 0 else end + 2
            else:
                return

    def peek(self, *options: str) -> str | None:
        self._space()
        for option in sorted(options, key=len, reverse=True):
            if self.text.startswith(option, self.at):
                word = _IDENT.match(self.text, self.at) if option.isalpha() else None
                if word is not None and word.end() != self.at + len(option):
                    continue  # "for" is not the start of "format"
                return option
        return None

    def take(self, *options: str) -> str | None:
        found = self.peek(*options)
        if found is not None:
            self.at += len(found)
        return found

    def expect(self, token: str) -> None:
        if self.take(token) is None:
            raise EvalError(f"expected {token!r} at {self.at} in {self.text[:80]!r}")

    def done(self) -> bool:
        self._space()
        return self.at >= len(self.text)

    # -- grammar
    def expression(self, depth: int = 0) -> tuple[Any, ...]:
        if depth > _MAX_DEPTH:
            raise EvalError("the expression is nested too deep")
        self._space()
        start = self.at
        condition = self._binary(0, depth)
        source = self.text[start : self.at].strip()
        if self.take("?"):
            then = self.expression(depth + 1)
            self.expect(":")
            otherwise = self.expression(depth + 1)
            return ("cond", condition, then, otherwise, source)
        return condition

    def _binary(self, level: int, depth: int) -> tuple[Any, ...]:
        if level == len(_BINARY):
            return self._unary(depth)
        left = self._binary(level + 1, depth)
        while True:
            # "=>" and "==" start with characters of lower-level operators: peek the long ones.
            found = self.peek(*_BINARY[level], *_OPERATORS)
            if found is None or found not in _BINARY[level]:
                return left
            self.at += len(found)
            left = ("op", found, left, self._binary(level + 1, depth))

    def _unary(self, depth: int) -> tuple[Any, ...]:
        if depth > _MAX_DEPTH:
            raise EvalError("the expression is nested too deep")
        if self.peek("!=") is None and self.take("!"):
            return ("not", self._unary(depth + 1))
        if self.take("-"):
            return ("neg", self._unary(depth + 1))
        return self._postfix(self._primary(depth), depth)

    def _postfix(self, node: tuple[Any, ...], depth: int) -> tuple[Any, ...]:
        steps: list[tuple[Any, ...]] = []
        while True:
            if self.take("[*]") or self.take(".*"):
                steps.append(("splat",))
            elif self.peek("...") is None and self.take("."):
                self._space()
                number = _NUMBER.match(self.text, self.at)
                if number and self.text[self.at].isdigit():
                    self.at = number.end()
                    steps.append(("index", ("lit", int(float(number.group())))))
                    continue
                name = _IDENT.match(self.text, self.at)
                if name is None:
                    raise EvalError(f"expected a name after '.' at {self.at}")
                self.at = name.end()
                steps.append(("attr", name.group()))
            elif self.take("["):
                index = self.expression(depth + 1)
                self.expect("]")
                steps.append(("index", index))
            else:
                break
        return ("path", node, tuple(steps)) if steps else node

    def _primary(self, depth: int) -> tuple[Any, ...]:
        self._space()
        if self.at >= len(self.text):
            raise EvalError("the expression ends too soon")
        char = self.text[self.at]
        if char == "(":
            self.at += 1
            inner = self.expression(depth + 1)
            self.expect(")")
            return inner
        if char == '"':
            return self._quoted()
        if self.text.startswith("<<", self.at):
            return self._heredoc()
        if char == "[":
            return self._tuple(depth)
        if char == "{":
            return self._object(depth)
        number = _NUMBER.match(self.text, self.at)
        if number:
            self.at = number.end()
            text = number.group()
            return ("lit", float(text) if any(c in text for c in ".eE") else int(text))
        name = _IDENT.match(self.text, self.at)
        if name is None:
            raise EvalError(f"unexpected {char!r} at {self.at}")
        self.at = name.end()
        word = name.group()
        if word in ("true", "false"):
            return ("lit", word == "true")
        if word == "null":
            return ("lit", None)
        if self.peek("(") and not self.peek("(("):
            return self._call(word, depth)
        return ("ref", word)

    def _call(self, name: str, depth: int) -> tuple[Any, ...]:
        self.expect("(")
        arguments: list[tuple[Any, ...]] = []
        expand = False
        while not self.take(")"):
            arguments.append(self.expression(depth + 1))
            if self.take("..."):
                expand = True
            if not self.take(","):
                self.expect(")")
                break
        return ("call", name, tuple(arguments), expand)

    def _tuple(self, depth: int) -> tuple[Any, ...]:
        self.expect("[")
        if self.peek("for"):
            return self._for(depth, "]")
        items: list[tuple[Any, ...]] = []
        while not self.take("]"):
            items.append(self.expression(depth + 1))
            if not self.take(","):
                self.expect("]")
                break
        return ("tuple", tuple(items))

    def _object(self, depth: int) -> tuple[Any, ...]:
        self.expect("{")
        if self.peek("for"):
            return self._for(depth, "}")
        items: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []
        while not self.take("}"):
            self._space()
            name = _IDENT.match(self.text, self.at)
            if name and self.text[self.at] != '"':
                after = _Parser(self.text)
                after.at = name.end()
                if after.peek("=", ":") and not after.peek("=="):
                    self.at = name.end()
                    key: tuple[Any, ...] = ("lit", name.group())
                else:
                    key = self.expression(depth + 1)
            else:
                key = self.expression(depth + 1)
            if self.take(":") is None:
                self.expect("=")
            items.append((key, self.expression(depth + 1)))
            self.take(",")
        return ("object", tuple(items))

    def _for(self, depth: int, close: str) -> tuple[Any, ...]:
        self.expect("for")
        names = [self._name()]
        if self.take(","):
            names.append(self._name())
        self.expect("in")
        collection = self.expression(depth + 1)
        self.expect(":")
        key = None
        value = self.expression(depth + 1)
        if close == "}":
            self.expect("=>")
            key, value = value, self.expression(depth + 1)
            self.take("...")
        condition = None
        if self.take("if"):
            condition = self.expression(depth + 1)
        self.expect(close)
        return ("for", tuple(names), collection, key, value, condition)

    def _name(self) -> str:
        self._space()
        name = _IDENT.match(self.text, self.at)
        if name is None:
            raise EvalError(f"expected a name at {self.at}")
        self.at = name.end()
        return name.group()

    def _quoted(self) -> tuple[Any, ...]:
        self.expect('"')
        start = self.at
        depth = 0
        while self.at < len(self.text):
            char = self.text[self.at]
            if char == "\\":
                self.at += 2
                continue
            if self.text.startswith(("${", "%{"), self.at):
                depth += 1
                self.at += 2
                continue
            if depth and char == '"':  # a string inside an interpolation
                self._quoted()
                continue
            if depth and char == "{":
                depth += 1
            elif depth and char == "}":
                depth -= 1
            elif not depth and char == '"':
                raw = self.text[start : self.at]
                self.at += 1
                return ("template", _unescape_template(raw))
            self.at += 1
        raise EvalError("a string is not closed")

    def _heredoc(self) -> tuple[Any, ...]:
        match = re.compile(r"<<(-?)([A-Za-z_]\w*)\n").match(self.text, self.at)
        if match is None:
            raise EvalError("a heredoc is not well formed")
        marker = match.group(2)
        end = re.compile(rf"^[ \t]*{marker}[ \t]*$", re.M).search(self.text, match.end())
        if end is None:
            raise EvalError("a heredoc is not closed")
        body = self.text[match.end() : end.start()]
        self.at = end.end()
        if match.group(1):
            lines = body.splitlines(keepends=True)
            indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
            cut = min(indents, default=0)
            body = "".join(line[cut:] for line in lines)
        return ("template", body)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _unescape_template(raw: str) -> str:
    """A quoted string's escapes resolved (outside its interpolations, which stay source)."""
    out: list[str] = []
    at = 0
    depth = 0
    while at < len(raw):
        char = raw[at]
        if not depth and char == "\\" and at + 1 < len(raw):
            nxt = raw[at + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", raw[at + 2 : at + 6]):
                out.append(chr(int(raw[at + 2 : at + 6], 16)))
                at += 6
                continue
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            at += 2
            continue
        if not depth and raw.startswith(("$${", "%%{"), at):
            out.append(raw[at : at + 3])
            at += 3
            continue
        if raw.startswith(("${", "%{"), at):
            depth += 1
            out.append(raw[at : at + 2])
            at += 2
            continue
        if depth and char == "{":
            depth += 1
        elif depth and char == "}":
            depth -= 1
        out.append(char)
        at += 1
    return "".join(out)


def _template_parts(text: str) -> Iterator[tuple[str, str]]:
    """("text", literal) and ("expr", source) pieces of a template; ``$${`` is a literal ``${``."""
    at = 0
    literal: list[str] = []
    while at < len(text):
        if text.startswith(("$${", "%%{"), at):
            literal.append(text[at + 1 : at + 3])
            at += 3
            continue
        if text.startswith(("${", "%{"), at):
            kind = "expr" if text[at] == "$" else "directive"
            depth, end = 1, at + 2
            in_string = False
            while end < len(text) and depth:
                char = text[end]
                if in_string:
                    if char == "\\":
                        end += 1
                    elif char == '"':
                        in_string = False
                elif char == '"':
                    in_string = True
                elif char == "{":
                    depth += 1
                elif char == "}":
                    depth -= 1
                end += 1
            if depth:
                raise EvalError("an interpolation is not closed")
            if literal:
                yield "text", "".join(literal)
                literal = []
            yield kind, text[at + 2 : end - 1].strip().strip("~").strip()
            at = end
            continue
        literal.append(text[at])
        at += 1
    if literal:
        yield "text", "".join(literal)


# ---------------------------------------------------------------------------------------------
# Evaluation.


def evaluate(source: str, scope: Scope) -> object:
    """The value of the expression ``source`` (source text, without ``${ }``)."""
    parser = _Parser(source)
    node = parser.expression()
    if not parser.done():
        raise EvalError(f"unexpected text after the expression: {source[parser.at :][:40]!r}")
    return _eval(node, scope, 0)


def _whole_interpolation(text: str) -> str | None:
    """``inner`` when ``text`` is exactly one ``${inner}``."""
    if not (text.startswith("${") and text.endswith("}")):
        return None
    parts = list(_template_parts(text))
    return parts[0][1] if len(parts) == 1 and parts[0][0] == "expr" else None


def evaluate_value(value: object, scope: Scope) -> object:
    """A value as python-hcl2 gives it (strings of source or template text, lists, maps)."""
    if isinstance(value, str):
        inner = _whole_interpolation(value)
        return evaluate(inner, scope) if inner is not None else render_template(value, scope)
    if isinstance(value, list):
        return [evaluate_value(item, scope) for item in value]
    if isinstance(value, Mapping):
        return {
            str(k): evaluate_value(v, scope) for k, v in value.items() if not k.startswith("__")
        }
    return value


def render_template(text: str, scope: Scope) -> object:
    """A template's text; a directive or an unknown part makes it Unknown (its known text kept)."""
    pieces: list[str] = []
    unknown: Unknown | None = None
    for kind, part in _template_parts(text):
        if kind == "text":
            pieces.append(part)
            continue
        if kind == "directive":
            unknown = unknown or Unknown(f"the template directive %{{{part}}}")
            pieces.append("%{" + part + "}")
            continue
        value = evaluate(part, scope)
        if isinstance(value, Unknown):
            unknown = unknown or value
            pieces.append(value.placeholder())
        else:
            pieces.append(_to_string(value))
    rendered = "".join(pieces)
    if unknown is not None:
        return Unknown(unknown.needs, rendered)
    return rendered


def _to_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, int, float)):
        return str(value)
    if value is None:
        raise EvalError("null cannot be part of a string")
    raise EvalError(f"a {type(value).__name__} cannot be part of a string")


def _first_unknown(values: Sequence[object]) -> Unknown | None:
    return next((v for v in values if isinstance(v, Unknown)), None)


def _eval(node: tuple[Any, ...], scope: Scope, depth: int) -> object:
    if depth > _MAX_DEPTH:
        raise EvalError("the expression is nested too deep")
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "template":
        return render_template(node[1], scope)
    if kind == "ref":
        name = node[1]
        return scope.local[name] if name in scope.local else scope.lookup(name)
    if kind == "tuple":
        return [_eval(item, scope, depth + 1) for item in node[1]]
    if kind == "object":
        result: dict[str, object] = {}
        for key_node, value_node in node[1]:
            key = _eval(key_node, scope, depth + 1)
            if isinstance(key, Unknown):
                return key
            result[_to_string(key)] = _eval(value_node, scope, depth + 1)
        return result
    if kind == "path":
        return _walk(_eval(node[1], scope, depth + 1), node[2], scope, depth)
    if kind == "cond":
        return _conditional(node, scope, depth)
    if kind == "not":
        value = _eval(node[1], scope, depth + 1)
        return value if isinstance(value, Unknown) else not _truth(value)
    if kind == "neg":
        value = _eval(node[1], scope, depth + 1)
        return value if isinstance(value, Unknown) else -_number(value)
    if kind == "op":
        return _operator(node[1], node[2], node[3], scope, depth)
    if kind == "call":
        return _call(node, scope, depth)
    if kind == "for":
        return _for(node, scope, depth)
    raise EvalError(f"cannot evaluate {kind}")


def _conditional(node: tuple[Any, ...], scope: Scope, depth: int) -> object:
    condition = _eval(node[1], scope, depth + 1)
    if not isinstance(condition, Unknown):
        return _eval(node[2] if _truth(condition) else node[3], scope, depth + 1)
    then = _eval(node[2], scope, depth + 1)
    otherwise = _eval(node[3], scope, depth + 1)
    if then == otherwise:
        return then
    return Unknown(
        condition.needs,
        branches=((f"if {node[4]} is true", then), ("if false", otherwise)),
    )


def _truth(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    raise EvalError(f"a condition must be a bool, not {type(value).__name__}")


def _number(value: object) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise EvalError("not a number")
    if isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError as exc:
            raise EvalError(f"{value!r} is not a number") from exc
    return value


def _operator(op: str, left_node: Any, right_node: Any, scope: Scope, depth: int) -> object:
    left = _eval(left_node, scope, depth + 1)
    if op in ("&&", "||") and not isinstance(left, Unknown):
        # Terraform evaluates both sides, but a known side can decide: false && x, true || x.
        if _truth(left) == (op == "||"):
            return op == "||"
        right = _eval(right_node, scope, depth + 1)
        return right if isinstance(right, Unknown) else _truth(right)
    right = _eval(right_node, scope, depth + 1)
    if op in ("&&", "||"):
        if not isinstance(right, Unknown) and _truth(right) == (op == "||"):
            return op == "||"
        return left
    unknown = _first_unknown([left, right])
    if unknown is not None:
        return unknown
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    a, b = _number(left), _number(right)
    if op == "<":
        return a < b
    if op == ">":
        return a > b
    if op == "<=":
        return a <= b
    if op == ">=":
        return a >= b
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise EvalError("division by zero")
    return a / b if op == "/" else a % b


def _attribute(value: object, name: str) -> object:
    if isinstance(value, Unknown):
        return value
    if isinstance(value, Namespace):
        return value.attr(name)
    if isinstance(value, Mapping):
        if name not in value:
            raise EvalError(f"no attribute {name!r}")
        return value[name]
    raise EvalError(f"a {type(value).__name__} has no attribute {name!r}")


def _index(value: object, key: object) -> object:
    if isinstance(value, Unknown):
        return value
    if isinstance(value, Namespace):
        if value.index is not None:
            return value.index(key)
        if value.indexable:
            return value  # every instance of a counted block has the same body
        raise EvalError("this object cannot be indexed")
    if isinstance(key, Unknown):
        return key
    if isinstance(value, list):
        number = _number(key)
        if not isinstance(number, int) or not 0 <= number < len(value):
            raise EvalError(f"index {key!r} is out of range")
        return value[number]
    if isinstance(value, Mapping):
        text = _to_string(key)
        if text not in value:
            raise EvalError(f"no key {text!r}")
        return value[text]
    raise EvalError(f"a {type(value).__name__} cannot be indexed")


def _walk(value: object, steps: Sequence[tuple[Any, ...]], scope: Scope, depth: int) -> object:
    for at, step in enumerate(steps):
        if step[0] == "splat":
            if isinstance(value, Unknown):
                return value
            items = value if isinstance(value, list) else [] if value is None else [value]
            rest = steps[at + 1 :]
            return [_walk(item, rest, scope, depth) for item in items]
        if step[0] == "attr":
            value = _attribute(value, step[1])
        else:
            value = _index(value, _eval(step[1], scope, depth + 1))
    return value


def _for(node: tuple[Any, ...], scope: Scope, depth: int) -> object:
    _, names, collection_node, key_node, value_node, condition_node = node
    collection = _eval(collection_node, scope, depth + 1)
    if isinstance(collection, Unknown):
        return collection
    if isinstance(collection, Mapping):
        pairs: list[tuple[object, object]] = list(collection.items())
    elif isinstance(collection, list):
        pairs = list(enumerate(collection))
    else:
        raise EvalError("a for expression needs a list or a map")
    as_list: list[object] = []
    as_map: dict[str, object] = {}
    for key, item in pairs:
        bound = {names[0]: key, names[1]: item} if len(names) == 2 else {names[0]: item}
        inner = scope.child(**bound)
        if condition_node is not None:
            keep = _eval(condition_node, inner, depth + 1)
            if isinstance(keep, Unknown):
                return keep
            if not _truth(keep):
                continue
        value = _eval(value_node, inner, depth + 1)
        if key_node is None:
            as_list.append(value)
        else:
            got = _eval(key_node, inner, depth + 1)
            if isinstance(got, Unknown):
                return got
            as_map[_to_string(got)] = value
    return as_list if key_node is None else as_map


def _call(node: tuple[Any, ...], scope: Scope, depth: int) -> object:
    _, name, argument_nodes, expand = node
    if name == "try":
        for argument in argument_nodes:
            try:
                return _eval(argument, scope, depth + 1)
            except EvalError:
                continue
        raise EvalError("no argument of try() could be evaluated")
    if name == "can":
        try:
            got = _eval(argument_nodes[0], scope, depth + 1)
        except EvalError:
            return False
        return got if isinstance(got, Unknown) else True
    arguments = [_eval(argument, scope, depth + 1) for argument in argument_nodes]
    if expand and arguments:
        last = arguments.pop()
        if isinstance(last, Unknown):
            return last
        arguments.extend(last if isinstance(last, list) else [last])
    function = _FUNCTIONS.get(name)
    if function is None:
        return Unknown(f"{name}(), which imdscreds does not evaluate")
    if name == "coalesce":
        return _coalesce(arguments)
    if name in ("jsonencode", "templatefile", "merge", "lookup", "concat", "compact"):
        return function(arguments, scope)
    unknown = _first_unknown(list(_flat(arguments)))
    if unknown is not None:
        return unknown
    return function(arguments, scope)


def _flat(values: Sequence[object]) -> Iterator[object]:
    for value in values:
        yield value
        if isinstance(value, list):
            yield from _flat(value)
        elif isinstance(value, Mapping):
            yield from _flat(list(value.values()))


def _coalesce(arguments: Sequence[object]) -> object:
    for value in arguments:
        if isinstance(value, Unknown):
            return value
        if value is not None and value != "":
            return value
    raise EvalError("coalesce() found no value that is not null or empty")


def placeholders(value: object) -> object:
    """Unknown values inside a structure as ``${...}`` markers (for a rendered document)."""
    if isinstance(value, Unknown):
        return value.placeholder()
    if isinstance(value, list):
        return [placeholders(item) for item in value]
    if isinstance(value, Mapping):
        return {key: placeholders(item) for key, item in value.items()}
    return value


def _jsonencode(arguments: Sequence[object], scope: Scope) -> object:
    (value,) = arguments
    if isinstance(value, Unknown):
        return value
    # An unknown part stays a ${...} marker in the text, as in a rendered policy document: a
    # reader of the policy can then say which part is unknown, and only that part.
    return json.dumps(placeholders(value), separators=(",", ":"))


def _templatefile(arguments: Sequence[object], scope: Scope) -> object:
    path, variables = arguments
    if isinstance(path, Unknown):
        return path
    if not isinstance(variables, Mapping):
        return variables if isinstance(variables, Unknown) else Unknown("templatefile() variables")
    text = scope.read_file(_to_string(path))
    inner = Scope(_no_reference, scope.read_file, {str(k): v for k, v in variables.items()})
    return render_template(text, inner)


def _no_reference(name: str) -> object:
    raise EvalError(f"{name} is not a template variable")


def _merge(arguments: Sequence[object], scope: Scope) -> object:
    merged: dict[str, object] = {}
    for value in arguments:
        if isinstance(value, Unknown):
            return value
        if value is not None:
            if not isinstance(value, Mapping):
                raise EvalError("merge() takes maps")
            merged.update(value)
    return merged


def _lookup(arguments: Sequence[object], scope: Scope) -> object:
    table, key, *default = arguments
    if isinstance(table, Unknown) or isinstance(key, Unknown):
        return table if isinstance(table, Unknown) else key
    if isinstance(table, Mapping) and _to_string(key) in table:
        return table[_to_string(key)]
    if default:
        return default[0]
    raise EvalError("lookup() found no such key")


def _concat(arguments: Sequence[object], scope: Scope) -> object:
    joined: list[object] = []
    for value in arguments:
        if isinstance(value, Unknown):
            return value
        if not isinstance(value, list):
            raise EvalError("concat() takes lists")
        joined.extend(value)
    return joined


def _compact(arguments: Sequence[object], scope: Scope) -> object:
    (values,) = arguments
    if isinstance(values, Unknown):
        return values
    if not isinstance(values, list):
        raise EvalError("compact() takes a list")
    return [v for v in values if v is not None and v != ""]


def _list(value: object) -> list[object]:
    if isinstance(value, list):
        return value
    raise EvalError(f"expected a list, not {type(value).__name__}")


def _one(arguments: Sequence[object], scope: Scope) -> object:
    items = _list(arguments[0])
    if len(items) > 1:
        raise EvalError("one() takes a list of at most one element")
    return items[0] if items else None


def _element(arguments: Sequence[object], scope: Scope) -> object:
    items = _list(arguments[0])
    if not items:
        raise EvalError("element() of an empty list")
    return items[int(_number(arguments[1])) % len(items)]


def _flatten(arguments: Sequence[object], scope: Scope) -> object:
    def walk(items: list[object]) -> Iterator[object]:
        for item in items:
            if isinstance(item, list):
                yield from walk(item)
            else:
                yield item

    return list(walk(_list(arguments[0])))


def _distinct(arguments: Sequence[object], scope: Scope) -> object:
    seen: list[object] = []
    for item in _list(arguments[0]):
        if item not in seen:
            seen.append(item)
    return seen


def _format(arguments: Sequence[object], scope: Scope) -> object:
    spec, *values = arguments
    pieces = iter(values)

    def one(match: re.Match[str]) -> str:
        if match.group() == "%%":
            return "%"
        return _to_string(next(pieces))

    try:
        return re.sub(r"%%|%[-+# 0-9.]*[sdvqtf]", one, _to_string(spec))
    except StopIteration as exc:
        raise EvalError("format() has too few values") from exc


def _jsondecode(arguments: Sequence[object], scope: Scope) -> object:
    try:
        return json.loads(_to_string(arguments[0]))
    except ValueError as exc:
        raise EvalError("jsondecode() of text that is not JSON") from exc


def _keys(arguments: Sequence[object], scope: Scope) -> object:
    table = arguments[0]
    if not isinstance(table, Mapping):
        raise EvalError("keys() takes a map")
    return sorted(table)


def _values(arguments: Sequence[object], scope: Scope) -> object:
    table = arguments[0]
    if not isinstance(table, Mapping):
        raise EvalError("values() takes a map")
    return [table[key] for key in sorted(table)]


def _length(arguments: Sequence[object], scope: Scope) -> object:
    value = arguments[0]
    if isinstance(value, (str, list, Mapping)):
        return len(value)
    raise EvalError("length() takes a string, list or map")


def _same(arguments: Sequence[object], scope: Scope) -> object:
    return arguments[0]


def _set(arguments: Sequence[object], scope: Scope) -> object:
    """A set of strings is ordered lexically, as Terraform orders it; others keep their order."""
    items = _distinct([_list(arguments[0])], scope)
    assert isinstance(items, list)
    return sorted(items) if all(isinstance(v, str) for v in items) else items


_FUNCTIONS: dict[str, Callable[[Sequence[object], Scope], object]] = {
    "jsonencode": _jsonencode,
    "jsondecode": _jsondecode,
    "templatefile": _templatefile,
    "file": lambda a, s: s.read_file(_to_string(a[0])),
    "coalesce": _same,  # handled before the table, for its unknowns
    "merge": _merge,
    "lookup": _lookup,
    "concat": _concat,
    "compact": _compact,
    "one": _one,
    "element": _element,
    "flatten": _flatten,
    "distinct": _distinct,
    "join": lambda a, s: _to_string(a[0]).join(_to_string(v) for v in _list(a[1])),
    "split": lambda a, s: _to_string(a[1]).split(_to_string(a[0])),
    "format": _format,
    "lower": lambda a, s: _to_string(a[0]).lower(),
    "upper": lambda a, s: _to_string(a[0]).upper(),
    "trimspace": lambda a, s: _to_string(a[0]).strip(),
    "replace": lambda a, s: _to_string(a[0]).replace(_to_string(a[1]), _to_string(a[2])),
    "contains": lambda a, s: a[1] in _list(a[0]),
    "keys": _keys,
    "values": _values,
    "length": _length,
    "tolist": _same,
    "tomap": _same,
    "tostring": lambda a, s: _to_string(a[0]),
    "toset": _set,
    "sort": lambda a, s: sorted(_list(a[0]), key=_to_string),
    "coalescelist": lambda a, s: next((_list(v) for v in a if _list(v)), []),
    "trimprefix": lambda a, s: _to_string(a[0]).removeprefix(_to_string(a[1])),
    "trimsuffix": lambda a, s: _to_string(a[0]).removesuffix(_to_string(a[1])),
    "startswith": lambda a, s: _to_string(a[0]).startswith(_to_string(a[1])),
    "endswith": lambda a, s: _to_string(a[0]).endswith(_to_string(a[1])),
    "chomp": lambda a, s: _to_string(a[0]).rstrip("\r\n"),
    "alltrue": lambda a, s: all(_truth(v) for v in _list(a[0])),
    "anytrue": lambda a, s: any(_truth(v) for v in _list(a[0])),
    "reverse": lambda a, s: list(reversed(_list(a[0]))),
    "setunion": lambda a, s: _set([[item for value in a for item in _list(value)]], s),
    "zipmap": lambda a, s: dict(zip(map(_to_string, _list(a[0])), _list(a[1]), strict=True)),
    "tobool": lambda a, s: _truth(a[0]),
    "tonumber": lambda a, s: _number(a[0]),
    "slice": lambda a, s: _list(a[0])[int(_number(a[1])) : int(_number(a[2]))],
}
