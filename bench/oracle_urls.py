"""Page URLs and referrers read by Snowplow's enrich 3.9.0 beside snowmelt: random URLs, field for field.

    SP_ENRICH_WORK=/work/sp-enrich-work python -m bench.oracle_urls [--count 6000] [--seed 1] [--show 10]

Each URL goes through 3.9.0's own ``ConversionUtils.stringToUri`` and ``explodeUri`` (the oracle's enrich-kafka
jar, ``$SP_ENRICH_WORK/build/modules/kafka/target/scala-2.12/snowplow-enrich-kafka-3.9.0.jar``, called by a
small Java class compiled here with ``javac``) and through :mod:`processor.string_to_uri`. They agree when
3.9.0 takes the URL and snowmelt writes it and its six parts the same, or 3.9.0 refuses it and snowmelt's
message is 3.9.0's, word for word. The URLs are drawn from three generators, a third each: characters java.net.URI
or scala-uri treat apart, pieces of URLs (schemes, user info, hosts, ports, escapes), and IPv6 references in
every shape. Prints the counts and the first ``--show`` disagreements; exits 1 when there is one.
"""
from __future__ import annotations

import argparse
import base64
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from processor.string_to_uri import read_url

JAR = "build/modules/kafka/target/scala-2.12/snowplow-enrich-kafka-3.9.0.jar"

# one URL a line in base64; out: "L <message>", "N" (no URI), or "R <uri> <scheme> <host> <port> <path> <query>
# <fragment>", each base64 ("-" for none)
JAVA = """
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import com.snowplowanalytics.snowplow.enrich.common.utils.ConversionUtils$;

public class StringToUri {
    static String b64(Object o) {
        if (o == null) return "-";
        if (o instanceof scala.Option) {
            scala.Option<?> option = (scala.Option<?>) o;
            return option.isDefined() ? b64(option.get()) : "-";
        }
        return Base64.getEncoder().encodeToString(o.toString().getBytes(StandardCharsets.UTF_8));
    }

    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        String line;
        while ((line = in.readLine()) != null) {
            String url = new String(Base64.getDecoder().decode(line), StandardCharsets.UTF_8);
            scala.util.Either<String, scala.Option<java.net.URI>> read = ConversionUtils$.MODULE$.stringToUri(url);
            if (read.isLeft()) {
                out.println("L " + b64(read.left().get()));
            } else if (read.right().get().isEmpty()) {
                out.println("N");
            } else {
                java.net.URI uri = read.right().get().get();
                scala.Product parts = (scala.Product) ConversionUtils$.MODULE$.explodeUri(uri);
                StringBuilder row = new StringBuilder("R ").append(b64(uri));
                for (int i = 0; i < 6; i++) row.append(' ').append(b64(parts.productElement(i)));
                out.println(row);
            }
        }
    }
}
"""

ALPHABET = "aZ09.-_~%:/?#[]@!$&'()*+,;= |\\^{}\"<>`\t\x7f\u00e9\u00a0\u2028\U0001f600"
PIECES = ["http", "https", "x", "1a", "", ":", "//", "/", "?", "#", "@", "[", "]", "::", "::1", "1:2:3:4:5:6:7:8",
          "1::2::3", "fe80::1%eth0", "%", "%zz", "%41", "1.2.3.4", "256.1.1.1", "0001.2.3.4", "a.b-c.d", "-a", "a-",
          "a.1b", ":80", ":8a", ":99999999999", "user:pw@", "\u00e9", "\U0001f600", " ", "|", "ffff:", "12345",
          "::ffff:1.2.3.4", "%25", "[::1]", "[v1.x]", "urn:", "urn:ab:", "urn:a:", "URN:x-y:"]


def characters(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 14)))


def pieces(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8)))


def ipv6(rng: random.Random) -> str:
    body = ":".join(rng.choice(["1", "ff", "abcd", "12345", "", "0", "00000", "g", "1.2.3.4"])
                    for _ in range(rng.randint(0, 11)))
    if rng.random() < 0.5:
        at = rng.randint(0, len(body))
        body = body[:at] + "::" + body[at:]
    return (rng.choice(["http://", "//", "x://u@", "http://u:p@"]) + "[" + body
            + rng.choice(["]", "]", "", "]]", "]x", "]:", "]:8", "]:8a", "]:99999999999", "%eth0]", "/"])
            + rng.choice(["", "/", "/a|b", "?q", "#f", "|"]))


def urls(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return list(dict.fromkeys(rng.choice((characters, pieces, ipv6))(rng) for _ in range(count)))


def snowplows(urls_: list[str], jar: Path) -> list[tuple]:
    """3.9.0's reading of each URL: ("L", message), ("N",) or ("R", uri, scheme, host, port, path, query,
    fragment)."""
    def text(field: str) -> str | None:
        return None if field == "-" else base64.b64decode(field).decode("utf-8")

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "StringToUri.java").write_text(JAVA)
        subprocess.run(["javac", "-nowarn", "-cp", str(jar), "-d", tmp, str(Path(tmp) / "StringToUri.java")],
                       check=True, capture_output=True)
        lines = "".join(base64.b64encode(url.encode("utf-8", "surrogatepass")).decode() + "\n" for url in urls_)
        out = subprocess.run(["java", "-cp", f"{jar}:{tmp}", "StringToUri"], input=lines, capture_output=True,
                             text=True, check=True).stdout.splitlines()
    if len(out) != len(urls_):
        raise SystemExit(f"3.9.0 answered {len(out)} of {len(urls_)} URLs")
    return [(kind, *(text(field) for field in fields)) for kind, *fields in (line.split(" ") for line in out)]


def snowmelts(url: str) -> tuple:
    written, parts, failure = read_url(url)
    if parts is None:
        return ("L", failure)
    scheme, host, port, path, query, fragment = parts
    return ("R", written, scheme, host, str(port), path, query, fragment)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--show", type=int, default=10, help="disagreements printed")
    args = ap.parse_args()
    work = os.environ.get("SP_ENRICH_WORK")
    if not work or not (Path(work) / JAR).is_file():
        raise SystemExit(f"needs SP_ENRICH_WORK, the oracle's work folder holding {JAR}")
    drawn = urls(args.seed, args.count)
    theirs = snowplows(drawn, Path(work) / JAR)
    counts = {"R": 0, "L": 0, "N": 0}
    differing = []
    for url, their in zip(drawn, theirs):
        counts[their[0]] += 1
        ours = snowmelts(url)
        if ours != their:
            differing.append((url, their, ours))
    print(f"{len(drawn):,} URLs (seed {args.seed}): 3.9.0 took {counts['R']:,}, refused {counts['L']:,}, "
          f"gave no URI for {counts['N']:,}; snowmelt differs on {len(differing):,}")
    for url, their, ours in differing[:args.show]:
        print(f"  {url!r}\n    3.9.0:    {their}\n    snowmelt: {ours}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
