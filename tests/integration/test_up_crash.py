"""kill -9 of ``snowmelt up`` under load: every event answered 2xx is in the files and both stores, once.

``snowmelt up`` appends each request to its write-ahead log (fsync per group) before the 2xx, replays what
the last checkpoint does not cover when it starts, and its stores load the daily files by byte range under
deterministic tokens.  Here it takes about 3,000 events a second from 8 senders, is killed with SIGKILL
twice mid-stream and started again on the same data folder each time, then stopped with SIGTERM; the
daily TSV, chdb and the S3-layout files must each hold every acknowledged event exactly once, and the
killed process's stage process must not outlive it.
"""
from __future__ import annotations

import collections
import time
from pathlib import Path

from tests.integration.test_faults import local_enriched_event_ids
from tests.services.pipeline import Traffic, chdb_event_ids, enriched_ids
from tests.services.process import child_pids
from tests.services.up import UpProcess
from tests.services.wait import wait_until

RATE = 170  # requests a second: 7 in 8 are POSTs of 20 page views, so ~3,000 events a second
EVENTS_PER_POST = 20
KILLS = 2


def duplicates(ids: list[str]) -> list[str]:
    return [eid for eid, n in collections.Counter(ids).items() if n > 1]


def test_kill_9_under_load_loses_and_duplicates_no_acknowledged_event(tmp_path):
    data_dir = tmp_path / "data"
    accepted: list[str] = []
    logs: list[str] = []
    for run in range(KILLS + 1):
        up = UpProcess(data_dir, settings={"up.store_interval": "0.2"}).start(90)
        traffic = Traffic(up.port, rate=RATE, senders=8, max_requests=1_000_000,
                          events_per_post=EVENTS_PER_POST).start()
        try:
            started = time.monotonic()
            traffic.wait_accepted(6_000, 60, f"6,000 events accepted by run {run + 1}")
            rate = traffic.counts()[0] / (time.monotonic() - started)
            if run < KILLS:
                stage = child_pids(up.proc.pid)
                # its one helper: multiprocessing's spawn started a second, its resource tracker (15 MB)
                assert len(stage) == 1, [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in stage]
                up.kill()
                traffic.stop()
                # nobody is left to stop the stage process: it must notice and end by itself
                wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in stage), 10,
                           "the stage process of the killed snowmelt up to end")
                print(f"\nrun {run + 1}: killed (-9) after {traffic.counts()[0]} events accepted at {rate:.0f}/s")
            else:
                traffic.stop()
                assert up.terminate(120) == 0, up.output()
            accepted.extend(traffic.accepted)
            logs.append(up.output(200_000))
        finally:
            up.kill()
            up.remove_log()
    replayed = [line for log in logs for line in log.splitlines() if "replayed" in line]
    print("\n".join(replayed))

    tsv = enriched_ids(line for f in sorted((data_dir / "enriched").glob("*.tsv"))
                       for line in f.read_text().splitlines())
    loaded = chdb_event_ids(data_dir / "clickhouse")
    in_s3 = local_enriched_event_ids(data_dir / "s3")
    print(f"accepted {len(accepted)}; TSV {len(tsv)} lines, chdb {len(loaded)} rows, S3-layout files "
          f"{len(in_s3)} lines")
    missing = set(accepted) - set(tsv)
    assert not missing, f"{len(missing)} acknowledged events are not in the daily files"
    assert not duplicates(tsv), f"{len(duplicates(tsv))} events twice in the daily files"
    assert not duplicates(loaded), f"{len(duplicates(loaded))} events twice in chdb"
    assert not duplicates(in_s3), f"{len(duplicates(in_s3))} events twice in the S3-layout files"
    assert set(loaded) == set(tsv), f"chdb misses {len(set(tsv) - set(loaded))} events of the files"
    assert set(in_s3) == set(tsv), f"the S3-layout files miss {len(set(tsv) - set(in_s3))} events of the files"
    assert not list((data_dir / "bad").glob("*.jsonl")) or \
        all(not f.read_text() for f in (data_dir / "bad").glob("*.jsonl"))
    # the log was trimmed on the clean stop: nothing left to replay
    segments = list((data_dir / "wal").glob("*.wal"))
    assert sum(f.stat().st_size for f in segments) == 0 or len(segments) == 1
