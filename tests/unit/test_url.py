"""ext.split_url: the page_url*/refr_url* parts, on both implementations."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ext


@pytest.mark.parametrize("url,parts", [
    ("https://Shop.ACME.com:8443/a/b?x=1&y=2#frag", ("https", "shop.acme.com", 8443, "/a/b", "x=1&y=2", "frag")),
    ("http://acme.com", ("http", "acme.com", 80, None, None, None)),
    ("HTTPS://acme.com/", ("https", "acme.com", 443, "/", None, None)),
    ("http://acme.com:/p", ("http", "acme.com", 80, "/p", None, None)),
    ("http://acme.com?q#", ("http", "acme.com", 80, None, "q", None)),
    ("http://acme.com/#a?b", ("http", "acme.com", 80, "/", None, "a?b")),
    ("ftp://files.acme.com/x", ("ftp", "files.acme.com", None, "/x", None, None)),
    ("android-app://com.acme/path", ("android-app", "com.acme", None, "/path", None, None)),
    ("http://user:pw@Acme.com:81/", ("http", "acme.com", 81, "/", None, None)),
    ("http://[2001:DB8::1]:8080/", ("http", "2001:db8::1", 8080, "/", None, None)),
    ("https://acme.com/a b", ("https", "acme.com", 443, "/a%20b", None, None)),
    ("https://acmé.com/ü?x=ö", ("https", "acmé.com", 443, "/ü", "x=ö", None)),
])
def test_urls_split_into_their_parts(codec, url, parts):
    assert codec.split_url(url) == parts


@pytest.mark.parametrize("url", [
    "", "acme.com/path", "/relative", "mailto:someone@acme.com", "http://", "http://:80/",
    "http://acme.com:99999/", "http://acme.com:8x/", "http://acme.com:80:81/", "http://[::1/",
])
def test_urls_without_scheme_host_or_with_a_bad_port_give_none(codec, url):
    assert codec.split_url(url) is None


url_chars = st.sampled_from(list("aZ09:/?#@[]%.-+ _~=&\\\t") + ["é", "\u2028"])


@settings(max_examples=1500, deadline=None)
@given(st.one_of(
    st.text(url_chars, max_size=30),
    st.tuples(st.sampled_from(["http", "HTTPS", "ftp", "a+b", "1x"]), st.sampled_from(["://", ":/", ":"]),
              st.text(url_chars, max_size=25)).map("".join),
))
def test_compiled_and_python_agree(url):
    impls = ext.implementations()
    if "compiled" not in impls:
        pytest.skip("compiled extension not available")
    assert impls["compiled"].split_url(url) == impls["python"].split_url(url)
