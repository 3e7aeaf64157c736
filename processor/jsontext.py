"""JSON text in and out on the per-event path: orjson, with the standard library behind it.

``loads`` and ``dumps`` are what the stage uses for tracker JSON (``payload_data``
bodies, contexts, self-describing events) and for the JSON columns of the
enriched TSV.  orjson parses and prints these small documents four to eight
times faster than the ``json`` module.  Where orjson refuses a document the
``json`` module accepts -- UTF-16/32 bytes -- the ``json`` module takes over,
so what parses is unchanged; its error message is the one reported for text
that is not JSON.  ``NaN`` and ``Infinity`` are not JSON and are refused by both.

Numbers keep the text the tracker wrote, as Snowplow's enrich 3.9.0 does (circe
keeps a number's text and prints it back): ``1.0e0``, ``1.8E+2``, ``0.10`` and
Python's ``1e-05`` come out as they went in, an integer beyond 64 bits exact.
orjson reads numbers into floats and ints and prints them in their shortest
form, which is the tracker's text for every number of the common forms; a text
holding another (``ext.has_numbers_to_keep``, one compiled pass that jumps over
strings) is read by the ``json`` module, which keeps every integer exact and
reads each float whose shortest form may differ from its text as a
:class:`JsonFloat`: a float that remembers its text.  ``dumps`` prints that text.
Such a number costs about a microsecond to read (a megabyte of them, 0.2 s;
orjson reads a megabyte of numbers in 5 ms).  The integer ``-0`` is a
:class:`JsonFloat` too: 3.9.0 keeps its text, and its validator takes it for a
number, not an integer (``$.n: number found, integer expected``).
Validators that take only plain floats (``jsonschema_rs``) are given
:func:`plain` of such a document.

``dumps`` is compact (no spaces), keeps non-ASCII as UTF-8 and escapes control
characters.  Floats are printed shortest-round-trip (``1e-7``, ``1e+21``).
"""
from __future__ import annotations

import json
import re
from typing import Any

import orjson

import ext

__all__ = ["JsonFloat", "loads", "loads_shortest", "first_loads", "dumps", "number_text", "holds_number_text", "plain"]

#: the parser :func:`loads` tries first: its document for a text in which ``ext.has_numbers_to_keep`` finds no
#: number is :func:`loads`' (the compiled ``ext.map_params`` parses ``ext.PARAM_JSON`` values with it)
first_loads = orjson.loads
_orjson_dumps = orjson.dumps
_OrjsonDecodeError = orjson.JSONDecodeError
_Fragment = orjson.Fragment
_has_numbers_to_keep = ext.has_numbers_to_keep


class JsonFloat(float):
    """A number read from JSON text whose shortest form may not be that text (``1.0e0``, ``0.10``, ``1e400``):
    the float, and ``text`` as written, which :func:`dumps` prints."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> "JsonFloat":
        number = super().__new__(cls, text)
        number.text = text
        return number


def _float(text: str) -> float:
    # a float, or a JsonFloat when the scan says its text may not be its shortest form
    return JsonFloat(text) if _has_numbers_to_keep(text) else float(text)


def _int(text: str) -> int | float:
    # the integer -0 as 3.9.0 reads it (circe keeps the text; to its validator it is a number)
    return JsonFloat(text) if text == "-0" else int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: how the json module reads what orjson does not (numbers whose text is kept, constants refused)
_HOOKS = {"parse_constant": _refuse_constant, "parse_float": _float, "parse_int": _int}
_std_loads = json.JSONDecoder(**_HOOKS).decode
_std_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def loads(text: str | bytes) -> Any:
    """The parsed document; ``ValueError`` (``json.JSONDecodeError``) when it is not JSON."""
    try:
        doc = first_loads(text)
    except _OrjsonDecodeError:
        return _std(text)
    return _std(text) if _has_numbers_to_keep(text) else doc


def loads_shortest(text: str | bytes) -> Any:
    """:func:`loads` without keeping number text: numbers are floats and ints (an integer beyond 64 bits may
    be read as a float).  For a document only its strings are taken from (a ``payload_data`` body whose
    events are objects of strings): the text is not read a second time for its numbers."""
    try:
        return first_loads(text)
    except _OrjsonDecodeError:
        return _std(text)


def _std(text: str | bytes) -> Any:
    if isinstance(text, (bytes, bytearray)):
        # detects UTF-16/32 as json does
        return json.loads(text, **_HOOKS)
    return _std_loads(text)


def number_text(value: Any) -> Any:
    """orjson's ``default``: a :class:`JsonFloat` as its text (``orjson.dumps(doc, default=number_text)``)."""
    if type(value) is JsonFloat:
        return _Fragment(value.text)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(doc: Any) -> str:
    """Compact JSON text; ``TypeError``/``ValueError`` for what JSON cannot hold."""
    try:
        return _orjson_dumps(doc, default=number_text).decode("utf-8")
    except TypeError:  # integers beyond 64 bits, strings with lone surrogates, what orjson does not know
        return "".join(_pieces(doc))


def _pieces(doc: Any):
    # the text of what orjson refuses: an integer beyond 64 bits as its digits, a string orjson refuses (lone
    # surrogates) by the json module, a JsonFloat as its text, containers piece by piece
    kind = type(doc)
    if kind is dict:
        yield "{"
        for k, (key, value) in enumerate(doc.items()):
            if k:
                yield ","
            if isinstance(key, str):
                yield from _pieces(key)
            else:  # a number, bool or None as the json module writes it as a key (a TypeError for others)
                yield _std_dumps({key: None})[1:-6]
            yield ":"
            yield from _pieces(value)
        yield "}"
    elif kind is list or kind is tuple:
        yield "["
        for k, value in enumerate(doc):
            if k:
                yield ","
            yield from _pieces(value)
        yield "]"
    elif kind is JsonFloat:
        yield doc.text
    elif kind is int:
        yield str(doc)
    else:
        try:
            yield _orjson_dumps(doc).decode("utf-8")
        except TypeError:
            yield _std_dumps(doc)


def holds_number_text(doc: Any) -> bool:
    """Whether ``doc`` holds a :class:`JsonFloat`."""
    kind = type(doc)
    if kind is JsonFloat:
        return True
    if kind is dict:
        return any(holds_number_text(value) for value in doc.values())
    if kind is list:
        return any(holds_number_text(value) for value in doc)
    return False


def plain(doc: Any) -> Any:
    """``doc`` with each :class:`JsonFloat` a float (containers copied), for what takes only plain floats."""
    kind = type(doc)
    if kind is JsonFloat:
        return float(doc)
    if kind is dict:
        return {key: plain(value) for key, value in doc.items()}
    if kind is list:
        return [plain(value) for value in doc]
    return doc


# ---------------------------------------------------------------- circe's parse-error messages

class _Exhausted(Exception):
    pass


class _Refused(Exception):
    pass


_ARRBEG, _OBJBEG, _DATA, _KEY, _SEP, _ARREND, _OBJEND = range(7)
_DIGITS = frozenset("0123456789")


_STRING_STOP = re.compile(r'["\\\x00-\x1f]')


class _CirceErrorFinder:
    """Walks a text as circe 0.14's parser (jawn's string parser) reads JSON, to say where and why it stops.

    Its messages are facts of that parser, observed on enrich 3.9.0's own classpath:
    ``expected " got 'not js...' (line 1, column 2)``; ``exhausted input`` when the text ends early.
    Positions and the quoted text count UTF-16 units, as Java's strings do.
    """

    def __init__(self, text: str):
        if text.isascii() or max(text) <= "\uffff":  # one UTF-16 unit a character: the text is its own units
            self.units = text
        else:
            data = text.encode("utf-16-le", "surrogatepass")
            self.units = [chr(data[k] | data[k + 1] << 8) for k in range(0, len(data), 2)]
        self.n = len(self.units)
        self.line = 0
        self.line_start = 0

    def at(self, i: int) -> str:
        if i >= self.n:
            raise _Exhausted
        return self.units[i]

    def newline(self, i: int) -> None:
        self.line += 1
        self.line_start = i + 1

    def die(self, i: int, message: str, chars: int = 6):
        if i >= self.n:
            got = "eof"
        else:
            end = min(i + chars, self.n)
            raw = "".join(self.units[i:end]).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
            got = f"'{raw}'" if end >= self.n else f"'{raw}...'"
        raise _Refused(f"{message} got {got} (line {self.line + 1}, column {i - self.line_start + 1})")

    def number(self, i: int, top: bool) -> int:
        # at the top level a number may end the text; inside a container the text must go on
        at = self.at
        j, c = i, at(i)
        if c == "-":
            j += 1
            c = at(j)
        if c == "0":
            j += 1
            if top and j >= self.n:
                return j
            c = at(j)
        elif "1" <= c <= "9":
            while True:
                j += 1
                if top and j >= self.n:
                    return j
                c = at(j)
                if c not in _DIGITS:
                    break
        else:
            self.die(i, "expected digit")
        for mark in (".", "eE"):
            if c in mark:
                j += 1
                c = at(j)
                if mark != "." and c in "+-":
                    j += 1
                    c = at(j)
                if c not in _DIGITS:
                    self.die(i, "expected digit")
                while True:
                    j += 1
                    if top and j >= self.n:
                        return j
                    c = at(j)
                    if c not in _DIGITS:
                        break
        return j

    def string(self, i: int) -> int:
        at = self.at
        j = i + 1
        c = at(j)
        while c != '"':
            if c < " ":
                self.die(j, f"control char ({ord(c)}) in string", 1)
            if c == "\\":
                escape = at(j + 1)
                if escape in 'bfnrt"/\\':
                    j += 2
                elif escape == "u":
                    if j + 6 > self.n:
                        raise _Exhausted
                    for h in self.units[j + 2:j + 6]:
                        if ord(h) >= 128:
                            raise _Exhausted  # jawn's hex table has 128 entries: an index out of bounds
                        if h not in "0123456789abcdefABCDEF":
                            self.die(j + 2, "expected valid unicode escape")
                    j += 6
                else:
                    self.die(j, f"illegal escape sequence (\\{escape})", 1)
            elif isinstance(self.units, str):  # to the next quote, backslash or control character, in C
                found = _STRING_STOP.search(self.units, j + 1)
                j = found.start() if found is not None else self.n
            else:
                j += 1
            c = at(j)
        return j + 1

    def constant(self, i: int, word: str) -> int:
        for k in range(1, len(word)):
            if self.at(i + k) != word[k]:
                self.die(i, f"expected {word}")
        return i + len(word)

    def value(self, i: int, top: bool) -> int:
        """A number, string or constant at i (its end), or None for a container."""
        c = self.units[i]
        if c == "-" or c in _DIGITS:
            return self.number(i, top)
        if c == '"':
            return self.string(i)
        for word in ("true", "false", "null"):
            if c == word[0]:
                return self.constant(i, word)
        return -1

    def document(self) -> None:
        at, i = self.at, 0
        while True:
            c = at(i)
            if c == "\n":
                self.newline(i)
            elif c not in " \t\r":
                break
            i += 1
        if c in "[{":
            i = self.containers(_ARRBEG if c == "[" else _OBJBEG, i + 1, [c == "{"])
        else:
            end = self.value(i, True)
            if end < 0:
                self.die(i, "expected json value")
            i = end
        while i < self.n:
            c = self.units[i]
            if c == "\n":
                self.newline(i)
            elif c not in " \t\r":
                self.die(i, "expected whitespace or eof")
            i += 1

    def containers(self, state: int, i: int, stack: list) -> int:
        at = self.at
        while True:
            c = at(i)
            if c == "\n":
                self.newline(i)
                i += 1
            elif c in " \t\r":
                i += 1
            elif state == _DATA:
                if c in "[{":
                    stack.append(c == "{")
                    state = _ARRBEG if c == "[" else _OBJBEG
                    i += 1
                else:
                    end = self.value(i, False)
                    if end < 0:
                        self.die(i, "expected json value")
                    state, i = (_OBJEND if stack[-1] else _ARREND), end
            elif (c == "]" and state in (_ARREND, _ARRBEG)) or (c == "}" and state in (_OBJEND, _OBJBEG)):
                stack.pop()
                if not stack:
                    return i + 1
                state, i = (_OBJEND if stack[-1] else _ARREND), i + 1
            elif state == _KEY:
                if c != '"':
                    self.die(i, 'expected "')
                state, i = _SEP, self.string(i)
            elif state == _SEP:
                if c != ":":
                    self.die(i, "expected :")
                state, i = _DATA, i + 1
            elif state == _ARREND:
                if c != ",":
                    self.die(i, "expected ] or ,")
                state, i = _DATA, i + 1
            elif state == _OBJEND:
                if c != ",":
                    self.die(i, "expected } or ,")
                state, i = _KEY, i + 1
            else:
                state = _DATA if state == _ARRBEG else _KEY


def circe_parse_error(text: str) -> str | None:
    """What circe 0.14 (Snowplow enrich 3.9.0's JSON parser) says of ``text`` when it is not JSON
    (``exhausted input``, ``expected : got '1}' (line 1, column 6)``, ...); None when it finds no error."""
    try:
        _CirceErrorFinder(text).document()
    except _Exhausted:
        return "exhausted input"
    except _Refused as exc:
        return str(exc)
    return None
