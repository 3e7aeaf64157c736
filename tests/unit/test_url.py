"""ext.split_url: the page_url*/refr_url* parts, on both implementations."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ext


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
])
def test_urls_split_into_their_parts(codec, url, parts):
    assert codec.split_url(url) == parts


@pytest.mark.parametrize("url", [
    # what java.net.URI refuses
    "http://", "http://[::1/", "https://[::1]/x?a=%zz", "http://acme.com/a|b", "http://acme.com/a[1]",
    "http://acme.com/#a#b", "http://acme.com/a%2", "http://acme.com/\\", ":x", "1x:/y", "http://a.com/{}",
])
def test_urls_java_refuses_give_none(codec, url):
    assert codec.split_url(url) is None


url_chars = st.sampled_from(list("aZ09:/?#@[]%.-+ _~=&\\\t|^\"<>{}") + ["é", "\u2028", "%2F", "%zz", "%A"])


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
