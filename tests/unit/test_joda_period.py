"""derived_tstamp's calendar arithmetic against Joda-Time's (``collector.minus(new Period(created, sent))``).

The expected values were printed by Joda-Time 2.10.10, the version in the enrich-kafka 3.9.0 build, from the
same epoch milliseconds, formatted as ``yyyy-MM-dd HH:mm:ss.SSS`` in UTC.
"""
import random

import pytest

from ext.javanum import civil_date, days_from_civil, joda_timestamp
from processor.enriched import EnrichedEvent
from processor.joda_period import SHORTEST_MONTH, minus_period_between
from processor.stage import derived_tstamp


@pytest.mark.parametrize("collected, created, sent, joda", [
    # one month and a day from 31 January to 1 March: a calendar month back from 28 November, then a day
    (1764288000123, 1738281600000, 1740787200000, "2025-10-27 00:00:00.123"),
    (1743422400000, 1735689600000, 1738368000000, "2025-02-28 12:00:00.000"),  # 31 March less a month
    (1711886400000, 1675159200000, 1677574800000, "2024-03-03 13:00:00.000"),  # under a month: fixed lengths
    (1740787200000, 1709164800000, 1740700800000, "2024-03-01 00:00:00.000"),  # from 29 February, a year on
    (1709193600000, 1560556800000, 1686787200000, "2020-02-29 08:00:00.000"),  # four years back from 29 Feb
    (1764288400129, 1764288000000, 99999999999999, "-1088-12-08 14:20:00.130"),  # a clock 3,113 years ahead
    (1764288000000, 1761955200000, 1764374399999, "2025-10-31 00:00:00.001"),
])
def test_the_derived_time_is_the_collectors_less_jodas_period(collected, created, sent, joda):
    assert joda_timestamp(minus_period_between(collected, created, sent)) == joda
    event = EnrichedEvent(collector_tstamp=collected, dvce_created_tstamp=created, dvce_sent_tstamp=sent)
    assert joda_timestamp(derived_tstamp(event)) == joda


def test_under_the_shortest_month_the_period_is_its_milliseconds():
    rng = random.Random(4)
    for _ in range(2000):
        created = rng.randint(-62_000_000_000_000, 250_000_000_000_000)
        sent = created + rng.randrange(1, SHORTEST_MONTH)
        collected = rng.randint(0, 250_000_000_000_000)
        assert minus_period_between(collected, created, sent) == collected - (sent - created)


def test_without_a_later_sending_time_the_derived_time_is_the_collectors():
    assert derived_tstamp(EnrichedEvent(collector_tstamp=5, dvce_created_tstamp=9, dvce_sent_tstamp=9)) == 5
    assert derived_tstamp(EnrichedEvent(collector_tstamp=5, dvce_created_tstamp=9, dvce_sent_tstamp=3)) == 5
    assert derived_tstamp(EnrichedEvent(collector_tstamp=5, dvce_created_tstamp=1)) == 5
    assert derived_tstamp(EnrichedEvent(collector_tstamp=5, true_tstamp=7, dvce_created_tstamp=1,
                                        dvce_sent_tstamp=99_999_999_999)) == 7


def test_day_counts_and_dates_are_each_others_inverse():
    for days in list(range(-800_000, 3_000_000, 997)) + [-719_528, -719_529, 0, 59, 60]:
        assert days_from_civil(*civil_date(days)) == days
    assert civil_date(-719_528) == (0, 1, 1)
