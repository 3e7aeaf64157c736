"""bench.oracle_speed: the ratio each round gives, the median of which is the headline of several rounds."""
from bench.oracle_speed import combine_passes, format_table, round_ratios, snowmelt_sides


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


def test_passes_are_measured_as_one_run_their_events_over_their_cpu_not_the_best_pass():
    fast = {**side(None), "records": 100, "cpu_s_total": 2.0, "cpu_s_output": 1.0, "output_seconds": 1.0,
            "steady_rate": 120.0, "peak_rss_mb": 90.0}
    slow = {**side(None), "records": 100, "cpu_s_total": 4.0, "cpu_s_output": 3.0, "output_seconds": 4.0,
            "steady_rate": 30.0, "peak_rss_mb": 110.0}
    empty = {**side(None), "records": 0, "cpu_s_output": None, "output_seconds": None, "steady_rate": None,
             "peak_rss_mb": None}
    one = combine_passes([fast, slow, empty])
    assert one["records"] == 200
    assert one["cpu_s_output"] == 4.0 and one["cpu_s_total"] == 6.0 + side(None)["cpu_s_total"]
    assert one["events_per_cpu_s"] == 50.0  # 200 events in 4 CPU-seconds: not the fast pass's 100, nor 75
    assert one["wall_rate"] == 40.0
    assert one["steady_rate"] == 75.0  # the median of the passes that have one
    assert one["peak_rss_mb"] == 110.0
    assert one["passes"] == [fast, slow, empty]
    assert combine_passes([empty])["events_per_cpu_s"] is None  # no CPU measured: no rate, not a division error


def test_each_interpreter_of_snowmelt_gets_a_side_its_ratios_to_snowplow_and_to_the_first():
    assert snowmelt_sides(["/a/python", "/b/python"]) == [("sm", "/a/python"), ("sm-2", "/b/python")]
    results = {"none": {"sp": side(1000.0), "sm": side(12000.0), "sm-2": side(13800.0)},
               "none #2": {"sp": side(1100.0), "sm": side(11000.0), "sm-2": side(12100.0)}}
    assert round_ratios(results, "none") == [12.0, 10.0]
    assert round_ratios(results, "none", "sm-2") == [13.8, 11.0]
    assert round_ratios(results, "none", "sm-2", over="sm") == [1.15, 1.1]
    table = format_table(results)
    assert "| none | snowmelt enrich (sm-2) | 102,001 |" in table
    assert "| none | snowmelt (sm-2) / Snowplow | | | 13.8x |" in table
    assert "| none | snowmelt / Snowplow | | | 12.0x |" in table
