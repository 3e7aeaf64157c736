"""Reading a few parameters of a URL's query, with a bound on what a long query costs.

Enrichments read ``page_urlquery`` (campaign attribution, the ``_sp`` link
decoration) and ``refr_urlquery`` (a search engine's term).  Snowplow parses
the whole query; so do we up to :data:`LONG_QUERY` characters.  A longer query
(a page URL of 60,000 parameters fits in a 1 MB POST) is not parsed whole: the
wanted parameters are found by their raw names in one compiled pass
(:func:`ext.find_parameters`) and only their pieces are decoded, so it costs
about half a millisecond a megabyte instead of 40.  In such a query a name
written percent-encoded (``utm%5Fsource``) is not recognised.

The page query is read twice per event (the ``_sp`` decoration by the stage,
then campaign attribution): the pass over a long query looks for every name
asked of long queries so far (names come from code and configs, not from
input) and its result is kept for the next reader of the same query.
"""
from __future__ import annotations

from urllib.parse import parse_qsl

import ext

#: Queries longer than this are searched for the wanted parameters instead of parsed whole.
LONG_QUERY = 8192


def query_pairs(query: str) -> list[tuple[str, str]]:
    """``(name, value)`` pairs in order; a malformed escape is read leniently, as Snowplow's URI parser does."""
    try:
        return ext.parse_query_string(query)
    except ValueError:
        return parse_qsl(query, keep_blank_values=True, errors="replace")


def query_dict(query: str) -> dict[str, str]:
    """A query string as name -> value (the last of repeated names)."""
    return dict(query_pairs(query))


def named_values(query: str, names, last: bool = True) -> dict[str, str]:
    """The decoded value of each of ``names`` present in ``query`` (its last occurrence, or with ``last=False``
    its first), in the order of those occurrences in the query.  A query of at most :data:`LONG_QUERY`
    characters is parsed whole; in a longer one names are matched as written (see the module docstring)."""
    if len(query) <= LONG_QUERY:
        wanted = names if isinstance(names, (set, frozenset)) else set(names)
        found: dict[str, str] = {}
        for name, value in query_pairs(query):
            if name in wanted and (last or name not in found):
                if last:
                    found.pop(name, None)  # keep the order of the last occurrences
                found[name] = value
        return found
    names = frozenset(names)
    return {name: _value(piece) for name, piece in _pieces(query, names, last).items() if name in names}


#: per ``last``: the names asked of long queries so far (at most _MAX_NAMES), and the last pass
_names: dict[bool, dict[str, None]] = {True: {}, False: {}}
_passes: dict[bool, tuple] = {}
_MAX_NAMES = 256


def _pieces(query: str, names: frozenset, last: bool) -> dict[str, str]:
    """The pieces of ``names`` and of the other names asked so far, from the last pass when it was over
    ``query`` and looked for ``names``."""
    known = _names[last]
    done = _passes.get(last)
    if done is not None and done[0] is query and names <= done[1]:
        return done[2]
    if len(known) + len(names) > _MAX_NAMES:
        known.clear()
    known.update(dict.fromkeys(names))
    wanted = tuple(dict.fromkeys((*names, *known)))
    pieces = ext.find_parameters(query, wanted, last)
    _passes[last] = (query, frozenset(wanted), pieces)
    return pieces


def _value(piece: str) -> str:
    pairs = query_pairs(piece)
    return pairs[0][1] if pairs else ""
