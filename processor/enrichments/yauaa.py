"""YAUAA (``yauaa_enrichment_config``): the ``yauaa_context`` entity, from YAUAA itself.

What Snowplow does (enrich 3.9.0, YAUAA 7.11.0)
    Config ``iglu:com.snowplowanalytics.snowplow.enrichments/yauaa_enrichment_config/jsonschema/1-0-0``
    with one optional parameter, ``cacheSize`` (how many analysed user
    agents YAUAA keeps; YAUAA's default, 10,000, without it).  Every event
    gets ``iglu:nl.basjes/yauaa_context/jsonschema/1-0-4``:

    - the event's ``useragent`` null or empty: ``{"deviceClass": "Unknown"}``;
    - otherwise YAUAA analyses the request's headers (each ``"Name: value"``
      line split at the first ``": "``, leading blanks of the value dropped)
      with ``User-Agent`` set to the event's ``useragent`` (a ``ua``
      parameter wins over the header), so User-Agent Client Hints
      (``Sec-CH-UA-*``) refine the answer; each field YAUAA gives is named
      by lowering its first letter (``DeviceClass`` -> ``deviceClass``) and
      only the 58 names the 1-0-4 schema has are kept (YAUAA 7 gives more,
      ``webviewAppNameVersion`` and ``__SyntaxError__`` among them); every
      value is a string.

    It runs after the HTTP header extractor and the weather enrichment,
    before the IP lookups and the JavaScript enrichment.

What we do
    The same, with the same YAUAA (7.11.0, from Maven Central) running in
    this process through JPype.  Nothing Java happens at import: the first
    enabled config (``from_parameters``) fetches the jars once with Maven
    into ``${SNOWMELT_CACHE:-~/.cache/snowmelt}/yauaa-7.11.0/libs``
    (:mod:`snowmelt.maven`; ``SNOWMELT_YAUAA_JARS`` names a folder of jars
    instead, for a machine without Maven), starts the JVM in the process
    that enriches (``snowmelt up`` builds its stage in a spawned process,
    the Kafka worker in its own) and builds one analyser per process (5-10 s
    and a few hundred MB; one analysis runs then, so the first event does
    not wait), shared by every instance.  YAUAA's own caches are switched off:
    an LRU cache of ``cacheSize`` entries in Python keyed by the user agent
    and the client-hint headers YAUAA reads holds each answer as a dict, so
    a repeated agent costs a dict look-up and a copy, no call into Java.
    JPype attaches the enrich worker's threads to the JVM on their first
    call; the analyser is thread-safe.  Needs the ``yauaa`` extra
    (``JPype1``), Java 11+ and, unless cached, ``mvn``; without them the
    config is refused at start with the reason.

Differences from Snowplow
    - Only the ``User-Agent`` we set and the client-hint headers YAUAA reads
      are handed to it (it ignores the others).  A request whose header is
      spelled ``user-agent`` (lower case, as HTTP/2 sends it) and whose
      event has a different ``ua`` parameter: Snowplow hands YAUAA both
      entries and which one it reads depends on a hash map's order; here
      the event's ``useragent`` is always the one analysed.
    - The YAUAA jars run with slf4j-simple at level WARN (Snowplow logs
      through its own logback); YAUAA's start-up banner is not printed.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from processor.enrichments.base import ENRICHMENTS_VENDOR, ConfigError, Enrichment, EventContext, LoadContext

SCHEMA = "iglu:nl.basjes/yauaa_context/jsonschema/1-0-4"
YAUAA_VERSION = "7.11.0"  # the version Snowplow enrich 3.9.0 is built with
#: YAUAA and what its classes need at run time: log4j-api, JCL and slf4j routed to slf4j-simple (YAUAA checks all
#: three are present), and Kryo (optional for YAUAA, but JPype reflects every method of the analyser's class).
JARS = (
    f"nl.basjes.parse.useragent:yauaa:{YAUAA_VERSION}",
    "org.apache.logging.log4j:log4j-api:2.19.0",
    "org.apache.logging.log4j:log4j-to-slf4j:2.19.0",
    "org.slf4j:jcl-over-slf4j:1.7.36",
    "org.slf4j:slf4j-simple:1.7.36",
    "com.esotericsoftware:kryo:5.4.0",
)
#: -Xrs: the JVM installs no handlers for SIGINT/SIGTERM/SIGHUP, so the Python process's own shutdown (the
#: worker's drain on SIGTERM, ^C) stays in charge; YAUAA logs warnings and errors only.
JVM_OPTIONS = ("-Xrs", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Dorg.slf4j.simpleLogger.logFile=System.err")
#: The entity when the event has no user agent (Snowplow's default result).
DEFAULT_RESULT = {"deviceClass": "Unknown"}

WARM_UP = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
           "Safari/537.36")
#: The fields of ``yauaa_context`` 1-0-4 (Snowplow keeps only these).
FIELDS = frozenset((
    "deviceClass", "deviceName", "deviceBrand", "deviceCpu", "deviceCpuBits", "deviceFirmwareVersion",
    "deviceVersion", "operatingSystemClass", "operatingSystemName", "operatingSystemVersion",
    "operatingSystemNameVersion", "operatingSystemVersionBuild", "layoutEngineClass", "layoutEngineName",
    "layoutEngineVersion", "layoutEngineVersionMajor", "layoutEngineNameVersion", "layoutEngineNameVersionMajor",
    "layoutEngineBuild", "agentClass", "agentName", "agentVersion", "agentVersionMajor", "agentNameVersion",
    "agentNameVersionMajor", "agentBuild", "agentLanguage", "agentLanguageCode", "agentInformationEmail",
    "agentInformationUrl", "agentSecurity", "agentUuid", "webviewAppName", "webviewAppVersion",
    "webviewAppVersionMajor", "webviewAppNameVersionMajor", "facebookCarrier", "facebookDeviceClass",
    "facebookDeviceName", "facebookDeviceVersion", "facebookFBOP", "facebookFBSS", "facebookOperatingSystemName",
    "facebookOperatingSystemVersion", "anonymized", "hackerAttackVector", "hackerToolkit", "koboAffiliate",
    "koboPlatformId", "iECompatibilityVersion", "iECompatibilityVersionMajor", "iECompatibilityNameVersion",
    "iECompatibilityNameVersionMajor", "carrier", "gSAInstallationID", "networkType",
    "operatingSystemNameVersionMajor", "operatingSystemVersionMajor",
))
_JAVA_BLANKS = " \t\n\x0b\f\r"  # what Java's \s matches


def decapitalize(name: str) -> str:
    """A YAUAA field name as a JSON key: its first letter lowered (``DeviceClass`` -> ``deviceClass``)."""
    return name[:1].lower() + name[1:]


def jars_folder(quiet: bool = True) -> Path:
    """The folder of YAUAA's jars: ``$SNOWMELT_YAUAA_JARS``, else fetched with Maven into the cache."""
    given = os.environ.get("SNOWMELT_YAUAA_JARS")
    if given:
        return Path(given).expanduser()
    from snowmelt import maven

    return maven.fetch_jars(maven.cache_root() / f"yauaa-{YAUAA_VERSION}", maven.pom_for("yauaa-jars", JARS),
                            expect=f"yauaa-{YAUAA_VERSION}.jar", what=f"YAUAA {YAUAA_VERSION} jars", quiet=quiet)


def unavailable() -> str | None:
    """Why the enrichment cannot start on this machine (no JPype, no Java, no jars and no Maven), or None."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("jpype") is None:
        return "JPype1 is not installed (pip install 'snowmelt[yauaa]')"
    import jpype

    if not jpype.isJVMStarted():
        try:
            jpype.getDefaultJVMPath()
        except Exception as exc:
            return f"no Java: {exc}"
    if not os.environ.get("SNOWMELT_YAUAA_JARS") and shutil.which("mvn") is None:
        from snowmelt import maven

        home = maven.cache_root() / f"yauaa-{YAUAA_VERSION}"
        if not maven.jars_cached(home, maven.pom_for("yauaa-jars", JARS)):
            return "the YAUAA jars are not cached and mvn is not on PATH to fetch them"
    return None


class _Analyzer:
    """YAUAA's analyser in this process's JVM (started here when none runs yet), without its caches."""

    def __init__(self) -> None:
        try:
            import jpype
        except ImportError:
            raise ConfigError("the YAUAA enrichment needs JPype: pip install 'snowmelt[yauaa]'") from None
        if not jpype.isJVMStarted():
            jars = sorted(str(p) for p in jars_folder().glob("*.jar"))
            try:
                jvm = jpype.getDefaultJVMPath()
            except Exception as exc:
                raise ConfigError(f"the YAUAA enrichment needs Java (JAVA_HOME or java on PATH): {exc}") from None
            jpype.startJVM(jvm, *JVM_OPTIONS, classpath=jars, convertStrings=False, interrupt=False)
        try:
            analyzer_class = jpype.JClass("nl.basjes.parse.useragent.UserAgentAnalyzer")
        except Exception as exc:
            raise ConfigError(f"a JVM runs in this process without YAUAA's classes: {exc}") from None
        self.hash_map = jpype.JClass("java.util.HashMap")
        analyzer = analyzer_class.newBuilder().hideMatcherLoadStats().immediateInitialization().build()
        self.default_cache_size = int(analyzer.getCacheSize())
        analyzer.setCacheSize(0)  # the Python cache in front of it is the one used
        analyzer.setClientHintsCacheSize(0)
        self.analyzer = analyzer
        self.hint_headers = frozenset(str(h).lower() for h in analyzer.supportedClientHintHeaders())
        self.analyse(WARM_UP, ())  # the first analysis loads much of YAUAA: at start, not on the first event

    def analyse(self, useragent: str, hints: tuple[tuple[str, str], ...]) -> dict[str, str]:
        """YAUAA's answer for a user agent and client-hint headers, as ``yauaa_context`` data."""
        headers = self.hash_map()
        for name, value in hints:
            headers.put(name, value)
        headers.put("User-Agent", useragent)
        result = self.analyzer.parse(headers)
        data = {}
        for name in result.getAvailableFieldNamesSorted():
            key = decapitalize(str(name))
            if key in FIELDS:
                data[key] = str(result.getValue(name))
        return data


_shared: _Analyzer | None = None
_shared_lock = threading.Lock()


def shared_analyzer() -> _Analyzer:
    """This process's one analyser (building it takes seconds and hundreds of MB)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = _Analyzer()
        return _shared


@dataclass(frozen=True)
class Yauaa(Enrichment):
    name = "yauaa_enrichment_config"
    vendors = (ENRICHMENTS_VENDOR,)
    criteria = ("1-0-*",)

    cache_size: int
    analyse: Callable[[str, tuple], dict] = field(repr=False, compare=False)
    hint_headers: frozenset = field(repr=False, compare=False)

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any], ctx: LoadContext) -> "Yauaa":
        try:
            analyzer = shared_analyzer()
        except ConfigError:
            raise
        except (RuntimeError, OSError) as exc:  # mvn missing or failing, a JVM that does not start
            raise ConfigError(f"$.data: YAUAA cannot be started: {exc}") from None
        cache_size = parameters.get("cacheSize")
        if cache_size is None:
            cache_size = analyzer.default_cache_size
        analyse = lru_cache(maxsize=max(cache_size, 0))(analyzer.analyse)
        return cls(cache_size=cache_size, analyse=analyse, hint_headers=analyzer.hint_headers)

    def client_hints(self, ctx: EventContext) -> tuple[tuple[str, str], ...]:
        """The request's client-hint headers YAUAA reads, split as Snowplow splits them (last one of a name wins)."""
        lines = getattr(ctx.payload, "headers", None)
        if not lines:
            return ()
        found: dict[str, str] = {}
        hint_headers = self.hint_headers
        for line in lines:
            name, sep, value = line.partition(": ")
            if sep and name.lower() in hint_headers:
                found.pop(name, None)
                found[name] = value.lstrip(_JAVA_BLANKS)
        return tuple(found.items())

    def enrich(self, event: Any, ctx: EventContext) -> None:
        useragent = event.useragent
        if not useragent:
            ctx.derived.append({"schema": SCHEMA, "data": dict(DEFAULT_RESULT)})
            return
        # a copy: later enrichments (PII) may rewrite entities in place
        ctx.derived.append({"schema": SCHEMA, "data": dict(self.analyse(useragent, self.client_hints(ctx)))})
