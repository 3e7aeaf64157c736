"""Campaign attribution (``campaign_attribution``): the ``mkt_*`` fields from ``page_url``'s query.

What Snowplow does
    Reads the query string of the event's ``page_url``; each of
    ``mkt_medium``, ``mkt_source``, ``mkt_term``, ``mkt_content`` and
    ``mkt_campaign`` takes the value of the first parameter of its configured
    list (``fields.mktMedium`` ..., in the config's order) present in the
    query (an empty list leaves the field empty).  Click ids: ``gclid`` ->
    network ``Google``, ``msclkid`` -> ``Microsoft``, ``dclid`` ->
    ``DoubleClick`` set ``mkt_clickid`` (the parameter's value) and
    ``mkt_network``; config ``1-0-1``'s ``mktClickId`` adds parameters or
    overrides those networks (``{"wbraid": "Google", "msclkid": "Override"}``).
    The ``mapping`` field (``static``/``script``) is accepted and has no
    effect.

What we do
    The same.  The query is parsed once (``ext.parse_query_string``; a
    malformed escape falls back to urllib's lenient parser, as Snowplow's URI
    parsing is lenient); a parameter repeated in the query counts with its
    last value.  When several click-id parameters are present the first in
    the mapping's order wins (gclid, msclkid, dclid, then the configured
    ones in config order).  A parameter present with an empty value counts
    as present and leaves the field empty.

Bound
    A query longer than ``querystrings.LONG_QUERY`` characters is not parsed
    whole: only the configured parameters are found in it, by their names as
    written (see :mod:`processor.enrichments.querystrings`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from processor.enrichments.base import Enrichment, EventContext, LoadContext
from processor.enrichments.querystrings import named_values

# Snowplow's built-in click-id parameters and their networks
DEFAULT_CLICK_IDS = {"gclid": "Google", "msclkid": "Microsoft", "dclid": "DoubleClick"}
# config key -> atomic field
FIELDS = (("mktMedium", "mkt_medium"), ("mktSource", "mkt_source"), ("mktTerm", "mkt_term"),
          ("mktContent", "mkt_content"), ("mktCampaign", "mkt_campaign"))


@dataclass(frozen=True)
class CampaignAttribution(Enrichment):
    name = "campaign_attribution"
    criteria = ("1-0-*",)

    # (atomic field, parameter names in priority order), only fields with names
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    # (parameter, network) in priority order
    click_ids: tuple[tuple[str, str], ...]

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "CampaignAttribution":
        config = parameters["fields"]
        fields = tuple((atomic, tuple(config[key])) for key, atomic in FIELDS if config.get(key))
        click_ids = dict(DEFAULT_CLICK_IDS)
        click_ids.update(config.get("mktClickId") or {})
        return cls(fields=fields, click_ids=tuple(click_ids.items()))

    @functools.cached_property
    def names(self) -> frozenset[str]:
        """Every parameter the enrichment reads (found once: it is asked for every event)."""
        return frozenset(name for _atomic, names in self.fields for name in names) | \
            frozenset(name for name, _network in self.click_ids)

    def enrich(self, event: Any, ctx: EventContext) -> None:
        query = event.page_urlquery
        if not query:
            return
        params = named_values(query, self.names)
        if not params:  # none of the names in the query: nothing to set
            return
        for atomic, names in self.fields:
            for name in names:
                value = params.get(name)
                if value is not None:
                    if value:
                        setattr(event, atomic, value)
                    break
        for name, network in self.click_ids:
            value = params.get(name)
            if value is not None:
                event.mkt_clickid = value or None
                event.mkt_network = network
                break
