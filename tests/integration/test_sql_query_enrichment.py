"""The SQL query enrichment against a real PostgreSQL (tests/services/postgres.py)."""
import json
from datetime import datetime, timezone

import pytest

from processor.enriched import FIELD_INDEX, EnrichedEvent
from processor.enrichments import (
    ConfigError,
    EnrichmentFailure,
    EventContext,
    LoadContext,
    parse_enrichment,
)
from processor.enrichments.sql_query import convert_placeholders
from processor.iglu import EmbeddedRepository, Resolver
from processor.stage import Enricher
from tests.services.postgres import PostgresServer, postgres_from_env
from tests.unit.enrichments.conftest import raw_record

NAME = "sql_query_enrichment_config"
VENDOR = "com.snowplowanalytics.snowplow.enrichments"
ENTITY = "iglu:com.acme/user/jsonschema/1-0-0"
CLICK = "iglu:com.acme/click/jsonschema/1-0-0"


@pytest.fixture(scope="module")
def pg():
    server = postgres_from_env()
    server.start()
    print(f"\npostgres: {server.describe()} (ready in {server.start_seconds:.1f}s)")
    server.execute("""
        CREATE TABLE users (
            user_id text PRIMARY KEY, "firstName" text, last_name text, age int, balance numeric(10, 2),
            score double precision, is_vip boolean, signed_up timestamptz, seen timestamp, born date, tags jsonb);
        INSERT INTO users VALUES
            ('u1', 'Ada', 'Lovelace', 36, 12.50, 0.25, true, '2024-01-02 03:04:05.678+00', '2024-01-02 03:04:05',
             '1815-12-10', '["math"]'),
            ('u2', 'Alan', 'Turing', 41, 100, 1.5, false, '2023-06-07 08:09:10+02', NULL, NULL, NULL),
            ('it''s; DROP TABLE users; --', 'Mallory', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
        CREATE TABLE orders (user_id text, sku text, qty int);
        INSERT INTO orders VALUES ('u1', 'a', 1), ('u1', 'b', 2), ('u2', 'c', 3);
        CREATE TABLE calls (n serial, user_id text);
    """)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def resolver():
    return Resolver([], include_builtin=True)


def sql_config(pg, sql, *, inputs=None, expected="AT_MOST_ONE", describes="EVERY_ROW", names="AS_IS",
               cache=(0, 0), version="1-0-0", ignore=None, port=None, schema=ENTITY):
    parameters = {
        "inputs": inputs if inputs is not None else [{"placeholder": 1, "pojo": {"field": "user_id"}}],
        "database": {"postgresql": {"host": pg.host, "port": port or pg.port, "sslMode": False,
                                    "username": pg.user, "password": pg.password, "database": pg.database}},
        "query": {"sql": sql},
        "output": {"expectedRows": expected,
                   "json": {"schema": schema, "propertyNames": names, "describes": describes}},
        "cache": {"size": cache[0], "ttl": cache[1]},
    }
    if ignore is not None:
        parameters["ignoreOnError"] = ignore
    return {"schema": f"iglu:{VENDOR}/{NAME}/jsonschema/{version}",
            "data": {"name": NAME, "vendor": VENDOR, "enabled": True, "parameters": parameters}}


@pytest.fixture
def load(resolver):
    made = []

    def _load(doc):
        enrichment = parse_enrichment(doc, resolver, LoadContext(source="sql.json"))
        made.append(enrichment)
        return enrichment
    yield _load
    for enrichment in made:
        if enrichment is not None:
            enrichment.close()


def run(enrichment, **fields):
    event = EnrichedEvent(**fields)
    ctx = EventContext(None, {})
    enrichment.enrich(event, ctx)
    return ctx.derived


# --------------------------------------------------------------------------- rows and types

def test_types_become_json(pg, load):
    enrichment = load(sql_config(pg, "SELECT * FROM users WHERE user_id = ?"))
    [entity] = run(enrichment, user_id="u1")
    assert entity["schema"] == ENTITY
    assert entity["data"] == {
        "user_id": "u1", "firstName": "Ada", "last_name": "Lovelace", "age": 36, "balance": 12.5, "score": 0.25,
        "is_vip": True, "signed_up": "2024-01-02T03:04:05.678000Z", "seen": "2024-01-02T03:04:05",
        "born": "1815-12-10", "tags": ["math"]}
    [entity] = run(enrichment, user_id="u2")
    assert entity["data"]["balance"] == 100 and isinstance(entity["data"]["balance"], int)
    assert entity["data"]["signed_up"] == "2023-06-07T06:09:10Z"  # in UTC
    assert entity["data"]["seen"] is None and entity["data"]["is_vip"] is False


@pytest.mark.parametrize("names,expected", [
    ("AS_IS", {"firstName", "last_name"}),
    ("CAMEL_CASE", {"firstName", "lastName"}),
    ("PASCAL_CASE", {"FirstName", "LastName"}),
    ("SNAKE_CASE", {"first_name", "last_name"}),
    ("LOWER_CASE", {"firstname", "last_name"}),
    ("UPPER_CASE", {"FIRSTNAME", "LAST_NAME"}),
])
def test_property_names(pg, load, names, expected):
    enrichment = load(sql_config(pg, 'SELECT "firstName", last_name FROM users WHERE user_id = ?', names=names))
    [entity] = run(enrichment, user_id="u1")
    assert set(entity["data"]) == expected


@pytest.mark.parametrize("expected,user,rows,ok", [
    ("EXACTLY_ONE", "u1", 1, True), ("EXACTLY_ONE", "nobody", 0, False), ("EXACTLY_ONE", "many", 2, False),
    ("AT_MOST_ONE", "u1", 1, True), ("AT_MOST_ONE", "nobody", 0, True), ("AT_MOST_ONE", "many", 2, False),
    ("AT_LEAST_ONE", "many", 2, True), ("AT_LEAST_ONE", "u1", 1, True), ("AT_LEAST_ONE", "nobody", 0, False),
    ("AT_LEAST_ZERO", "nobody", 0, True), ("AT_LEAST_ZERO", "many", 2, True),
])
def test_expected_rows(pg, load, expected, user, rows, ok):
    # 'many' -> both u1 orders; 'u1' -> one; 'nobody' -> none
    sql = ("SELECT sku, qty FROM orders WHERE user_id = CASE WHEN ? = 'many' THEN 'u1' ELSE 'x' END "
           "AND (sku = 'a' OR user_id = 'u1' AND ?::text = 'many') UNION ALL "
           "SELECT 'one', 1 WHERE ? = 'u1'")
    inputs = [{"placeholder": i, "pojo": {"field": "user_id"}} for i in (1, 2, 3)]
    enrichment = load(sql_config(pg, sql, inputs=inputs, expected=expected))
    if ok:
        derived = run(enrichment, user_id=user)
        assert len(derived) == rows
    else:
        with pytest.raises(EnrichmentFailure, match=f"got {rows}"):
            run(enrichment, user_id=user)


def test_all_rows_is_one_entity_with_an_array(pg, load):
    enrichment = load(sql_config(pg, "SELECT sku, qty FROM orders WHERE user_id = ? ORDER BY sku",
                                 expected="AT_LEAST_ZERO", describes="ALL_ROWS"))
    assert run(enrichment, user_id="u1") == [{"schema": ENTITY, "data": [{"sku": "a", "qty": 1},
                                                                         {"sku": "b", "qty": 2}]}]
    assert run(enrichment, user_id="nobody") == []


# --------------------------------------------------------------------------- inputs

def test_missing_input_means_no_query(pg, load):
    enrichment = load(sql_config(pg, "INSERT INTO calls (user_id) VALUES (?) RETURNING n", expected="EXACTLY_ONE"))
    before = pg.execute("SELECT count(*) FROM calls")[0][0]
    assert run(enrichment, user_id=None) == []  # EXACTLY_ONE, yet no failure: nothing ran
    assert pg.execute("SELECT count(*) FROM calls")[0][0] == before


def test_json_input_from_contexts_and_unstruct_event(pg, load):
    inputs = [{"placeholder": 1, "json": {"field": "contexts", "schemaCriterion": "iglu:com.acme/customer/jsonschema/1-*-*",
                                          "jsonPath": "$.id"}},
              {"placeholder": 2, "json": {"field": "unstruct_event", "schemaCriterion": "iglu:com.acme/click/jsonschema/1-0-*",
                                          "jsonPath": "$.target.sku"}}]
    enrichment = load(sql_config(pg, "SELECT qty FROM orders WHERE user_id = ? AND sku = ?", inputs=inputs))
    contexts = [{"schema": "iglu:com.acme/other/jsonschema/1-0-0", "data": {"id": "u2"}},
                {"schema": "iglu:com.acme/customer/jsonschema/1-2-0", "data": {"id": "u1"}}]
    unstruct = {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                "data": {"schema": CLICK, "data": {"target": {"sku": "b"}}}}
    assert run(enrichment, contexts=contexts, unstruct_event=unstruct) == [{"schema": ENTITY, "data": {"qty": 2}}]
    # the criterion does not match (2-0-0): missing input, no query
    contexts[1]["schema"] = "iglu:com.acme/customer/jsonschema/2-0-0"
    assert run(enrichment, contexts=contexts, unstruct_event=unstruct) == []


def test_injection_attempt_stays_a_parameter(pg, load):
    enrichment = load(sql_config(pg, 'SELECT "firstName" FROM users WHERE user_id = ?'))
    [entity] = run(enrichment, user_id="it's; DROP TABLE users; --")
    assert entity["data"] == {"firstName": "Mallory"}
    assert run(enrichment, user_id="' OR '1'='1") == []  # would be every row if formatted in
    assert pg.execute("SELECT count(*) FROM users")[0][0] == 3


def test_placeholders_in_literals_and_comments_are_not_inputs():
    sql, count = convert_placeholders("SELECT '?', \"a?\", $$?$$ /* ? */ FROM t WHERE a = ? AND b LIKE '10%' -- ?\n")
    assert count == 1
    assert sql == "SELECT '?', \"a?\", $$?$$ /* ? */ FROM t WHERE a = %s AND b LIKE '10%%' -- ?\n"


def test_percent_and_question_marks_in_literals_work(pg, load):
    enrichment = load(sql_config(pg, "SELECT '100% sure?' AS text, ? AS uid", expected="EXACTLY_ONE"))
    assert run(enrichment, user_id="u1")[0]["data"] == {"text": "100% sure?", "uid": "u1"}


# --------------------------------------------------------------------------- cache

def test_cache_hit_does_not_query_again(pg, load):
    enrichment = load(sql_config(pg, "INSERT INTO calls (user_id) VALUES (?) RETURNING user_id",
                                 expected="EXACTLY_ONE", cache=(10, 60)))
    count = lambda: pg.execute("SELECT count(*) FROM calls WHERE user_id = 'cached'")[0][0]
    first = run(enrichment, user_id="cached")
    assert run(enrichment, user_id="cached") == first == [{"schema": ENTITY, "data": {"user_id": "cached"}}]
    assert count() == 1
    run(enrichment, user_id="other")
    assert pg.execute("SELECT count(*) FROM calls WHERE user_id = 'other'")[0][0] == 1

    uncached = load(sql_config(pg, "INSERT INTO calls (user_id) VALUES (?) RETURNING user_id",
                               expected="EXACTLY_ONE", cache=(0, 60)))
    run(uncached, user_id="cached")
    run(uncached, user_id="cached")
    assert count() == 3


# --------------------------------------------------------------------------- failures

def test_query_error_is_a_failure_and_ignore_on_error_keeps_the_event(pg, load):
    enrichment = load(sql_config(pg, "SELECT no_such_column FROM users WHERE user_id = ?"))
    with pytest.raises(EnrichmentFailure, match="no_such_column"):
        run(enrichment, user_id="u1")
    ignoring = load(sql_config(pg, "SELECT no_such_column FROM users WHERE user_id = ?",
                               version="1-0-1", ignore=True))
    assert run(ignoring, user_id="u1") == []


def test_database_down_is_a_failure_then_recovers(load):
    server = PostgresServer()
    server.start()
    try:
        server.execute("CREATE TABLE t (user_id text, v int); INSERT INTO t VALUES ('u1', 1)")
        enrichment = load(sql_config(server, "SELECT v FROM t WHERE user_id = ?"))
        ignoring = load(sql_config(server, "SELECT v FROM t WHERE user_id = ?", version="1-0-1", ignore=True))
        assert run(enrichment, user_id="u1") == [{"schema": ENTITY, "data": {"v": 1}}]
        assert run(ignoring, user_id="u1") == [{"schema": ENTITY, "data": {"v": 1}}]
        server.stop()
        with pytest.raises(EnrichmentFailure, match="SQL query enrichment"):
            run(enrichment, user_id="u1")  # the pooled connection is dead
        with pytest.raises(EnrichmentFailure, match="cannot connect"):
            run(enrichment, user_id="u1")  # a new one cannot be opened
        assert run(ignoring, user_id="u1") == []
        assert run(ignoring, user_id="u1") == []
        server.start()
        assert run(enrichment, user_id="u1") == [{"schema": ENTITY, "data": {"v": 1}}]
    finally:
        server.close()


def test_nothing_listening_is_a_failure(pg, load):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    enrichment = load(sql_config(pg, "SELECT 1 WHERE ? = 'x'", port=port))
    with pytest.raises(EnrichmentFailure, match="cannot connect to postgresql"):
        run(enrichment, user_id="x")


# --------------------------------------------------------------------------- config

@pytest.mark.parametrize("change,match", [
    (lambda d: d["inputs"].append({"placeholder": 2, "pojo": {"field": "app_id"}}), r"inputs\[1\]\.placeholder"),
    (lambda d: d.update(inputs=[]), r"parameters\.inputs: no input for placeholder"),
    (lambda d: d["inputs"][0]["pojo"].update(field="nope"), r"inputs\[0\]\.pojo\.field"),
    (lambda d: d["inputs"][0].update(placeholder=0), "placeholder"),
    (lambda d: d["output"].update(expectedRows="SOME"), "expectedRows"),
    (lambda d: d["output"]["json"].update(propertyNames="KEBAB"), "propertyNames"),
    (lambda d: d["cache"].update(ttl=-1), "ttl"),
    (lambda d: d.pop("query"), "query"),
    (lambda d: d.update(ignoreOnError=True), "ignoreOnError"),  # not in 1-0-0
    (lambda d: d["output"].pop("json"), r"output\.json"),
])
def test_invalid_configs_are_refused_naming_the_field(pg, resolver, change, match):
    doc = sql_config(pg, "SELECT 1 WHERE ? IS NOT NULL")
    change(doc["data"]["parameters"])
    with pytest.raises(ConfigError, match=match):
        parse_enrichment(doc, resolver, LoadContext(source="sql.json"))


# --------------------------------------------------------------------------- through the stage

def test_through_the_stage(pg, load, tmp_path):
    path = tmp_path / "registry" / "com.acme" / "user" / "jsonschema" / "1-0-0"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
        "self": {"vendor": "com.acme", "name": "user", "format": "jsonschema", "version": "1-0-0"},
        "type": "object", "properties": {"firstName": {"type": "string"}, "age": {"type": ["integer", "null"]},
                                         "signedUp": {"type": "string", "format": "date-time"}},
        "required": ["firstName"], "additionalProperties": False}))
    resolver = Resolver([EmbeddedRepository("test registry", tmp_path / "registry")], include_builtin=True)
    enrichment = load(sql_config(pg, 'SELECT "firstName", age, signed_up FROM users WHERE user_id = ?',
                                 names="CAMEL_CASE", expected="EXACTLY_ONE"))
    enricher = Enricher(resolver, enrichments=[enrichment], clock=lambda: 1_764_288_005.0)

    def raw(qs):
        return raw_record(querystring=qs)

    out = enricher.enrich(raw("e=pv&aid=shop&p=web&tv=js-4.1.0&uid=u1"))
    assert out.bad == [] and len(out.good) == 1
    derived = json.loads(out.good[0].split("\t")[FIELD_INDEX["derived_contexts"]])["data"]
    assert derived == [{"schema": ENTITY, "data": {"firstName": "Ada", "age": 36,
                                                   "signedUp": "2024-01-02T03:04:05.678000Z"}}]
    assert all(resolver.validate(entity).ok for entity in derived)
    assert datetime.fromisoformat(derived[0]["data"]["signedUp"]).tzinfo == timezone.utc

    out = enricher.enrich(raw("e=pv&aid=shop&p=web&tv=js-4.1.0&uid=nobody"))  # EXACTLY_ONE, no row
    assert out.good == [] and len(out.bad) == 1
    bad = json.loads(out.bad[0])
    assert "enrichment_failures" in bad["schema"] and "expected exactly 1 row(s), got 0" in json.dumps(bad["data"])


def test_mysql_driver_is_wired_up_nothing_listening_is_a_failure(pg, load):
    """No MySQL server here: only the pymysql path up to the connection is exercised."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    doc = sql_config(pg, "SELECT 1 WHERE ? = 'x'", port=port)
    params = doc["data"]["parameters"]
    params["database"] = {"mysql": params["database"]["postgresql"]}
    enrichment = load(doc)
    assert enrichment.engine == "mysql"
    with pytest.raises(EnrichmentFailure, match="cannot connect to mysql"):
        run(enrichment, user_id="x")
