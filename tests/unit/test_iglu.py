"""Iglu client without network: keys, config, lookup order, cache, validation,
and the JSON of every failure checked against the shipped schema_violations
2-0-0 schema."""
from __future__ import annotations

import json
import threading
from importlib import resources

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor import iglu
from processor.iglu import (
    CriterionMismatch,
    EmbeddedRepository,
    InvalidSchema,
    IgluParseError,
    NotIglu,
    NotJSON,
    ResolutionError,
    Resolver,
    ResolverConfigError,
    SchemaCriterion,
    SchemaKey,
    SchemaVer,
    SelfDescribingData,
    ValidationError,
)

BADROWS = "com.snowplowanalytics.snowplow.badrows"
SV_KEY = SchemaKey.parse(f"iglu:{BADROWS}/schema_violations/jsonschema/2-0-0")


# ------------------------------------------------------------------ helpers


def self_describing_schema(vendor, name, version="1-0-0", **body):
    schema = {
        "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
        "self": {"vendor": vendor, "name": name, "format": "jsonschema", "version": version},
        "type": "object",
    }
    schema.update(body)
    return schema


def write_schema(root, schema, path=None):
    if path is None:
        s = schema["self"]
        path = f"{s['vendor']}/{s['name']}/{s['format']}/{s['version']}"
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(schema))
    return target


LINK_CLICK = self_describing_schema(
    "com.acme",
    "link_click",
    properties={
        "targetUrl": {"type": "string", "minLength": 1, "maxLength": 4096},
        "elementId": {"type": "string"},
        "count": {"type": "integer", "minimum": 0},
    },
    required=["targetUrl"],
    additionalProperties=False,
)


@pytest.fixture
def registry(tmp_path):
    root = tmp_path / "registry"
    write_schema(root, LINK_CLICK)
    return root


@pytest.fixture
def resolver(registry):
    return Resolver([EmbeddedRepository("local", registry)])


class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


class RecordingRepo:
    """A repository double that records which keys it was asked for."""

    def __init__(self, name, priority=0, vendor_prefixes=(), kind="http", schemas=None, calls=None):
        self.name, self.priority, self.vendor_prefixes, self.kind = name, priority, tuple(vendor_prefixes), kind
        self.schemas = schemas or {}
        self.calls = calls if calls is not None else []

    def fetch(self, key):
        self.calls.append(self.name)
        if key.uri in self.schemas:
            return iglu._Fetched(self.schemas[key.uri], (), 1)
        return iglu._Fetched(None, (iglu.RepoError("NotFound"),), 1)


@pytest.fixture(scope="module")
def schema_violations_schema():
    text = resources.files("schemas").joinpath(SV_KEY.path).read_text()
    schema = json.loads(text)
    jsonschema.Draft4Validator.check_schema(schema)
    return schema


def assert_valid_message(schema, message):
    """``message`` fits failure.messages[] of a complete schema_violations bad row."""
    bad_row = {
        "processor": {"artifact": "snowmelt-enrich", "version": "0.1.0"},
        "failure": {"timestamp": "2026-01-01T00:00:00.000Z", "messages": [message]},
        "payload": {
            "raw": {"vendor": "com.snowplowanalytics.snowplow", "version": "tp2", "loaderName": "snowmelt", "encoding": "UTF-8"}
        },
    }
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(bad_row), key=str)
    assert not errors, [e.message for e in errors]
    # and it matches exactly the intended alternative, not some looser one
    return json.loads(json.dumps(message))


def event(data, uri="iglu:com.acme/link_click/jsonschema/1-0-0"):
    return json.dumps({"schema": uri, "data": data})


# ------------------------------------------------------------------ keys


def test_schema_key_parse_and_render():
    key = SchemaKey.parse("iglu:com.acme-co.x_y/link_click/jsonschema/1-2-30")
    assert key == SchemaKey("com.acme-co.x_y", "link_click", "jsonschema", SchemaVer(1, 2, 30))
    assert key.uri == "iglu:com.acme-co.x_y/link_click/jsonschema/1-2-30" == str(key)
    assert key.path == "com.acme-co.x_y/link_click/jsonschema/1-2-30"
    assert SchemaKey.parse(key.uri) == key and hash(SchemaKey.parse(key.uri)) == hash(key)


@pytest.mark.parametrize(
    "uri, code",
    [
        ("iglu:com.acme/x/jsonschema/1-0", "INVALID_SCHEMAVER"),
        ("iglu:com.acme/x/jsonschema/0-0-0", "INVALID_SCHEMAVER"),
        ("iglu:com.acme/x/jsonschema/1-01-0", "INVALID_SCHEMAVER"),
        ("iglu:com.acme/x/jsonschema/a-b-c", "INVALID_SCHEMAVER"),
        ("com.acme/x/jsonschema/1-0-0", "INVALID_IGLUURI"),
        ("iglu:com.acme/x/1-0-0", "INVALID_IGLUURI"),
        ("iglu:com acme/x/jsonschema/1-0-0", "INVALID_IGLUURI"),
        ("", "INVALID_IGLUURI"),
    ],
)
def test_schema_key_invalid(uri, code):
    with pytest.raises(IgluParseError) as info:
        SchemaKey.parse(uri)
    assert info.value.code == code


def test_schema_key_from_self():
    assert SchemaKey.from_self(LINK_CLICK["self"]).uri == "iglu:com.acme/link_click/jsonschema/1-0-0"
    with pytest.raises(IgluParseError):
        SchemaKey.from_self({"vendor": "com.acme", "name": "x", "format": "jsonschema"})
    with pytest.raises(IgluParseError):
        SchemaKey.from_self(None)


def test_schemaver_order():
    assert SchemaVer.parse("1-0-10") > SchemaVer.parse("1-0-9")
    assert str(SchemaVer(2, 1, 0)) == "2-1-0"


@pytest.mark.parametrize(
    "criterion, version, ok",
    [
        ("iglu:com.acme/link_click/jsonschema/1-*-*", "1-4-2", True),
        ("iglu:com.acme/link_click/jsonschema/1-*-*", "2-0-0", False),
        ("iglu:com.acme/link_click/jsonschema/1-0-*", "1-0-7", True),
        ("iglu:com.acme/link_click/jsonschema/1-0-*", "1-1-0", False),
        ("iglu:com.acme/link_click/jsonschema/1-0-0", "1-0-0", True),
        ("iglu:com.acme/link_click/jsonschema/*-*-*", "9-9-9", True),
        ("iglu:com.acme/other/jsonschema/1-*-*", "1-0-0", False),
    ],
)
def test_criterion(criterion, version, ok):
    crit = SchemaCriterion.parse(criterion)
    assert str(crit) == criterion
    assert crit.matches(SchemaKey.parse(f"iglu:com.acme/link_click/jsonschema/{version}")) is ok


def test_criterion_invalid():
    with pytest.raises(IgluParseError):
        SchemaCriterion.parse("iglu:com.acme/x/jsonschema/1-x-*")


# ------------------------------------------------------------------ config


def config(version="1-0-3", **data):
    body = {
        "cacheSize": 500,
        "repositories": [
            {
                "name": "Iglu Central",
                "priority": 0,
                "vendorPrefixes": ["com.snowplowanalytics"],
                "connection": {"http": {"uri": "http://iglucentral.com"}},
            }
        ],
    }
    body.update(data)
    return {"schema": f"iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/{version}", "data": body}


@pytest.mark.parametrize("version", ["1-0-0", "1-0-1", "1-0-2", "1-0-3"])
def test_config_versions_accepted(version):
    r = Resolver.from_config(config(version))
    assert r.cache_size == 500 and r.cache_ttl is None
    key = SchemaKey.parse("iglu:com.acme/x/jsonschema/1-0-0")
    names = [repo.name for repo in r.repositories_for(key)]
    assert names == ["Iglu Client Embedded", "Iglu Central"]


def test_config_as_text_and_bare_data(tmp_path):
    cfg = config(cacheTtl=600)
    cfg["data"]["repositories"].append(
        {"name": "mine", "priority": 1, "vendorPrefixes": [], "connection": {"embedded": {"path": "reg"}}}
    )
    r = Resolver.from_config(json.dumps(cfg).encode(), base_dir=tmp_path)
    assert r.cache_ttl == 600.0
    mine = [x for x in r.repositories_for(SchemaKey.parse("iglu:x/y/jsonschema/1-0-0")) if x.name == "mine"][0]
    assert mine.root == tmp_path / "reg"
    r2 = Resolver.from_config(cfg["data"])
    assert r2.cache_ttl == 600.0


def _repo_field(path, value):
    cfg = config()
    target = cfg["data"]["repositories"][0]
    *parents, last = path
    for p in parents:
        target = target[p]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return cfg


@pytest.mark.parametrize(
    "cfg, field",
    [
        (config(version="2-0-0"), "schema"),
        (config(cacheSize="big"), "data.cacheSize"),
        (config(cacheTtl=-1), "data.cacheTtl"),
        (config(cacheTtl=1.5), "data.cacheTtl"),
        (config(repositories={}), "data.repositories"),
        (config(extra=1), "data.extra"),
        ({"schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-1", "data": {"repositories": []}}, "data.cacheSize"),
        (_repo_field(["name"], KeyError), "data.repositories[0].name"),
        (_repo_field(["priority"], "high"), "data.repositories[0].priority"),
        (_repo_field(["vendorPrefixes"], "com.acme"), "data.repositories[0].vendorPrefixes"),
        (_repo_field(["connection"], {"ftp": {}}), "data.repositories[0].connection"),
        (_repo_field(["connection"], {"http": {}, "embedded": {"path": "x"}}), "data.repositories[0].connection"),
        (_repo_field(["connection", "http", "uri"], "not a uri"), "data.repositories[0].connection.http.uri"),
        (_repo_field(["connection", "http", "apikey"], 42), "data.repositories[0].connection.http.apikey"),
        (_repo_field(["connection", "http", "token"], "x"), "data.repositories[0].connection.http.token"),
        (_repo_field(["connection"], {"embedded": {}}), "data.repositories[0].connection.embedded.path"),
    ],
)
def test_config_errors_name_the_field(cfg, field):
    with pytest.raises(ResolverConfigError) as info:
        Resolver.from_config(cfg)
    assert f": {field}:" in str(info.value)


def test_config_not_json():
    with pytest.raises(ResolverConfigError, match="not JSON"):
        Resolver.from_config("{nope")


# ------------------------------------------------------------------ lookup order


def test_lookup_order_vendor_prefix_then_priority_then_embedded_first():
    calls = []
    repos = [
        RecordingRepo("http-p0", 0, calls=calls),
        RecordingRepo("http-p5-acme", 5, ["com.acme"], calls=calls),
        RecordingRepo("emb-p0", 0, kind="embedded", calls=calls),
        RecordingRepo("http-p1", 1, calls=calls),
        RecordingRepo("emb-p2-acme", 2, ["com.ac"], kind="embedded", calls=calls),
        RecordingRepo("http-p2-acme", 2, ["com.acme"], calls=calls),
    ]
    r = Resolver(repos, include_builtin=False)
    result = r.lookup_schema("iglu:com.acme/x/jsonschema/1-0-0")
    assert isinstance(result, ResolutionError)
    assert calls == ["emb-p2-acme", "http-p2-acme", "http-p5-acme", "emb-p0", "http-p0", "http-p1"]
    assert [h.repository for h in result.lookup_history] == calls
    # other vendors: prefixes do not apply, priority order only
    calls.clear()
    r.lookup_schema("iglu:org.other/x/jsonschema/1-0-0")
    assert calls == ["emb-p0", "http-p0", "http-p1", "emb-p2-acme", "http-p2-acme", "http-p5-acme"]


def test_first_repository_with_the_schema_wins():
    calls = []
    a = RecordingRepo("a", 0, calls=calls)
    b = RecordingRepo("b", 1, calls=calls, schemas={"iglu:com.acme/link_click/jsonschema/1-0-0": LINK_CLICK})
    c = RecordingRepo("c", 2, calls=calls, schemas={"iglu:com.acme/link_click/jsonschema/1-0-0": {}})
    r = Resolver([c, b, a], include_builtin=False)
    assert r.lookup_schema("iglu:com.acme/link_click/jsonschema/1-0-0") == LINK_CLICK
    assert calls == ["a", "b"]


def test_builtin_schemas_are_always_consulted_first(tmp_path):
    shadow = self_describing_schema(BADROWS, "size_violation", description="shadow")
    write_schema(tmp_path, shadow)
    r = Resolver([EmbeddedRepository("mine", tmp_path, priority=-100, vendor_prefixes=[BADROWS])])
    key = SchemaKey.parse(f"iglu:{BADROWS}/size_violation/jsonschema/1-0-0")
    assert r.repositories_for(key)[0].name == "Iglu Client Embedded"
    assert r.lookup_schema(key).get("description") != "shadow"


def test_default_resolver_is_builtin_then_iglu_central():
    r = Resolver.default()
    repos = r.repositories_for(SchemaKey.parse("iglu:com.acme/x/jsonschema/1-0-0"))
    assert [x.kind for x in repos] == ["embedded", "http"]
    assert repos[1].schema_url(SchemaKey.parse("iglu:com.acme/x/jsonschema/1-0-0")) == (
        "http://iglucentral.com/schemas/com.acme/x/jsonschema/1-0-0"
    )


def test_shipped_schemas_are_self_describing_at_their_paths():
    root = resources.files("schemas")
    found = 0
    for vendor in root.iterdir():
        if not vendor.is_dir() or vendor.name.startswith("__"):
            continue
        for name in vendor.iterdir():
            for fmt in name.iterdir():
                for version in fmt.iterdir():
                    schema = json.loads(version.read_text())
                    assert SchemaKey.from_self(schema["self"]).path == f"{vendor.name}/{name.name}/{fmt.name}/{version.name}"
                    jsonschema.Draft4Validator.check_schema(schema)
                    found += 1
    assert found >= 2


def test_embedded_refuses_dot_segments(tmp_path):
    repo = EmbeddedRepository("x", tmp_path)
    got = repo.fetch(SchemaKey("..", "y", "jsonschema", SchemaVer(1, 0, 0)))
    assert got.schema is None and got.errors[0].error == "NotFound"


def test_embedded_unparseable_schema_is_repo_failure(tmp_path):
    (tmp_path / "com.acme/broken/jsonschema").mkdir(parents=True)
    (tmp_path / "com.acme/broken/jsonschema/1-0-0").write_text("{not json")
    r = Resolver([EmbeddedRepository("local", tmp_path)], include_builtin=False)
    out = r.lookup_schema("iglu:com.acme/broken/jsonschema/1-0-0")
    assert isinstance(out, ResolutionError)
    assert out.lookup_history[0].errors[0].error == "RepoFailure"


# ------------------------------------------------------------------ cache


def test_cache_hit_makes_no_second_fetch():
    repo = RecordingRepo("r", schemas={"iglu:com.acme/link_click/jsonschema/1-0-0": LINK_CLICK})
    r = Resolver([repo], include_builtin=False)
    for _ in range(3):
        assert r.validate(event({"targetUrl": "x"})).ok
    assert repo.calls == ["r"]
    info = r.cache_info()
    assert (info.hits, info.misses, info.size) == (2, 1, 1)


def test_cache_ttl_expiry_refetches():
    clock = FakeClock()
    repo = RecordingRepo("r", schemas={"iglu:com.acme/link_click/jsonschema/1-0-0": LINK_CLICK})
    r = Resolver([repo], include_builtin=False, cache_ttl=60, clock=clock)
    key = "iglu:com.acme/link_click/jsonschema/1-0-0"
    r.lookup_schema(key)
    clock.t += 59
    r.lookup_schema(key)
    assert len(repo.calls) == 1
    clock.t += 2
    r.lookup_schema(key)
    assert len(repo.calls) == 2


def test_cache_size_evicts_least_recently_used():
    schemas = {f"iglu:com.acme/s{i}/jsonschema/1-0-0": self_describing_schema("com.acme", f"s{i}") for i in range(3)}
    repo = RecordingRepo("r", schemas=schemas)
    r = Resolver([repo], include_builtin=False, cache_size=2)
    k0, k1, k2 = list(schemas)
    r.lookup_schema(k0)
    r.lookup_schema(k1)
    r.lookup_schema(k0)  # k0 now most recent
    r.lookup_schema(k2)  # evicts k1
    assert r.cache_info().size == 2
    repo.calls.clear()
    r.lookup_schema(k0)
    assert repo.calls == []
    r.lookup_schema(k1)
    assert repo.calls == ["r"]


def test_cache_size_zero_disables_cache():
    repo = RecordingRepo("r", schemas={"iglu:com.acme/link_click/jsonschema/1-0-0": LINK_CLICK})
    r = Resolver([repo], include_builtin=False, cache_size=0)
    r.lookup_schema("iglu:com.acme/link_click/jsonschema/1-0-0")
    r.lookup_schema("iglu:com.acme/link_click/jsonschema/1-0-0")
    assert len(repo.calls) == 2


def test_misses_are_cached_briefly_and_attempts_accumulate():
    clock = FakeClock()
    repo = RecordingRepo("r")
    r = Resolver([repo], include_builtin=False, cache_ttl=600, miss_ttl=5, clock=clock)
    key = "iglu:com.acme/missing/jsonschema/1-0-0"
    first = r.lookup_schema(key)
    assert r.lookup_schema(key) is first and repo.calls == ["r"]
    clock.t += 6
    second = r.lookup_schema(key)
    assert repo.calls == ["r", "r"]
    assert second.lookup_history[0].attempts == 2
    assert [e.error for e in second.lookup_history[0].errors] == ["NotFound"]


def test_miss_then_published_schema_is_found_after_miss_ttl():
    clock = FakeClock()
    repo = RecordingRepo("r")
    r = Resolver([repo], include_builtin=False, miss_ttl=5, clock=clock)
    key = "iglu:com.acme/link_click/jsonschema/1-0-0"
    assert isinstance(r.lookup_schema(key), ResolutionError)
    repo.schemas[key] = LINK_CLICK
    assert isinstance(r.lookup_schema(key), ResolutionError)
    clock.t += 5.1
    assert r.lookup_schema(key) == LINK_CLICK


def test_compiled_validator_is_cached_with_the_schema(resolver):
    key = SchemaKey.parse("iglu:com.acme/link_click/jsonschema/1-0-0")
    v1 = resolver.compiled_validator(key)
    assert resolver.compiled_validator(key) is v1


def test_concurrent_validation_is_consistent(resolver):
    results = []
    lock = threading.Lock()

    def work(i):
        out = [resolver.validate(event({"targetUrl": "u", "count": i})).ok for _ in range(200)]
        out.append(resolver.validate(event({"count": -1})).ok)
        with lock:
            results.extend(out)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 8 * 201 and results.count(False) == 8
    assert resolver.cache_info().size == 1


# ------------------------------------------------------------------ validation and failure JSON


def test_valid_instance(resolver):
    out = resolver.validate(event({"targetUrl": "https://x", "count": 2}))
    assert isinstance(out, SelfDescribingData) and out.ok
    assert out.schema_key.uri == "iglu:com.acme/link_click/jsonschema/1-0-0"
    assert out.data == {"targetUrl": "https://x", "count": 2}
    # parsed objects and bytes are accepted too
    assert resolver.validate({"schema": out.schema_key.uri, "data": out.data}).ok
    assert resolver.validate(event({"targetUrl": "x"}).encode()).ok


def test_not_json(resolver, schema_violations_schema):
    out = resolver.validate('{"schema": ', field="ue_properties")
    assert isinstance(out, NotJSON) and not out.ok
    msg = assert_valid_message(schema_violations_schema, out.to_json())
    assert msg["field"] == "ue_properties" and msg["value"] == '{"schema": ' and msg["error"]
    assert set(msg) == {"field", "value", "error"}
    out = resolver.validate(b"\xff\xfe")
    assert isinstance(out, NotJSON) and out.value is None
    assert_valid_message(schema_violations_schema, out.to_json())


@pytest.mark.parametrize(
    "instance, code",
    [
        ("[1, 2]", "INVALID_DATA_PAYLOAD"),
        ('{"data": {}}', "INVALID_DATA_PAYLOAD"),
        ('{"schema": "iglu:com.acme/link_click/jsonschema/1-0-0"}', "INVALID_DATA_PAYLOAD"),
        ('{"schema": "http://acme.com/schema", "data": {}}', "INVALID_IGLUURI"),
        # without data, no URI is read (3.9.0 on the body corpus's {"schema":"payload_data"} and {"schema":""})
        ('{"schema": "payload_data"}', "INVALID_DATA_PAYLOAD"),
        ('{"schema": ""}', "INVALID_DATA_PAYLOAD"),
        ('{"schema": "payload_data", "data": []}', "INVALID_IGLUURI"),
        ('{"schema": "iglu:com.acme/link_click/jsonschema/1-0", "data": {}}', "INVALID_SCHEMAVER"),
    ],
)
def test_not_iglu(resolver, schema_violations_schema, instance, code):
    out = resolver.validate(instance)
    assert isinstance(out, NotIglu)
    msg = assert_valid_message(schema_violations_schema, out.to_json())
    assert msg == {"json": json.loads(instance), "error": code}


def test_criterion_mismatch(resolver, schema_violations_schema):
    out = resolver.validate(event({"targetUrl": "x"}), expected="iglu:com.acme/link_click/jsonschema/2-*-*")
    assert isinstance(out, CriterionMismatch)
    msg = assert_valid_message(schema_violations_schema, out.to_json())
    assert msg == {
        "schemaKey": "iglu:com.acme/link_click/jsonschema/1-0-0",
        "schemaCriterion": "iglu:com.acme/link_click/jsonschema/2-*-*",
    }
    assert resolver.validate(event({"targetUrl": "x"}), expected=SchemaCriterion.parse("iglu:com.acme/link_click/jsonschema/1-*-*")).ok


def test_resolution_error(resolver, schema_violations_schema):
    out = resolver.validate(event({}, uri="iglu:com.acme/unknown/jsonschema/1-0-0"))
    assert isinstance(out, ResolutionError)
    msg = assert_valid_message(schema_violations_schema, out.to_json())
    assert msg["schemaKey"] == "iglu:com.acme/unknown/jsonschema/1-0-0"
    assert msg["error"]["error"] == "ResolutionError"
    history = msg["error"]["lookupHistory"]
    assert [h["repository"] for h in history] == ["Iglu Client Embedded", "local"]
    for h in history:
        assert set(h) == {"repository", "errors", "attempts", "lastAttempt"}
        assert h["errors"] == [{"error": "NotFound"}] and h["attempts"] == 1
        assert h["lastAttempt"].endswith("Z")


def test_resolution_error_messages_are_truncated(schema_violations_schema):
    class Failing(RecordingRepo):
        def fetch(self, key):
            return iglu._Fetched(None, (iglu.RepoError("RepoFailure", "x" * 1000),), 3)

    out = Resolver([Failing("bad")], include_builtin=False).lookup_schema("iglu:com.acme/x/jsonschema/1-0-0")
    msg = assert_valid_message(schema_violations_schema, out.to_json())
    err = msg["error"]["lookupHistory"][0]
    assert err["attempts"] == 3 and len(err["errors"][0]["message"]) == 256


def test_repository_exception_becomes_client_failure():
    class Exploding(RecordingRepo):
        def fetch(self, key):
            raise RuntimeError("boom")

    out = Resolver([Exploding("x")], include_builtin=False).lookup_schema("iglu:com.acme/x/jsonschema/1-0-0")
    assert out.lookup_history[0].errors[0].error == "ClientFailure"


def test_validation_error(resolver, schema_violations_schema):
    out = resolver.validate(event({"count": -1, "extra": True, "elementId": 5}))
    assert isinstance(out, ValidationError)
    msg = assert_valid_message(schema_violations_schema, out.to_json())
    assert msg["error"]["error"] == "ValidationError"
    # networknt 1.0.70's reports (iglu-scala-client 1.5.0): "properties" first, its members in
    # java.util.HashMap order (elementId, count, targetUrl), the missing targetUrl reporting "required"
    # where it is met; then additionalProperties; "required" again is the same message, written once
    assert msg["error"]["dataReports"] == [
        {"message": "$.elementId: integer found, string expected", "path": "$.elementId", "keyword": "type",
         "targets": ["integer", "string"]},
        {"message": "$.count: must have a minimum value of 0", "path": "$.count", "keyword": "minimum",
         "targets": ["0"]},
        {"message": "$.targetUrl: is missing but it is required", "path": "$", "keyword": "required",
         "targets": ["targetUrl"]},
        {"message": "$.extra: is not defined in the schema and the schema does not allow additional properties",
         "path": "$", "keyword": "additionalProperties", "targets": ["extra"]},
    ]


@pytest.mark.parametrize(
    "schema, issue_path",
    [
        ({k: v for k, v in LINK_CLICK.items() if k != "self"}, "$.self"),
        (dict(LINK_CLICK, self=dict(LINK_CLICK["self"], version="1-0-1")), "$.self"),
        (dict(LINK_CLICK, type="thing"), None),
        (dict(LINK_CLICK, properties={"a": {"$ref": "http://example.com/remote.json"}}), None),
    ],
    ids=["no-self", "self-mismatch", "not-draft4", "remote-ref"],
)
def test_invalid_schema(tmp_path, schema_violations_schema, schema, issue_path):
    write_schema(tmp_path, schema, path="com.acme/link_click/jsonschema/1-0-0")
    r = Resolver([EmbeddedRepository("local", tmp_path)], include_builtin=False)
    out = r.validate(event({"targetUrl": "x", "a": 1}))
    assert isinstance(out, InvalidSchema), out
    msg = assert_valid_message(schema_violations_schema, out.to_json())
    assert msg["error"]["error"] == "ValidationError" and "dataReports" not in msg["error"]
    issues = msg["error"]["schemaIssues"]
    assert issues and all(set(i) == {"path", "message"} for i in issues)
    if issue_path:
        assert issues[0]["path"] == issue_path


def nested(depth):
    """A self-describing JSON whose whole document nests ``depth`` containers."""
    data = "1"
    for _ in range(depth - 1):  # the envelope object is the first container
        data = "[" + data + "]"
    return '{"schema": "iglu:com.acme/deep/jsonschema/1-0-0", "data": ' + data + "}"


def test_deep_json_refused(tmp_path, schema_violations_schema):
    write_schema(tmp_path, self_describing_schema("com.acme", "deep", type="array"))
    r = Resolver([EmbeddedRepository("local", tmp_path)], include_builtin=False)
    assert r.validate(nested(50)).ok
    out = r.validate(nested(51))
    assert isinstance(out, NotJSON) and "50" in out.error
    assert_valid_message(schema_violations_schema, out.to_json())
    # far too deep for the parser's recursion: still a failure, not an exception
    huge = "[" * 100_000 + "]" * 100_000
    assert isinstance(r.validate(huge), NotJSON)
    # already-parsed objects are checked too
    obj = json.loads(nested(51))
    assert isinstance(r.validate(obj), NotJSON)


def test_module_level_validate_uses_given_resolver(resolver):
    assert iglu.validate(event({"targetUrl": "x"}), resolver=resolver).ok
    assert isinstance(iglu.validate("{", resolver=resolver), NotJSON)


def test_lookup_schema_with_bad_uri_is_not_iglu(resolver):
    out = resolver.lookup_schema("nope")
    assert isinstance(out, NotIglu) and out.error == "INVALID_IGLUURI"


@pytest.mark.parametrize(
    "message",
    [
        {"schemaKey": "iglu:a/b/c/1-0-0", "error": {"error": "InvalidSchema", "schemaIssues": [{"path": "$", "message": "m"}]}},
        {"schemaKey": "iglu:a/b/c/1-0-0", "error": {"error": "ResolutionError", "lookupHistory": []}},
        {"schemaKey": "iglu:a/b/c/1-0-0", "error": {"error": "ValidationError", "dataReports": [{"message": "m"}]}},
        {"json": {}, "error": "NOT_A_CODE"},
        {"field": "x"},
    ],
)
def test_shipped_schema_rejects_malformed_messages(schema_violations_schema, message):
    with pytest.raises(AssertionError):
        assert_valid_message(schema_violations_schema, message)


def test_embedded_registry_in_snowplow_layout_reads_its_schemas_folder(tmp_path):
    # Snowplow's embedded registries keep schemas under <path>/schemas/vendor/name/format/version
    schema = {"$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
              "self": {"vendor": "com.acme", "name": "thing", "format": "jsonschema", "version": "1-0-0"},
              "type": "object"}
    folder = tmp_path / "schemas" / "com.acme" / "thing" / "jsonschema"
    folder.mkdir(parents=True)
    (folder / "1-0-0").write_text(json.dumps(schema))
    resolver = Resolver([EmbeddedRepository("snowplow layout", tmp_path)])
    assert resolver.validate({"schema": "iglu:com.acme/thing/jsonschema/1-0-0", "data": {}}).ok


# ------------------------------------------------------------------ the per-event path


@pytest.mark.parametrize("instance, expected", [
    ({"schema": "iglu:com.acme/link_click/jsonschema/1-0-0", "data": {"targetUrl": "https://x"}}, None),
    ({"schema": "iglu:com.acme/link_click/jsonschema/1-0-0", "data": {"count": 2}}, None),
    ({"schema": "iglu:com.acme/link_click/jsonschema/1-0-0", "data": {"targetUrl": "x"}},
     "iglu:com.acme/other/jsonschema/1-*-*"),
    ({"schema": "iglu:com.acme/missing/jsonschema/1-0-0", "data": {}}, None),
    ({"schema": "iglu:com.acme/link_click/jsonschema/1-0-0"}, None),
    ('{"schema": "iglu:com.acme/link_click/jsonschema/1-0-0", "data": {"targetUrl": "x"}}', None),
])
def test_check_agrees_with_validate_before_and_after_the_schema_is_cached(resolver, instance, expected):
    for _ in range(2):  # first call fills the per-URI cache, the second takes it
        result = resolver.validate(instance, expected, check_depth=not isinstance(instance, dict))
        failure = resolver.check(instance, expected)
        assert (failure is None) == result.ok
        if failure is not None:
            assert failure.to_json() == result.to_json()


def test_check_sees_a_schema_expire():
    clock = FakeClock()
    repo = RecordingRepo("r", schemas={"iglu:com.acme/link_click/jsonschema/1-0-0": LINK_CLICK})
    r = Resolver([repo], include_builtin=False, cache_ttl=60, clock=clock)
    doc = {"schema": "iglu:com.acme/link_click/jsonschema/1-0-0", "data": {"targetUrl": "x"}}
    assert r.check(doc) is None and r.check(doc) is None
    assert len(repo.calls) == 1
    clock.t += 61
    assert r.check(doc) is None
    assert len(repo.calls) == 2


def test_check_each_reports_what_check_reports_for_each_item_in_order(resolver):
    items = [
        {"schema": "iglu:com.acme/link_click/jsonschema/1-0-0", "data": {"targetUrl": "https://x"}},
        {"schema": "iglu:com.acme/link_click/jsonschema/1-0-0", "data": {"count": 2}},
        {"schema": "iglu:com.acme/missing/jsonschema/1-0-0", "data": {}},
        {"schema": "iglu:com.acme/link_click/jsonschema/1-0-0"},
        "not a self-describing document",
        {"schema": "iglu:com.acme/link_click/jsonschema/1-0-0", "data": {"targetUrl": "https://y"}},
    ]
    for _ in range(2):  # before and after the schemas are cached
        expected = [f.to_json() for item in items if (f := resolver.check(item, field="contexts")) is not None]
        got = [f.to_json() for f in resolver.check_each(items, field="contexts")]
        assert got == expected and len(got) == 4
    assert resolver.check_each(items[:1] + items[-1:]) == []


def test_a_batch_budget_cuts_slow_lookups_and_the_schema_arrives_in_the_background():
    import http.server
    import json as _json
    import threading
    import time as _time

    from tests.services.wait import wait_until

    schema = {"self": {"vendor": "com.slow", "name": "thing", "format": "jsonschema", "version": "1-0-0"},
              "type": "object"}
    answer = threading.Event()  # the server answers only once the budget's assertions are done

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            answer.wait(10)
            body = _json.dumps(schema).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            import sys

            if not isinstance(sys.exc_info()[1], ConnectionError):  # a client the budget gave up on hung up
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        resolver = Resolver([iglu.HttpRepository("slow", f"http://127.0.0.1:{server.server_port}/api")])
        instance = {"schema": "iglu:com.slow/thing/jsonschema/1-0-0", "data": {}}
        started = _time.monotonic()
        with resolver.time_budget(0.2):
            failures = [resolver.check(dict(instance)) for _ in range(20)]
        assert _time.monotonic() - started < 0.5  # twenty look-ups, one budget
        assert all(isinstance(f, iglu.ResolutionError) for f in failures)
        assert "time budget" in _json.dumps(failures[0].to_json())
        # looked up in the background meanwhile: once the server answers, later events find it
        answer.set()
        wait_until(lambda: resolver.check(dict(instance)) is None, 5, "the schema looked up in the background",
                   interval=0.05)
    finally:
        answer.set()
        server.shutdown()


def test_describe_lists_the_repositories_in_look_up_order_without_secrets(tmp_path):
    doc = config(repositories=[
        {"name": "Mine", "priority": 5, "vendorPrefixes": ["com.acme"], "connection": {"embedded": {"path": "reg"}}},
        {"name": "Server", "priority": 1, "vendorPrefixes": [],
         "connection": {"http": {"uri": "https://user:s3cret@iglu.example/api", "apikey": "k3y"}}},
    ])
    described = Resolver.from_config(doc, base_dir=tmp_path).describe()
    assert described == ["Iglu Client Embedded (the schemas shipped with snowmelt)",
                         "Server (https://iglu.example/api)", f"Mine ({tmp_path / 'reg'}; for vendors com.acme)"]
    assert Resolver.default().describe()[1:] == ["Iglu Central (http://iglucentral.com)"]


# ------------------------------------------------------------------ $supersededBy


def acme(version, superseded_by=None, **properties):
    extra = {"$supersededBy": superseded_by} if superseded_by is not None else {}
    return self_describing_schema("com.acme", "thing", version, properties=properties,
                                  additionalProperties=False, **extra)


STR = {"type": "string"}
THING = "iglu:com.acme/thing/jsonschema/"


def thing(version, **data):
    return {"schema": THING + version, "data": data}


def superseding_repo(*schemas, name="r", calls=None):
    return RecordingRepo(name, schemas={THING + s["self"]["version"]: s for s in schemas}, calls=calls)


@pytest.fixture(scope="module")
def schema_violations_201():
    text = resources.files("schemas").joinpath(f"{BADROWS}/schema_violations/jsonschema/2-0-1").read_text()
    return json.loads(text)


def test_a_superseded_schema_validates_against_the_later_version():
    r = Resolver([superseding_repo(acme("1-0-0", "1-0-1", a=STR), acme("1-0-1", a=STR, b=STR))],
                 include_builtin=False)
    out = r.validate(thing("1-0-0", a="x", b="y"))
    assert out.ok and out.schema_key == SchemaKey.parse(THING + "1-0-1")
    assert out.superseded == SchemaKey.parse(THING + "1-0-0") and out.data == {"a": "x", "b": "y"}
    # a key that is not superseded says so
    plain = r.validate(thing("1-0-1", a="x"))
    assert plain.ok and plain.superseded is None and plain.schema_key == SchemaKey.parse(THING + "1-0-1")


def test_supersession_is_followed_one_step_only():
    r = Resolver([superseding_repo(acme("1-0-0", "1-0-1", a=STR), acme("1-0-1", "1-0-2", a=STR, b=STR),
                                   acme("1-0-2", a=STR, b=STR, c=STR))], include_builtin=False)
    out = r.validate(thing("1-0-0", a="x", b="y"))
    assert out.ok and str(out.schema_key.version) == "1-0-1"
    failed = r.validate(thing("1-0-0", c="z"))
    assert isinstance(failed, ValidationError) and str(failed.superseded_by) == "1-0-1"


def test_supersession_is_resolved_once_and_cached_with_the_key():
    calls = []
    repo = superseding_repo(acme("1-0-0", "1-0-1", a=STR), acme("1-0-1", a=STR, b=STR), calls=calls)
    r = Resolver([repo], include_builtin=False)
    for _ in range(3):
        assert r.check(thing("1-0-0", a="x")) is None
        assert r.check_each([thing("1-0-0", a="x")]) == []
    assert len(calls) == 2  # the key's schema and the superseding one, once
    info = r.cache_info()
    assert info.size == 1 and info.misses == 1
    # the cache holds what the key validates against, as iglu-scala-client's does
    assert r.lookup_schema(THING + "1-0-0")["self"]["version"] == "1-0-1"


def test_the_fast_path_is_kept_for_schemas_not_superseded():
    r = Resolver([superseding_repo(acme("1-0-0", "1-0-1", a=STR), acme("1-0-1", a=STR))], include_builtin=False)
    r.check(thing("1-0-0", a="x"))
    r.check(thing("1-0-1", a="x"))
    assert r._by_uri[THING + "1-0-1"][3] is True
    assert r._by_uri[THING + "1-0-0"][3] is False  # goes the long way, which reports the version


def test_check_and_check_each_report_what_was_superseded():
    r = Resolver([superseding_repo(acme("1-0-0", "1-0-1", a=STR), acme("1-0-1", a=STR))], include_builtin=False)
    found = []
    for _ in range(2):  # cold, then cached
        assert r.check(thing("1-0-0", a="x"), superseded=found) is None
    assert [str(s.schema_key.version) for s in found] == ["1-0-1", "1-0-1"]
    items = [thing("1-0-1", a="x"), thing("1-0-0", a="y")]
    pairs = []
    assert r.check_each(items, superseded=pairs) == []
    assert [(item is items[1], s.superseded.uri) for item, s in pairs] == [(True, THING + "1-0-0")]


def test_a_validation_error_names_the_superseding_version(schema_violations_201):
    r = Resolver([superseding_repo(acme("1-0-0", "1-0-2", a=STR), acme("1-0-2", a=STR))], include_builtin=False)
    out = r.validate(thing("1-0-0", b="x"))
    assert isinstance(out, ValidationError)
    message = assert_valid_message(schema_violations_201, out.to_json())
    assert message["schemaKey"] == THING + "1-0-0"
    # in the order Snowplow's client writes the keys
    assert list(message["error"]) == ["supersededBy", "error", "dataReports"]
    assert message["error"]["supersededBy"] == "1-0-2"
    plain = Resolver([superseding_repo(acme("1-0-0", a=STR))], include_builtin=False).validate(thing("1-0-0", b="x"))
    assert "supersededBy" not in plain.to_json()["error"]


def test_an_unusable_superseding_schema_is_reported_for_the_key_named(schema_violations_201):
    bad = dict(acme("1-0-1", a=STR), type="thing")  # not a draft-4 schema
    r = Resolver([superseding_repo(acme("1-0-0", "1-0-1", a=STR), bad)], include_builtin=False)
    out = r.validate(thing("1-0-0", a="x"))
    assert isinstance(out, InvalidSchema)
    message = assert_valid_message(schema_violations_201, out.to_json())
    assert message["schemaKey"] == THING + "1-0-0" and message["error"]["supersededBy"] == "1-0-1"


@pytest.mark.parametrize("value,message", [
    ("1-0-0", "Superseding version 1-0-0 isn't greater than the version of schema com.acme/thing/jsonschema/1-0-0"),
    ("1-0", "Error while trying to decode superseding version: "
            "DecodingFailure(Invalid schema version: 1-0, List(DownField($supersededBy)))"),
    (None, "Error while trying to decode superseding version: "
           "DecodingFailure(String, List(DownField($supersededBy)))"),
    (2, "Error while trying to decode superseding version: DecodingFailure(String, List(DownField($supersededBy)))"),
])
def test_a_supersededby_that_is_not_a_later_version_is_a_client_failure(value, message):
    schema = acme("1-0-0", a=STR)
    schema["$supersededBy"] = value
    r = Resolver([superseding_repo(schema, acme("1-0-1", a=STR))], include_builtin=False)
    out = r.validate(thing("1-0-0", a="x"))
    assert isinstance(out, ResolutionError)
    [history] = out.lookup_history
    assert [e.to_json() for e in history.errors] == [{"error": "ClientFailure", "message": message}]
    assert history.attempts == 1


def test_the_superseding_schema_is_looked_up_in_the_same_repository():
    first = superseding_repo(acme("1-0-0", "1-0-1", a=STR), name="first")
    second = superseding_repo(acme("1-0-1", a=STR), name="second")
    out = Resolver([first, second], include_builtin=False).validate(thing("1-0-0", a="x"))
    assert isinstance(out, ResolutionError)
    assert [(h.repository, [e.error for e in h.errors]) for h in out.lookup_history] == \
        [("first", ["NotFound"]), ("second", ["NotFound"])]
    # a repository that has both wins after one that cannot complete the supersession
    both = superseding_repo(acme("1-0-0", "1-0-1", a=STR), acme("1-0-1", a=STR), name="both")
    out = Resolver([first, both], include_builtin=False).validate(thing("1-0-0", a="x"))
    assert out.ok and str(out.schema_key.version) == "1-0-1"


# ------------------------------------------------------------------ envelope schemas


ENVELOPES = {
    "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0": (True, 1),
    "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1": (True, 0),
    "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0": (False, 0),
}


@pytest.mark.parametrize("uri", sorted(ENVELOPES))
def test_the_shipped_envelope_schemas_are_validated_as_envelopes(uri):
    validator = Resolver.default().compiled_validator(SchemaKey.parse(uri))
    assert isinstance(validator, iglu.EnvelopeValidator)
    assert (validator.array, validator.min_items) == ENVELOPES[uri]


def test_other_schemas_keep_their_validator(resolver):
    validator = resolver.compiled_validator(SchemaKey.parse("iglu:com.acme/link_click/jsonschema/1-0-0"))
    assert not isinstance(validator, iglu.EnvelopeValidator)
    # one of a kind: an envelope with one more rule is not one
    entity = {"type": "object", "required": ["schema", "data"], "additionalProperties": False,
              "properties": {"schema": {"type": "string", "pattern": "^iglu:"}, "data": {}}}
    assert iglu.EnvelopeValidator.shape({"type": "array", "items": entity, "minItems": 1}) == (True, 1)
    assert iglu.EnvelopeValidator.shape(entity) == (False, 0)
    assert iglu.EnvelopeValidator.shape({"type": "array", "items": entity, "maxItems": 3}) is None
    assert iglu.EnvelopeValidator.shape({**entity, "additionalProperties": True}) is None
    assert iglu.EnvelopeValidator.shape({**entity, "properties": {**entity["properties"], "data": {
        "type": "object"}}}) is None
    assert iglu.EnvelopeValidator.shape({**entity, "properties": {**entity["properties"], "schema": {
        "type": "string", "pattern": "^iglu:", "maxLength": 10}}}) is None


class CountingValidator:
    """Stands for jsonschema_rs's validator: counts the documents it is asked about."""

    def __init__(self, inner):
        self.inner, self.asked = inner, 0

    def is_valid(self, data):
        self.asked += 1
        return self.inner.is_valid(data)


def envelope(uri: str) -> iglu.EnvelopeValidator:
    validator = Resolver.default().compiled_validator(SchemaKey.parse(uri))
    return iglu.EnvelopeValidator(CountingValidator(validator.inner), validator.array, validator.min_items)


WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
TIMING = "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0"


def test_an_envelope_of_known_schemas_is_valid_without_the_validator():
    contexts = envelope("iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0")
    first = [{"schema": WEB_PAGE, "data": {"id": "a"}}, {"schema": TIMING, "data": {}}]
    assert contexts.is_valid(first) and contexts.inner.asked == 1
    assert contexts.is_valid([{"schema": TIMING, "data": [1, 2]}, {"schema": WEB_PAGE, "data": None}])
    assert contexts.inner.asked == 1
    # each of these is the validator's to judge, and it refuses them
    for refused in ([], [{"schema": WEB_PAGE, "data": {}, "extra": 1}], [{"schema": WEB_PAGE}],
                    [{"schema": "iglu:not a uri", "data": {}}], [{"schema": 1, "data": {}}], {"schema": WEB_PAGE}):
        assert not contexts.is_valid(refused), refused
    assert contexts.inner.asked == 7
    event = envelope("iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0")
    assert event.is_valid({"schema": WEB_PAGE, "data": {}}) and event.is_valid({"data": 0, "schema": WEB_PAGE})
    assert event.inner.asked == 1
    assert not event.is_valid([{"schema": WEB_PAGE, "data": {}}])


def test_the_known_schemas_are_bounded(monkeypatch):
    monkeypatch.setattr(iglu.EnvelopeValidator, "MAX_KNOWN", 8)
    contexts = envelope("iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1")
    for i in range(100):
        assert contexts.is_valid([{"schema": f"iglu:com.acme/e{i}/jsonschema/1-0-0", "data": {}}])
        assert len(contexts.known) <= 8


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(
    st.lists(st.one_of(
        st.fixed_dictionaries({"schema": st.sampled_from([WEB_PAGE, TIMING, "iglu:com.acme/x y/jsonschema/1-0-0",
                                                          "iglu:com.acme/x/jsonschema/1-0", ""]),
                               "data": st.one_of(st.none(), st.integers(), st.dictionaries(st.text(max_size=2),
                                                                                           st.integers()))},
                              optional={"extra": st.integers()}),
        st.integers()), max_size=3),
    st.fixed_dictionaries({"schema": st.sampled_from([WEB_PAGE, "nope"]), "data": st.integers()})), max_size=6))
def test_an_envelope_says_what_its_validator_says(documents):
    for uri in ENVELOPES:
        fast = Resolver.default().compiled_validator(SchemaKey.parse(uri))
        for document in documents:
            assert fast.is_valid(document) is fast.inner.is_valid(document), (uri, document)

