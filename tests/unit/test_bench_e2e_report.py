"""bench.e2e_bench's report: the CPU each process spent on an event, against what the machine's CPUs give one."""
import json
from pathlib import Path

from bench.e2e_bench import cpu_us_per_event, report_text

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def test_cpu_an_event_is_each_process_over_the_events_accepted():
    step = {"target": 10_000.0, "load": {"events_accepted": 200_000},
            "cpu_seconds": {"enrich": 10.0, "kafka": 5.0, "bench (loadgen + probe)": 1.0}}
    assert cpu_us_per_event(step) == {"enrich": 50.0, "kafka": 25.0, "bench (loadgen + probe)": 5.0, "all": 80.0}
    assert cpu_us_per_event({**step, "load": {"events_accepted": 0}}) == {}


def test_the_report_gives_each_steps_cpu_an_event_beside_what_the_cpus_give_at_its_rate():
    results = json.loads((RESULTS / "e2e-20261206-ceiling.json").read_text())
    lines = report_text(results).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("CPU an event, us"))
    rows = lines[start + 1:start + 1 + len(results["steps"])]
    assert [row.split(":")[0].strip() for row in rows] == ["10,000", "16,000", "20,000", "25,000"]
    assert rows[-1].endswith("all 160.5; 2 CPUs give 80.0")
    assert "enrich 50.3" in rows[-1]
