"""Base64url (tracker protocol ``cx``/``ue_px``), pure Python.

The twin of ``ext/_base64url.pyx``: same functions, results, exceptions and
messages.

``decode_base64url(s)`` accepts the URL-safe alphabet (``-``, ``_``) and the
standard one (``+``, ``/``), even mixed in one string, with the ``=`` padding
or without it.  It rejects, with :class:`ext.Base64Error` (a ``ValueError``),
checked in this order:

- any other character (whitespace and line breaks included), or an ``=``
  before the trailing padding: the first one is reported with its position;
- a length, padding excluded, of 4n+1 characters (no whole number of bytes);
- padding that is present but not exactly the amount the length needs
  (``QQ=``, ``QUJD=``, ``=``).

Bits left over in the last character are ignored (``QR`` decodes like ``QQ``),
as Python's ``base64.urlsafe_b64decode`` and Snowplow's decoder do.

``encode_base64url(b, pad=False)`` encodes bytes-like ``b`` with the URL-safe
alphabet, without padding unless ``pad``.

A non-``str`` argument to the decoder, or a non-bytes-like one to the encoder,
is a :class:`TypeError`.
"""

from __future__ import annotations

import binascii
import re

from . import errors

__all__ = ["decode_base64url", "encode_base64url"]

_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/_-]")
_TO_STANDARD = str.maketrans("-_", "+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def decode_base64url(s: str) -> bytes:
    """Decode base64 text (URL-safe or standard alphabet, padding optional).

    Raises :class:`ext.Base64Error` for a character outside both alphabets, a
    misplaced ``=``, a length of 4n+1 or wrong padding (see the module
    docstring), and :class:`TypeError` if ``s`` is not a ``str``.
    """
    if not isinstance(s, str):
        raise errors.not_str("decode_base64url", s)
    length = len(s)
    while length and s[length - 1] == "=":
        length -= 1
    padding = len(s) - length
    bad = _NOT_BASE64.search(s, 0, length)
    if bad is not None:
        position = bad.start()
        if s[position] == "=":
            raise errors.base64_misplaced_padding(position)
        raise errors.base64_bad_character(s[position], position)
    if length % 4 == 1:
        raise errors.base64_bad_length(length)
    if padding and padding != (-length) % 4:
        raise errors.base64_bad_padding(padding, length)
    text = s[:length].translate(_TO_STANDARD) + "=" * ((-length) % 4)
    return binascii.a2b_base64(text)


def encode_base64url(b, pad: bool = False) -> str:
    """Encode bytes-like ``b`` as URL-safe base64 (``-``, ``_``); ``=`` padding only if ``pad``."""
    if type(b) is not bytes:
        try:
            b = memoryview(b).tobytes()
        except TypeError:
            raise TypeError(
                f"encode_base64url() argument must be a bytes-like object, not {type(b).__name__}"
            ) from None
    text = binascii.b2a_base64(b, newline=False).translate(_TO_URLSAFE).decode("ascii")
    return text if pad else text.rstrip("=")
