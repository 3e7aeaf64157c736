"""ext.split_url: the page_url*/refr_url* parts, on both implementations."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ext
from tests.timing import fastest


@pytest.mark.parametrize("url,parts", [
    # java.net.URI's parts as Snowplow's ConversionUtils.explodeUri sets them (enrich 3.9.0): scheme and host as
    # written, the port 443 for "https", else 80, raw path, query and fragment
    ("https://Shop.ACME.com:8443/a/b?x=1&y=2#frag", ("https", "Shop.ACME.com", 8443, "/a/b", "x=1&y=2", "frag")),
    ("http://acme.com", ("http", "acme.com", 80, None, None, None)),
    ("HTTPS://acme.com/", ("HTTPS", "acme.com", 80, "/", None, None)),
    ("http://acme.com:/p", ("http", "acme.com", 80, "/p", None, None)),
    ("http://acme.com?q#", ("http", "acme.com", 80, None, "q", None)),
    ("http://acme.com/#a?b", ("http", "acme.com", 80, "/", None, "a?b")),
    ("http://acme.com/a?b=[1]", ("http", "acme.com", 80, "/a", "b=[1]", None)),
    ("http://acme.com/a%2Fb?q=%E2%82%AC", ("http", "acme.com", 80, "/a%2Fb", "q=%E2%82%AC", None)),
    ("ftp://files.acme.com/x", ("ftp", "files.acme.com", 80, "/x", None, None)),
    ("android-app://com.google.android.gm", ("android-app", "com.google.android.gm", 80, None, None, None)),
    ("android-app://com.acme/path", ("android-app", "com.acme", 80, "/path", None, None)),
    ("http://user:pw@Acme.com:81/", ("http", "Acme.com", 81, "/", None, None)),
    ("http://[2001:DB8::1]:8080/", ("http", "[2001:DB8::1]", 8080, "/", None, None)),
    ("https://[::1]/x?a=%25zz", ("https", "[::1]", 443, "/x", "a=%25zz", None)),
    ("http://1.2.3.4:8/", ("http", "1.2.3.4", 8, "/", None, None)),
    ("http://localhost/", ("http", "localhost", 80, "/", None, None)),
    ("http://acme.com./", ("http", "acme.com.", 80, "/", None, None)),
    ("https://acme.com/a b", ("https", "acme.com", 443, "/a%20b", None, None)),
    ("https://shop.acme.com:99999/", ("https", "shop.acme.com", 99999, "/", None, None)),
    # a relative reference: no scheme, no host
    ("not a url", (None, None, 80, "not%20a%20url", None, None)),
    ("/relative?x", (None, None, 80, "/relative", "x", None)),
    # an opaque URI: no host, no path
    ("mailto:someone@acme.com", ("mailto", None, 80, None, None, None)),
    # an authority java.net.URI cannot read as a server is registry-based: no host, no port
    ("http://my_host.acme.com/x", ("http", None, 80, "/x", None, None)),
    ("https://acmé.com/ü?x=ö", ("https", None, 443, "/ü", "x=ö", None)),
    ("http://1.2.3.999/", ("http", None, 80, "/", None, None)),
    ("http://acme.1com/", ("http", None, 80, "/", None, None)),
    ("http://acme-.com/", ("http", None, 80, "/", None, None)),
    ("http://acme.com:8x/", ("http", None, 80, "/", None, None)),
    ("http://acme.com:80:81/", ("http", None, 80, "/", None, None)),
    ("http://acme.com:99999999999/", ("http", None, 80, "/", None, None)),
    ("http:///p", ("http", None, 80, "/p", None, None)),
    # an IPv6 reference with a scope id (java.net.URI on JDK 17 took each of these)
    ("http://[::%eth0]/", ("http", "[::%eth0]", 80, "/", None, None)),
    ("http://[fe80::1%eth0]:8080/x", ("http", "[fe80::1%eth0]", 8080, "/x", None, None)),
    ("http://[1234::5:1.2.3.4%eth0]", ("http", "[1234::5:1.2.3.4%eth0]", 80, None, None, None)),
])
def test_urls_split_into_their_parts(codec, url, parts):
    assert codec.split_url(url) == parts


@pytest.mark.parametrize("url", [
    # what java.net.URI refuses
    "http://", "http://[::1/", "https://[::1]/x?a=%zz", "http://acme.com/a|b", "http://acme.com/a[1]",
    "http://acme.com/#a#b", "http://acme.com/a%2", "http://acme.com/\\", ":x", "1x:/y", "http://a.com/{}",
    # IPv6 references JDK 17 refuses: a ':::', an empty scope id
    "http://[:ff:1:1:0:::1.2.3.4]/", "http://[1:::2]/", "http://[::1%]/",
])
def test_urls_java_refuses_give_none(codec, url):
    assert codec.split_url(url) is None


url_chars = st.sampled_from(list("aZ09:/?#@[]%.-+ _~=&\\\t|^\"<>{}") + ["é", "\u2028", "%2F", "%zz", "%A"])


@pytest.mark.both_implementations
@settings(max_examples=1500, deadline=None)
@given(st.one_of(
    st.lists(url_chars, max_size=30).map("".join),
    st.tuples(st.sampled_from(["http", "HTTPS", "ftp", "a+b", "1x"]), st.sampled_from(["://", ":/", ":"]),
              st.lists(url_chars, max_size=25).map("".join)).map("".join),
))
def test_compiled_and_python_agree(url):
    impls = ext.implementations()
    if "compiled" not in impls:
        pytest.skip("compiled extension not available")
    assert impls["compiled"].split_url(url) == impls["python"].split_url(url)


@pytest.mark.parametrize("char", list("#?%[]\"<>\\^`{|} \t\x00\x7f") + ["é", "%zz", "%4", "%41", "##", "\u2028"])
def test_a_character_anywhere_in_a_long_url_is_seen(char):
    # the compiled path loop skips blocks of 64 ordinary characters at a time: a character that matters
    # must be found at every offset within and across those blocks
    impls = ext.implementations()
    if "compiled" not in impls:
        pytest.skip("compiled extension not available")
    prefix = "https://shop.example/p"
    for at in range(0, 200):
        url = prefix + "a" * at + char + "b" * (200 - at)
        assert impls["compiled"].split_url(url) == impls["python"].split_url(url), (char, at)


def test_a_long_url_is_split_in_well_under_a_millisecond_a_megabyte():
    compiled = ext.implementations().get("compiled")
    if compiled is None:
        pytest.skip("compiled extension not available")
    url = "https://shop.example/?" + "&".join(f"utm_source{i}=x" for i in range(60_000))  # 1 MB
    seconds, parts = fastest(lambda: compiled.split_url(url))
    assert parts[4] == url[22:]
    assert seconds < 0.005  # 0.3 ms here; a byte at a time took 2 ms


@pytest.mark.parametrize("piece", ["..", ".-", "-.", "-", ".", "_", "é", ":", ":8", "@", "[", "%41", "A", "9", "z-9"])
def test_a_host_is_checked_at_every_offset(piece):
    # the compiled host check reads 16 characters (and their successors) at a time: a character or pair
    # that matters must be judged alike at every offset, and as the first label, the last or alone
    impls = ext.implementations()
    if "compiled" not in impls:
        pytest.skip("compiled extension not available")
    for at in range(0, 40):
        for host in ("a" * at + piece + "b" * (40 - at), "a." * at + piece + ".b" * (20 - at // 2),
                     "x" + piece * (at % 3 + 1), piece + "1." * at + "9", "w." * at + piece + "."):
            url = f"https://{host}/p?q=1"
            assert impls["compiled"].split_url(url) == impls["python"].split_url(url), (piece, host)


def test_a_host_of_many_labels_is_split_in_well_under_a_millisecond():
    compiled = ext.implementations().get("compiled")
    if compiled is None:
        pytest.skip("compiled extension not available")
    url = "https://" + "a." * 240_000 + "www.google.com/search?q=x"  # 480 KB, one POST
    seconds, parts = fastest(lambda: compiled.split_url(url))
    assert parts[1].endswith(".www.google.com")
    assert seconds < 0.005  # 0.12 ms here; a character at a time took 2.3 ms
