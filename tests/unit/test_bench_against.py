"""bench.against: the metrics it reads from each preset's real output format, and its verdicts."""
from bench.against import PRESETS, compare, format_rows, read_metrics


def test_each_preset_reads_its_metrics_from_the_bench_output_format():
    stage = ("2000 raw records carrying 11000 events (...), best of 3\nenrichments: none\n"
             "implementation      events/s    good   bad\ncompiled              41,004   11000     0\n"
             "python                 9,876   11000     0\n")
    assert read_metrics(PRESETS["stage"][0], stage) == {"stage events/s": 41004.0}
    codecs = ("implementation         query string ops/s ...\n"
              "compiled                   224,790           1,550,158             144,148  True\n"
              "python                      22,479             155,015              14,414  True\n")
    assert read_metrics(PRESETS["codecs"][0], codecs) == {
        "query string ops/s": 224790.0, "base64 ops/s": 1550158.0, "query string+base64 ops/s": 144148.0}
    hostile = ("long_referer_host             1 events     0.009 s    8.7307 ms/event (again 2.9322)  bad rows "
               "0.10 MB  peak RSS +6 MB\n"
               "many_query_parameters         1 events     0.012 s   11.7932 ms/event (again 6.2563)  ...\n")
    found = read_metrics(PRESETS["hostile"][0], hostile)
    assert found == {"long_referer_host ms/event": 2.9322, "many_query_parameters ms/event": 6.2563}
    worker = ("raw records 7273 carrying 40001 events, enriched distinct 40001 (all present: True), ...\n"
              "worker (at_least_once): 34,992 events/s raw->enriched (batch_size 500), 41,127 events per CPU-second\n"
              "worker (at_least_once) CPU-seconds by thread, first to last enriched record: main 0.83, python 0.11\n"
              "plain confluent-kafka consume-produce loop, no processing: 61,000 records/s (335,500 events/s); "
              "worker / loop 0.10\n"
              "stage alone, no Kafka: 47,000 events/s, 47,800 events per CPU-second; worker / stage 0.74 by the "
              "wall, 0.86 per CPU-second\n")
    assert read_metrics(PRESETS["worker"][1], worker) == {
        "worker events/s, corpus": 34992.0, "worker events per CPU-second, corpus": 41127.0,
        "worker / stage, corpus": 0.74, "worker / stage per CPU-second, corpus": 0.86}


def test_a_lower_is_better_metric_that_fell_is_better(monkeypatch, tmp_path):
    import bench.against as against

    outputs = {("ref", "fast ms"): [10.0, 12.0], ("this", "fast ms"): [5.0, 6.0],
               ("ref", "rate"): [100.0, 100.0], ("this", "rate"): [80.0, 80.0]}

    def fake_run(bench, tree, timeout, python):
        side = "ref" if tree == tmp_path else "this"
        return {name: outputs[(side, name)].pop() for name in bench.metrics}

    monkeypatch.setattr(against, "run", fake_run)
    bench = against.Bench("fake", ["x"], {"fast ms": "", "rate": ""}, lower_is_better={"fast ms"})
    rows = {r["metric"]: r for r in compare([bench], tmp_path, rounds=2, timeout=1, progress=lambda *_: None)}
    assert rows["fast ms"]["ratio"] == 0.5 and rows["fast ms"]["better_by"] == 2.0
    assert rows["rate"]["better_by"] == 0.8
    text = format_rows(list(rows.values()))
    assert "better" in text.splitlines()[1] and "worse" in text.splitlines()[2]


def test_each_side_runs_under_the_interpreter_it_is_given(tmp_path):
    """--ref-python and --python: the ref's runs go to one interpreter, this checkout's to the other (each a
    script that says which it is, then runs the real one), alternating as ever."""
    import sys

    import bench.against as against

    def interpreter(name: str, mark: int) -> str:
        script = tmp_path / name
        script.write_text(f"#!/bin/sh\necho 'interpreter {mark}'\nexec {sys.executable} \"$@\"\n")
        script.chmod(0o755)
        return str(script)

    seen = []
    bench = against.Bench("platform", ["platform"], {"interpreter": r"^interpreter (\d+)$"})
    rows = compare([bench], tmp_path, rounds=2, timeout=60, progress=seen.append,
                   ref_python=interpreter("ref-python", 1), python=interpreter("this-python", 2))
    assert rows[0]["ref_samples"] == [1.0, 1.0] and rows[0]["this_samples"] == [2.0, 2.0]
    assert len(seen) == 2
    assert "does not start" in against.interpreter(str(tmp_path / "no-such-python"))
