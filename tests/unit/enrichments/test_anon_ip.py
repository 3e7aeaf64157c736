import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.enriched import EnrichedEvent
from processor.enrichments import ConfigError

from .conftest import config_doc, run


@pytest.mark.parametrize("octets,expected", [
    (1, "255.255.255.x"), (2, "255.255.x.x"), (3, "255.x.x.x"), (4, "x.x.x.x"),
])
def test_ipv4_octets(load, octets, expected):
    enrichment = load(config_doc("anon_ip", "1-0-0", {"anonOctets": octets}))
    event, _ = run(enrichment, EnrichedEvent(user_ipaddress="255.255.255.255"))
    assert event.user_ipaddress == expected


def test_ipv6_segments_count_after_expanding_double_colon(load):
    enrichment = load(config_doc("anon_ip", "1-0-1", {"anonOctets": 1, "anonSegments": 3}))
    event, _ = run(enrichment, EnrichedEvent(user_ipaddress="2001:db8::ff00:42:8329"))
    assert event.user_ipaddress == "2001:db8:0:0:0:x:x:x"


def test_config_1_0_0_uses_octets_for_ipv6(load):
    enrichment = load(config_doc("anon_ip", "1-0-0", {"anonOctets": 2}))
    event, _ = run(enrichment, EnrichedEvent(user_ipaddress="2001:db8:85a3:0:0:8a2e:370:7334"))
    assert event.user_ipaddress == "2001:db8:85a3:0:0:8a2e:x:x"


@pytest.mark.parametrize("value", [None, "not-an-ip", "hello;goodbye"])
def test_values_without_a_dot_or_a_colon_are_left_alone(load, value):
    enrichment = load(config_doc("anon_ip", "1-0-1", {"anonOctets": 2, "anonSegments": 2}))
    event, _ = run(enrichment, EnrichedEvent(user_ipaddress=value))
    assert event.user_ipaddress == value


@pytest.mark.parametrize("value,expected", [
    ("", ""),  # masked as IPv4: one part, kept (with anonOctets 4 it is "x")
    ("fe80::zz", "fe80::zz:x:x:x:x:x"),  # not an address: split on ":" as written, padded to eight
    ("1.2.3.4.5", "1.2.x.x.x"),  # the first 4 - anonOctets parts are kept
])
def test_values_that_are_not_addresses_are_masked_as_written(load, value, expected):
    enrichment = load(config_doc("anon_ip", "1-0-1", {"anonOctets": 2, "anonSegments": 2}))
    event, _ = run(enrichment, EnrichedEvent(user_ipaddress=value))
    assert event.user_ipaddress == expected


@pytest.mark.parametrize("parameters,field", [
    ({"anonOctets": 5}, "anonOctets"),
    ({"anonOctets": 0}, "anonOctets"),
    ({"anonOctets": 2, "anonSegments": 9}, "anonSegments"),
    ({}, "anonOctets"),
    ({"anonOctets": 2, "octets": 1}, "octets"),
])
def test_invalid_config_is_refused_naming_the_field(load, parameters, field):
    with pytest.raises(ConfigError, match=field):
        load(config_doc("anon_ip", "1-0-1", parameters))


def test_disabled_config_is_skipped(load):
    assert load(config_doc("anon_ip", "1-0-1", {"anonOctets": 2}, enabled=False)) is None


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.tuples(*[st.integers(0, 300)] * 4).map(lambda parts: ".".join(map(str, parts))),
    st.lists(st.sampled_from(["0", "00", "01", "1", "255", "256", "", "x", "\u0661"]), min_size=1, max_size=6)
    .map(".".join)),
    st.integers(1, 4))
def test_a_dotted_value_is_masked_as_the_general_rules_mask_it(value, octets):
    """The quick way with a plain dotted quad gives what reading the value as an address gives, for every value
    and setting (leading zeros, octets over 255, empty parts, other scripts' digits go the general way)."""
    from processor.enrichments.anon_ip import _anonymise_read, anonymise_ip

    assert anonymise_ip(value, octets, octets) == _anonymise_read(value, octets, octets)


def test_kept_answers_are_the_same_and_a_value_longer_than_any_address_is_not_kept():
    from processor.enrichments.anon_ip import CACHED_CHARS, AnonIp

    enrichment = AnonIp(octets=2, segments=3)
    for _ in range(2):  # the second time from what was kept
        for value, expected in [("10.1.2.3", "10.1.x.x"), ("2001:db8::1", "2001:db8:0:0:0:x:x:x"),
                                ("::FFFF:1.2.3.4", "::FFFF:1.2.x.x"), ("777.2.23", "777.2.x")]:
            event = EnrichedEvent(user_ipaddress=value)
            enrichment.enrich(event, None)
            assert event.user_ipaddress == expected
    assert enrichment._kept.cache_info().currsize == 4
    long_value = "1." * CACHED_CHARS + "1"  # as a hostile ip parameter may be: masked, never kept
    event = EnrichedEvent(user_ipaddress=long_value)
    enrichment.enrich(event, None)
    assert event.user_ipaddress == "1.1" + ".x" * (CACHED_CHARS - 1)  # 65 parts, the first two kept
    assert enrichment._kept.cache_info().currsize == 4
