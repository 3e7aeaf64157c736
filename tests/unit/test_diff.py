"""``snowmelt diff``: two enriched outputs compared field by field, joined on event_id."""
from __future__ import annotations

import gzip
import json
import socket
from datetime import datetime, timezone

import pytest

from processor.enriched import FIELD_INDEX, FIELDS, EnrichedEvent, to_tsv
from snowmelt.cli import main
from snowmelt.diff import DiffInputError, compare, format_report, json_equal, read_lines

GEO = "iglu:com.acme/geo/jsonschema/1-0-0"
USER = "iglu:com.acme/user/jsonschema/1-0-0"


def event(n: int, **fields) -> EnrichedEvent:
    values = dict(
        app_id="shop", platform="web", etl_tstamp=datetime(2024, 5, 1, 12, 0, 1, tzinfo=timezone.utc),
        collector_tstamp=datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc), event="page_view",
        event_id=f"00000000-0000-4000-8000-{n:012d}", v_tracker="js-3.0.0", v_collector="ssc-2.0.0",
        v_etl="snowmelt-0.1", page_url=f"https://acme.com/p/{n}", geo_city="Paris",
        contexts=[{"schema": GEO, "data": {"lat": 1.5, "lon": 2}}, {"schema": USER, "data": {"id": n}}],
    )
    values.update(fields)
    return EnrichedEvent(**values)


def lines(*events: EnrichedEvent) -> list[str]:
    return [to_tsv(e) for e in events]


def write(path, rows: list[str]) -> str:
    path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["diff", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def eid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def test_identical_outputs_exit_0(tmp_path, capsys):
    rows = lines(*(event(n) for n in range(5)))
    # a second run of enrich: etl_tstamp and v_etl differ and are ignored by default
    rerun = lines(*(event(n, etl_tstamp=datetime(2024, 6, 1, tzinfo=timezone.utc), v_etl="snowplow-3.9.0")
                    for n in range(5)))
    status, out, err = run(capsys, write(tmp_path / "a.tsv", rows), write(tmp_path / "b.tsv", rerun))
    assert status == 0, out + err
    assert "no compared field differs" in out and out.rstrip().endswith("identical")
    assert "events (distinct event_ids)" in out and "5" in out


def test_ignore_nothing_shows_the_etl_fields(tmp_path, capsys):
    a = write(tmp_path / "a.tsv", lines(event(1)))
    b = write(tmp_path / "b.tsv", lines(event(1, v_etl="snowplow-3.9.0")))
    status, out, _ = run(capsys, a, b, "--ignore")
    assert status == 1
    assert "v_etl" in out and "snowplow-3.9.0" in out
    # named in --fields, a field of the default ignore list is compared
    assert run(capsys, a, b, "--fields", "v_etl")[0] == 1
    assert run(capsys, a, b, "--fields", "geo_city,page_url")[0] == 0


def test_one_field_changed_in_one_event_is_counted_with_its_example(tmp_path, capsys):
    a = [event(n) for n in range(4)]
    b = [event(n) for n in range(4)]
    b[2] = event(2, geo_city="London")
    report = compare(lines(*a), lines(*b))
    assert report.both == 4 and report.only_a == report.only_b == 0
    assert [(d.field, d.count) for d in report.fields] == [("geo_city", 1)]
    assert report.fields[0].examples == [(eid(2), "Paris", "London")]
    assert report.events_differing == 1 and report.exit_status == 1

    status, out, _ = run(capsys, write(tmp_path / "a.tsv", lines(*a)), write(tmp_path / "b.tsv", lines(*b)))
    assert status == 1
    assert "geo_city" in out and eid(2) in out
    assert "A: Paris" in out and "B: London" in out


def test_fields_sorted_by_count_and_examples_bounded(tmp_path, capsys):
    a = [event(n) for n in range(6)]
    b = [event(n, geo_city="London", page_url="https://x/" if n < 2 else None) for n in range(6)]
    report = compare(lines(*a), lines(*b), examples=10)
    assert [(d.field, d.count) for d in report.fields] == [("geo_city", 6), ("page_url", 6)]
    b = [event(n, geo_city="London" if n < 2 else "Paris", app_id="other") for n in range(6)]
    report = compare(lines(*a), lines(*b), examples=10)
    assert [(d.field, d.count) for d in report.fields] == [("app_id", 6), ("geo_city", 2)]
    text = format_report(report, examples=1)
    assert text.count("event_id ") == 2  # one example per differing field
    assert text.index("app_id") < text.index("geo_city")


def test_contexts_in_another_order_do_not_differ(tmp_path, capsys):
    geo = {"schema": GEO, "data": {"lat": 1.5, "lon": 2}}
    user = {"schema": USER, "data": {"id": 7}}
    a = event(1, contexts=[geo, user], derived_contexts=[user, geo])
    # the other order, keys in another order, 2.0 for 2: the same documents
    b_ctx = ('{"data":[{"data":{"id":7},"schema":"%s"},{"schema":"%s","data":{"lon":2.0,"lat":1.5}}],'
             '"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"}' % (USER, GEO))
    b = event(1, contexts=b_ctx, derived_contexts=[geo, user])
    status, out, _ = run(capsys, write(tmp_path / "a.tsv", lines(a)), write(tmp_path / "b.tsv", lines(b)))
    assert status == 0, out

    # an entity missing, or one entity twice instead of two: a difference
    assert not json_equal("contexts", to_tsv(event(1, contexts=[geo, user])).split("\t")[FIELD_INDEX["contexts"]],
                          to_tsv(event(1, contexts=[geo, geo])).split("\t")[FIELD_INDEX["contexts"]])
    report = compare(lines(a), lines(event(1, contexts=[geo], derived_contexts=[user, geo])))
    assert [(d.field, d.count) for d in report.fields] == [("contexts", 1)]
    # order inside an entity's own arrays still matters
    assert not json_equal("unstruct_event", '{"data":{"a":[1,2]}}', '{"data":{"a":[2,1]}}')
    assert json_equal("unstruct_event", '{"data":{"a":[1,2]},"schema":"s"}', '{"schema":"s","data":{"a":[1,2]}}')
    # integers beyond 64 bits compare exactly; text that is not JSON compares as text
    assert not json_equal("contexts", '{"data":[123456789012345678901234567890]}',
                          '{"data":[123456789012345678901234567891]}')
    assert not json_equal("contexts", "{not json", "{not json ")


def test_exact_compares_the_json_fields_as_text(tmp_path, capsys):
    # what the Snowplow oracle uses: a drop-in writes a number as the tracker wrote it (1.0e0, not 1.0)
    a_ctx = ('{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1",'
             '"data":[{"schema":"%s","data":{"lat":1.0e0}}]}' % GEO)
    b_ctx = a_ctx.replace("1.0e0", "1.0")
    files = [write(tmp_path / "a.tsv", lines(event(1, contexts=a_ctx))),
             write(tmp_path / "b.tsv", lines(event(1, contexts=b_ctx)))]
    assert run(capsys, *files)[0] == 0
    status, out, _ = run(capsys, *files, "--exact")
    assert status == 1 and "contexts" in out and "1.0e0" in out
    report = compare(lines(event(1, contexts=a_ctx)), lines(event(1, contexts=b_ctx)), exact=True)
    assert [(d.field, d.count) for d in report.fields] == [("contexts", 1)]


def test_event_only_in_b(tmp_path, capsys):
    a = lines(event(1), event(2))
    b = lines(event(1), event(2), event(3))
    report = compare(a, b)
    assert (report.a.events, report.b.events, report.both, report.only_a, report.only_b) == (2, 3, 2, 0, 1)
    assert report.only_b_examples == [eid(3)] and not report.fields
    status, out, _ = run(capsys, write(tmp_path / "a.tsv", a), write(tmp_path / "b.tsv", b))
    assert status == 1
    assert f"only in B: {eid(3)}" in out
    # and the other way round
    report = compare(b, a)
    assert (report.only_a, report.only_b, report.only_a_examples) == (1, 0, [eid(3)])


def test_duplicated_event_id_counts_and_compares_the_first(tmp_path, capsys):
    a = lines(event(1), event(2), event(2, geo_city="Berlin"), event(2, geo_city="Rome"))
    b = lines(event(1), event(2), event(1, geo_city="Oslo"))
    report = compare(a, b)
    assert (report.a.duplicated_ids, report.a.duplicate_lines) == (1, 2)
    assert (report.b.duplicated_ids, report.b.duplicate_lines) == (1, 1)
    assert (report.a.events, report.b.events, report.both) == (2, 2, 2)
    assert not report.fields and report.exit_status == 0  # first occurrences are the same
    status, out, _ = run(capsys, write(tmp_path / "a.tsv", a), write(tmp_path / "b.tsv", b))
    assert status == 0
    assert "duplicated event_ids" in out


def test_malformed_lines_counted_per_side(tmp_path, capsys):
    good = lines(event(1), event(2))
    a = good + ["only\tthree\tfields", ""]
    b = good + ["\t".join(["x"] * 132)]
    report = compare(a, b)
    assert (report.a.malformed, report.b.malformed) == (2, 1)
    assert (report.a.lines, report.b.lines) == (4, 3)
    assert report.both == 2 and report.exit_status == 0
    status, out, _ = run(capsys, "--json", write(tmp_path / "a.tsv", a), write(tmp_path / "b.tsv", b))
    doc = json.loads(out)
    assert (doc["a"]["malformed_lines"], doc["b"]["malformed_lines"]) == (2, 1)


def test_gzip_input_by_suffix_and_by_magic(tmp_path, capsys):
    rows = lines(*(event(n) for n in range(3)))
    data = "".join(r + "\n" for r in rows).encode()
    (tmp_path / "a.tsv.gz").write_bytes(gzip.compress(data))
    (tmp_path / "b.data").write_bytes(gzip.compress(data))  # no suffix: the magic bytes say gzip
    assert list(read_lines(str(tmp_path / "a.tsv.gz"))) == [r.encode() for r in rows]
    status, out, _ = run(capsys, str(tmp_path / "a.tsv.gz"), str(tmp_path / "b.data"))
    assert status == 0, out
    (tmp_path / "broken.gz").write_bytes(gzip.compress(data)[:40])
    status, _, err = run(capsys, str(tmp_path / "broken.gz"), str(tmp_path / "b.data"))
    assert status == 2 and "broken.gz" in err and len(err.strip().splitlines()) == 1


def test_folder_input(tmp_path, capsys):
    folder = tmp_path / "enriched"
    folder.mkdir()
    write(folder / "2024-05-01.tsv", lines(event(1), event(2)))
    (folder / "2024-05-02.tsv.gz").write_bytes(gzip.compress((to_tsv(event(3)) + "\n").encode()))
    write(folder / "notes.txt", ["not enriched"])  # neither *.tsv nor *.tsv.gz: not read
    single = write(tmp_path / "all.tsv", lines(event(3), event(1), event(2)))
    status, out, _ = run(capsys, str(folder), single)
    assert status == 0, out
    report = compare(read_lines(str(folder)), read_lines(single))
    assert (report.a.lines, report.both) == (3, 3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DiffInputError, match="no \\*.tsv"):
        read_lines(str(empty))


def test_json_output_parses(tmp_path, capsys):
    a = lines(event(1), event(2), event(3))
    b = lines(event(1), event(2, geo_city="Lyon"), event(4))
    status, out, _ = run(capsys, write(tmp_path / "a.tsv", a), write(tmp_path / "b.tsv", b), "--json",
                         "--examples", "5")
    assert status == 1
    doc = json.loads(out)
    assert doc["identical"] is False and doc["exit_status"] == 1
    assert (doc["in_both"], doc["only_in_a"], doc["only_in_b"]) == (2, 1, 1)
    assert doc["only_in_a_examples"] == [eid(3)] and doc["only_in_b_examples"] == [eid(4)]
    assert doc["fields"] == [{"field": "geo_city", "differing": 1,
                              "examples": [{"event_id": eid(2), "a": "Paris", "b": "Lyon"}]}]
    assert doc["fields_not_compared"] == ["etl_tstamp", "v_etl"]
    assert doc["fields_compared"] == len(FIELDS) - 2


def test_input_and_usage_errors_exit_2(tmp_path, capsys):
    a = write(tmp_path / "a.tsv", lines(event(1)))
    status, _, err = run(capsys, a, str(tmp_path / "missing.tsv"))
    assert status == 2 and "missing.tsv" in err and len(err.strip().splitlines()) == 1
    status, _, err = run(capsys, a, a, "--fields", "no_such_field")
    assert status == 2 and "no_such_field" in err
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"kafka://127.0.0.1:{port}/enriched"
    status, _, err = run(capsys, a, url, "--timeout", "5")
    assert status == 2 and url in err and "unreachable" in err and len(err.strip().splitlines()) == 1
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        url = f"kafka://127.0.0.1:{silent.getsockname()[1]}/enriched"
        status, _, err = run(capsys, url, a, "--timeout", "0.5")
    assert status == 2 and err.strip() == f"snowmelt diff: {url}: timed out after 0.5 s waiting for the broker"
    status, _, err = run(capsys, a, "kafka://no-topic")
    assert status == 2 and "kafka://HOST:PORT/TOPIC" in err


def test_lines_as_bytes_str_and_crlf_are_the_same():
    row = to_tsv(event(1))
    report = compare([row.encode() + b"\r\n"], [row + "\n"])
    assert report.identical and report.both == 1
