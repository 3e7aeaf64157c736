"""Hypothesis strategies for JSON text written as trackers may write it: numbers in every notation JSON allows
(exponents, trailing zeros, long fractions, integers beyond 64 bits, tiny fractions) among strings holding
digits, quotes and backslashes.  Shared by the number-text scan's tests (``ext.has_numbers_to_keep``) and the
parser's (``processor.jsontext``)."""
from __future__ import annotations

import json

from hypothesis import strategies as st

#: a JSON number: sign, whole part, fraction (some with leading zeros), exponent
NUMBERS = st.builds(
    lambda sign, whole, fraction, exponent: sign + whole + fraction + exponent,
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,24}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,20}", fullmatch=True),
              st.from_regex(r"\.0{1,7}[1-9]", fullmatch=True)),
    st.one_of(st.just(""), st.just(""), st.from_regex(r"[eE][+-]?[0-9]{1,3}", fullmatch=True)),
)
#: a JSON string whose characters look like numbers, quotes and escapes
STRINGS = st.text(alphabet='0123456789.eE-"\\a\u00e9\u20ac\U0001f600', max_size=12).map(
    lambda s: json.dumps(s, ensure_ascii=False))
#: a flat array of both
ARRAYS = st.lists(st.one_of(NUMBERS, STRINGS), max_size=8).map(lambda items: "[" + ",".join(items) + "]")


def documents(numbers=NUMBERS):
    """Nested arrays and objects (keys distinct) of ``numbers`` and strings."""
    return st.recursive(
        st.one_of(numbers, STRINGS),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
            st.lists(st.tuples(STRINGS, inner), max_size=4, unique_by=lambda pair: json.loads(pair[0])).map(
                lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}")),
        max_leaves=12)
