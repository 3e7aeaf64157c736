"""What a query through the SQL endpoint may do, decided on ClickHouse's own parse of it.

The SQL endpoint (:mod:`snowmelt.sql_endpoint`) shares ClickHouse's engine
with the loader that writes the store, inside the same process, with that
process's files, network and memory.  So the endpoint does not rely on a list
of things to refuse: a statement runs only if every part of its syntax tree,
as ClickHouse's parser builds it (``EXPLAIN AST`` of the exact text that will
run), is on an allow-list:

* **statements**: ``SELECT`` (with ``UNION``/``INTERSECT``/``EXCEPT``, ``WITH``,
  joins, window functions, subqueries), ``DESCRIBE``, ``EXISTS``, ``SHOW
  TABLES``/``DATABASES``, ``SHOW CREATE TABLE`` and ``EXPLAIN`` of these; no
  ``INTO OUTFILE``;
* **tables**: those of the store's database (unqualified names resolve there),
  and a few ``system`` tables that describe the schema and the engine
  (:data:`SYSTEM_TABLES`); no other database, no dictionaries, and the right
  side of ``IN`` is checked like a ``FROM``;
* **table functions**: the ones that only generate rows (:data:`TABLE_FUNCTIONS`:
  ``numbers``, ``values``, ...), never ``file``, ``url``, ``s3``, ``remote``,
  ``mysql``, ``executable``, ``python``, ``merge``, ``dictionary`` and the rest;
* **functions**: the ones listed in ``sql_functions.txt`` beside this module:
  ClickHouse's computational categories (arithmetic, strings, dates, arrays,
  JSON, URLs, hashes, aggregates and their combinators, ...) and a reviewed
  handful of the "Other" category; nothing that reads files (``file``,
  embedded dictionaries), reaches the network (``ai*``, ``url``), looks into
  the process (introspection, ``getSetting``, ``hostName``, ``currentUser``,
  ``filesystem*``) or stalls it (``sleep``).  ``python -m snowmelt.sql_policy``
  writes the list again from the engine's own catalogue for review after an
  engine upgrade; a name the engine adds is refused until it is listed;
* **output formats** (:data:`FORMATS`): text, JSON, CSV/TSV, Native, Arrow,
  Parquet, Pretty and friends; not Protobuf, CapnProto, Template or the others
  that read or write schema files;
* **settings**, from the URL or a trailing ``SETTINGS`` clause
  (:data:`SETTINGS`): formatting, and limits that may only be lowered; a
  ``SETTINGS`` clause anywhere else (inside a subquery) is refused.

An identifier holding an escape sequence or a control character is refused
too: ``EXPLAIN AST`` prints identifiers as they are, and one with a newline
could forge a line of the tree.

:func:`check_tree` raises :class:`PolicyError` with ClickHouse's error code
for what it refuses (``446 FUNCTION_NOT_ALLOWED``, ``497 ACCESS_DENIED``,
``164 READONLY``, ``73 UNKNOWN_FORMAT``, ``392 QUERY_IS_PROHIBITED``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PolicyError", "Node", "parse_tree", "check_tree", "FUNCTIONS", "FORMATS", "SETTINGS",
           "LIMIT_SETTINGS", "SYSTEM_TABLES", "TABLE_FUNCTIONS", "check_setting", "check_format",
           "refuse_escaped_identifiers"]

FUNCTIONS_FILE = Path(__file__).with_name("sql_functions.txt")


class PolicyError(Exception):
    """A query refused by the policy: ``code`` and ``name`` are ClickHouse's."""

    def __init__(self, code: int, message: str, name: str) -> None:
        super().__init__(f"Code: {code}. DB::Exception: {message}. ({name})")
        self.code = code


def _load_functions() -> tuple[frozenset[str], frozenset[str]]:
    exact, insensitive = set(), set()
    for line in FUNCTIONS_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, flag = line.partition(" ")
        exact.add(name)
        if flag.strip() == "i":
            insensitive.add(name.lower())
    # the parser's own forms: lambdas, and the CAST that `x::T` becomes
    exact.update({"lambda", "_CAST"})
    return frozenset(exact), frozenset(insensitive)


FUNCTIONS, _FUNCTIONS_CI = _load_functions()

#: Aggregate-function combinators (``countIf``, ``uniqMerge``, ``sumArrayOrNull``...).
_COMBINATORS = ("ArgMax", "ArgMin", "Array", "Distinct", "ForEach", "If", "Map", "Merge", "Null", "OrDefault",
                "OrNull", "Resample", "SimpleState", "State", "Tuple")

#: Table functions that only generate rows.
TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generateSeries",
                             "generate_series", "view", "null"})

#: ``system`` tables that describe the schema and the engine, readable by anyone who may query.
SYSTEM_TABLES = frozenset({"one", "numbers", "numbers_mt", "zeros", "zeros_mt", "databases", "tables", "columns",
                           "functions", "table_functions", "aggregate_function_combinators", "formats",
                           "data_type_families", "table_engines", "time_zones", "settings", "parts",
                           "build_options"})

#: Output formats that write nothing but the answer (lower case).
FORMATS = frozenset(name.lower() for name in (
    "TabSeparated", "TabSeparatedRaw", "TabSeparatedWithNames", "TabSeparatedWithNamesAndTypes",
    "TabSeparatedRawWithNames", "TabSeparatedRawWithNamesAndTypes", "TSV", "TSVRaw", "TSVWithNames",
    "TSVWithNamesAndTypes", "TSVRawWithNames", "TSVRawWithNamesAndTypes", "Raw", "RawWithNames",
    "RawWithNamesAndTypes", "CSV", "CSVWithNames", "CSVWithNamesAndTypes", "JSON", "JSONStrings", "JSONCompact",
    "JSONCompactStrings", "JSONColumns", "JSONColumnsWithMetadata", "JSONCompactColumns", "JSONEachRow",
    "JSONStringsEachRow", "JSONCompactEachRow", "JSONCompactEachRowWithNames",
    "JSONCompactEachRowWithNamesAndTypes", "JSONCompactStringsEachRow", "JSONCompactStringsEachRowWithNames",
    "JSONCompactStringsEachRowWithNamesAndTypes", "JSONEachRowWithProgress", "JSONStringsEachRowWithProgress",
    "JSONObjectEachRow", "JSONLines", "NDJSON", "PrettyJSONEachRow", "PrettyJSONLines", "PrettyNDJSON", "XML",
    "Values", "Vertical", "Markdown", "MD", "Pretty", "PrettyCompact", "PrettyCompactMonoBlock",
    "PrettySpace", "PrettyNoEscapes", "PrettyCompactNoEscapes", "PrettySpaceNoEscapes", "PrettyMonoBlock",
    "Native", "RowBinary", "RowBinaryWithNames", "RowBinaryWithNamesAndTypes", "Arrow", "ArrowStream",
    "Parquet", "ORC", "Avro", "BSONEachRow", "MsgPack", "Null", "SQLInsert", "LineAsString"))

#: Limits the endpoint sets on every query; a client may lower them, never raise them.
LIMIT_SETTINGS = frozenset({"max_execution_time", "max_memory_usage", "max_result_bytes", "max_result_rows",
                            "max_rows_to_read", "max_bytes_to_read", "max_threads", "max_block_size",
                            "limit"})

#: Settings a client may give (URL parameters or a trailing SETTINGS clause): formatting and limits.
SETTINGS = frozenset({
    "output_format_json_quote_64bit_integers", "output_format_json_quote_64bit_floats",
    "output_format_json_quote_denormals", "output_format_json_quote_decimals",
    "output_format_json_escape_forward_slashes", "output_format_json_named_tuples_as_objects",
    "output_format_json_array_of_rows", "output_format_json_validate_utf8", "output_format_json_pretty_print",
    "output_format_write_statistics", "output_format_decimal_trailing_zeros",
    "output_format_csv_crlf_end_of_line", "output_format_tsv_crlf_end_of_line",
    "output_format_pretty_max_rows", "output_format_pretty_max_column_pad_width",
    "output_format_pretty_max_value_width", "output_format_pretty_color", "output_format_pretty_grid_charset",
    "output_format_pretty_row_numbers", "output_format_arrow_string_as_string",
    "output_format_arrow_low_cardinality_as_dictionary", "output_format_arrow_compression_method",
    "output_format_parquet_string_as_string", "output_format_parquet_compression_method",
    "output_format_native_encode_types_in_binary_format", "output_format_binary_encode_types_in_binary_format",
    "output_format_native_write_json_as_string", "output_format_binary_write_json_as_string",
    "format_csv_delimiter", "format_tsv_null_representation", "format_csv_null_representation",
    "date_time_output_format", "date_time_input_format", "session_timezone", "extremes", "join_use_nulls",
    "aggregate_functions_null_for_empty", "final", "offset", "result_overflow_mode", "timeout_overflow_mode",
    "read_overflow_mode", "enable_analyzer", "allow_experimental_analyzer",
}) | LIMIT_SETTINGS

_COMPOUND_CHILD = {"TableExpression"}
_READ_ROOTS = {"SelectWithUnionQuery", "SelectIntersectExceptQuery", "DescribeQuery", "ExistsTableQuery",
               "ShowTables", "ShowCreateTableQuery", "Explain"}
_NODES = {"SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "ExpressionList",
          "TablesInSelectQuery", "TablesInSelectQueryElement", "TableExpression", "TableJoin", "ArrayJoin",
          "TableIdentifier", "Identifier", "Function", "Literal", "Asterisk", "QualifiedAsterisk",
          "ColumnsRegexpMatcher", "ColumnsListMatcher", "QualifiedColumnsRegexpMatcher",
          "QualifiedColumnsListMatcher", "ColumnsTransformerList", "ColumnsApplyTransformer",
          "ColumnsExceptTransformer", "ColumnsReplaceTransformer", "ColumnsReplaceTransformerReplacement",
          "Subquery", "OrderByElement", "WithElement", "WindowDefinition", "WindowListElement", "SampleRatio",
          "QueryParameter", "Set", "InterpolateElement", "DescribeQuery", "ExistsTableQuery", "ShowTables",
          "ShowCreateTableQuery", "Explain", "CollationElement"}
_IN_FUNCTIONS = {"in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn",
                 "globalNotNullIn"}
_EXPLAIN_KINDS = {"EXPLAIN", "EXPLAIN AST", "EXPLAIN SYNTAX", "EXPLAIN PLAN", "EXPLAIN PIPELINE",
                  "EXPLAIN ESTIMATE", "EXPLAIN QUERY TREE"}
_LINE = re.compile(r"^( *)([A-Za-z]+)(?: (.*?))?(?: \(children \d+\))?$")
_ALIAS = re.compile(r" \(alias [^()]*\)$")


@dataclass
class Node:
    """One node of ``EXPLAIN AST``: its type, the text after it (a name, a literal), its children."""

    kind: str
    text: str = ""
    children: list["Node"] = field(default_factory=list)


def parse_tree(explain: str) -> Node:
    """``EXPLAIN AST`` output -> the root :class:`Node` (one space of indent per level)."""
    root: Node | None = None
    stack: list[Node] = []
    for line in explain.splitlines():
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise PolicyError(62, f"cannot read the parsed query at {line[:80]!r}", "SYNTAX_ERROR")
        depth = len(match.group(1))
        node = Node(match.group(2), _ALIAS.sub("", match.group(3) or ""))
        if depth == 0:
            if root is not None:
                raise PolicyError(62, "more than one statement", "SYNTAX_ERROR")
            root = node
            stack = [node]
            continue
        if depth > len(stack):
            raise PolicyError(62, f"cannot read the parsed query at {line[:80]!r}", "SYNTAX_ERROR")
        del stack[depth:]
        stack[-1].children.append(node)
        stack.append(node)
    if root is None:
        raise PolicyError(62, "Empty query", "SYNTAX_ERROR")
    return root


def function_allowed(name: str) -> bool:
    """True for a listed function, or a listed aggregate function under combinators (``uniqIfMerge``)."""
    if name in FUNCTIONS or name.lower() in _FUNCTIONS_CI:
        return True
    base = name
    while True:
        for suffix in _COMBINATORS:
            if base.endswith(suffix) and len(base) > len(suffix):
                base = base[:-len(suffix)]
                if base in FUNCTIONS or base.lower() in _FUNCTIONS_CI:
                    return True
                break
        else:
            return False


def check_format(name: str) -> None:
    if name.lower() not in FORMATS:
        raise PolicyError(73, f"Format {name} is not allowed through the snowmelt SQL endpoint "
                              f"(it may read or write files)", "UNKNOWN_FORMAT")


def check_setting(name: str) -> None:
    if name not in SETTINGS:
        raise PolicyError(164, f"Cannot modify '{name}' setting through the snowmelt SQL endpoint "
                               f"(allowed: output formatting and lower limits)", "READONLY")


_QUOTED_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
_QUOTED_NAME = re.compile(r"`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"")


def refuse_escaped_identifiers(canonical: str) -> None:
    """Refuse a formatted query with a control character, or a quoted name holding an escape sequence."""
    if any(ord(ch) < 0x20 for ch in canonical):
        raise PolicyError(62, "control characters outside string literals are not allowed here", "SYNTAX_ERROR")
    for name in _QUOTED_NAME.findall(_QUOTED_STRING.sub("''", canonical)):
        if "\\" in name:
            raise PolicyError(62, f"identifier {name[:40]} holds an escape sequence; rename it", "SYNTAX_ERROR")


class _Checker:
    def __init__(self, database: str) -> None:
        self.database = database
        self.sets = 0

    def table(self, name: str) -> None:
        database, dot, table = name.partition(".")
        if not dot:
            return  # the store's database (the current one), or a WITH name
        if database == self.database:
            return
        if database == "system" and table in SYSTEM_TABLES:
            return
        raise PolicyError(497, f"Not enough privileges: the snowmelt SQL endpoint reads the tables of "
                               f"{self.database} and the system tables {', '.join(sorted(SYSTEM_TABLES))}; "
                               f"not {name}", "ACCESS_DENIED")

    def database_name(self, name: str) -> None:
        if name not in (self.database, "system"):
            raise PolicyError(497, f"Not enough privileges: database {name} is not served here", "ACCESS_DENIED")

    def visit(self, node: Node, parent: Node | None) -> None:
        kind = node.kind
        if kind not in _NODES:
            raise PolicyError(164, f"{kind} is not allowed through the snowmelt SQL endpoint", "READONLY")
        if kind == "Set":
            self.sets += 1
        elif kind == "TableIdentifier":
            self.table(node.text)
        elif kind == "Function":
            name = node.text
            if parent is not None and parent.kind == "TableExpression":
                if name not in TABLE_FUNCTIONS:
                    raise PolicyError(446, f"Table function {name} is not allowed through the snowmelt SQL "
                                           f"endpoint", "FUNCTION_NOT_ALLOWED")
            elif not function_allowed(name):
                raise PolicyError(446, f"Function {name} is not allowed through the snowmelt SQL endpoint",
                                  "FUNCTION_NOT_ALLOWED")
            if name in _IN_FUNCTIONS and node.children and len(node.children[0].children) == 2:
                right = node.children[0].children[1]
                if right.kind == "Identifier":
                    self.table(right.text)
        elif kind in ("ExistsTableQuery", "ShowCreateTableQuery"):
            self.table(node.text.replace(" ", ".", 1))  # "database table", or "table"
        elif kind == "ShowTables":
            # FROM database, then the FORMAT the endpoint always appends
            for child in [c for c in node.children if c.kind == "Identifier"][:-1]:
                self.database_name(child.text)
        elif kind == "Explain":
            if node.text not in _EXPLAIN_KINDS:
                raise PolicyError(164, f"{node.text} is not allowed through the snowmelt SQL endpoint", "READONLY")
        elif kind == "SelectWithUnionQuery" and any(c.kind == "Literal" for c in node.children):
            raise PolicyError(392, "INTO OUTFILE is not allowed through the snowmelt SQL endpoint",
                              "QUERY_IS_PROHIBITED")
        if kind == "SelectWithUnionQuery":
            for child in node.children:
                if child.kind == "Identifier":  # FORMAT x
                    check_format(child.text)
        for child in node.children:
            self.visit(child, node)


def check_tree(root: Node, database: str) -> int:
    """Raise :class:`PolicyError` unless every node of ``root`` is allowed; return the number of ``Set`` nodes."""
    if root.kind not in _READ_ROOTS:
        raise PolicyError(164, "Cannot execute query in readonly mode", "READONLY")
    checker = _Checker(database)
    checker.visit(root, None)
    return checker.sets


# --------------------------------------------------------------------------- the function list

#: ClickHouse function categories that only compute on their arguments.
_CATEGORIES = ("Aggregate Functions", "Arithmetic", "Arrays", "Bit", "Bitmap", "Comparison", "Conditional",
               "Dates and Times", "Distance", "Encoding", "Encryption", "Financial", "Geo", "Geo Polygon", "Hash",
               "IP Address", "JSON", "Logical", "Map", "Mathematical", "Null", "Random Number", "Rounding",
               "String", "String Replacement", "String Search", "String Splitting", "Time Series",
               "Time Window", "Tuple", "Type Conversion", "URL", "UUID")
#: Reviewed members of the "Other" category: formatting, types and block helpers only.
_OTHER = ("bar", "blockSize", "byteSize", "countDigits", "currentDatabase", "defaultValueOfArgumentType",
          "defaultValueOfTypeName", "errorCodeToName", "finalizeAggregation", "formatReadableDecimalSize",
          "formatReadableQuantity", "formatReadableSize", "formatReadableTimeDelta", "getSizeOfEnumType",
          "getSubcolumn", "identity", "ignore", "indexHint", "initializeAggregation", "isConstant",
          "isDecimalOverflow", "materialize", "neighbor", "parseReadableSize", "parseReadableSizeOrNull",
          "parseReadableSizeOrZero", "parseTimeDelta", "rowNumberInAllBlocks", "rowNumberInBlock",
          "runningAccumulate", "runningDifference", "runningDifferenceStartingWithFirstValue",
          "toColumnTypeName", "toTypeName", "transform", "variantElement", "variantType", "version",
          "visibleWidth", "MACNumToString", "MACStringToNum", "MACStringToOUI")


def write_function_list(query) -> int:
    """Write ``sql_functions.txt`` from the engine's catalogue (``query(sql) -> rows``); the count written."""
    categories = ", ".join("'" + c + "'" for c in _CATEGORIES)
    others = ", ".join("'" + c + "'" for c in _OTHER)
    rows = query(
        "SELECT f.name, f.case_insensitive FROM system.functions AS f "
        "LEFT JOIN system.functions AS t ON t.name = f.alias_to "
        f"WHERE if(f.alias_to = '', f.categories, t.categories) IN ({categories}) "
        f"OR if(f.alias_to = '', f.name, f.alias_to) IN ({others}) ORDER BY f.name")
    lines = ["# Functions the SQL endpoint allows (see snowmelt/sql_policy.py); one a line, ' i' = any case.",
             "# Written by `python -m snowmelt.sql_policy` from the engine's catalogue, then reviewed."]
    lines += [f"{name} i" if int(ci) else name for name, ci in rows]
    FUNCTIONS_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(rows)


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    import json
    import tempfile

    from chdb import session

    with tempfile.TemporaryDirectory() as folder:
        engine = session.Session(folder)

        def run(sql):
            return [tuple(r) for r in json.loads(engine.query(sql, "JSONCompact").bytes())["data"]]

        print(f"{write_function_list(run)} functions written to {FUNCTIONS_FILE}")
        engine.close()
