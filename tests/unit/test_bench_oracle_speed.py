"""bench.oracle_speed: the ratio each round gives, the median of which is the headline of several rounds."""
from bench.oracle_speed import format_table, round_ratios


def side(events_per_cpu_s):
    return {"records": 102001, "cpu_s_total": 9.0, "cpu_s_output": 8.0, "events_per_cpu_s": events_per_cpu_s,
            "wall_rate": 1000.0, "steady_rate": 1100.0, "output_seconds": 9.0, "peak_rss_mb": 100.0}


def test_each_round_of_a_setting_gives_its_own_ratio_and_other_settings_are_left_out():
    results = {"none": {"sp": side(2000.0), "sm": side(26000.0)}, "std": {"sp": side(1800.0), "sm": side(18000.0)},
               "none #2": {"sp": side(1900.0), "sm": side(23000.0)}, "std #2": {"sp": side(1700.0), "sm": side(None)},
               "nonesuch": {"sp": side(1.0), "sm": side(100.0)}}
    assert round_ratios(results, "none") == [13.0, 12.11]
    assert round_ratios(results, "std") == [10.0]  # a round without a rate (no output) gives none
    table = format_table(results)
    assert "| none #2 | snowmelt / Snowplow | | | 12.11x |" in table
    assert "| std #2 | snowmelt enrich | 102,001 | 9.0 / 8.0 | - |" in table  # no rate: a dash, not a crash
