"""Who may use the browser-facing surfaces: the SQL endpoints, ``/micro`` and the dashboard.

Three checks, each a plain function so both apps (``snowmelt up`` and the
chdb loader's SQL port) apply the same rules:

* **Host** (:func:`host_allowed`): a request is answered only when its
  ``Host`` header names ``localhost``, an IP address literal, or one of the
  configured public names (``api.public_hosts``).  A DNS-rebinding page
  reaches the server under the attacker's own domain name, which is not in
  that list, so it gets 403 and never reads an answer.  (An IP literal cannot
  be rebound: a page whose origin is an IP address is that address.)
* **Client** (:func:`is_local_client`): a peer on the loopback interface that
  does not forward someone else (no ``Forwarded``/``X-Forwarded-For``/
  ``X-Real-IP``).
* **Token** (:func:`token_refusal`): beyond the local machine a token is
  required, compared in constant time; it is read from headers only
  (``Authorization: Bearer``, ``X-Snowmelt-Token``; the SQL port also accepts
  what ClickHouse clients send), never from a URL that servers and proxies log.

Refusals of the ``/micro`` and dashboard surfaces are JSON, ``{"error": CODE,
"message": TEXT}``, with CODE one of ``host_not_allowed``, ``local_only``,
``token_required`` (401, ``WWW-Authenticate: Bearer``) and ``wrong_token``; the
dashboard page shows the message.  ``local_only`` says both ways in from another
machine: ``up.api_token``, or an SSH tunnel to the loopback port (its command
written out with this server's port).
"""
from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Iterable

from aiohttp import web

__all__ = ["is_loopback_host", "host_allowed", "host_refusal", "is_local_client", "bearer_token", "token_refusal",
           "local_only_message", "refusal", "LOCAL_NAMES"]

#: Names always answered besides IP literals.
LOCAL_NAMES = frozenset({"localhost"})
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def is_loopback_host(host: str) -> bool:
    """True for an address that only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The name part of a ``Host`` header value: ``[::1]:8123`` -> ``::1``, ``Example.com.:80`` -> ``example.com``."""
    header = header.strip()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else ""
    name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return name.rstrip(".").lower()


def host_allowed(header: str | None, public_hosts: Iterable[str] = ()) -> bool:
    """True when a request with this ``Host`` header may be answered (see the module docstring)."""
    if not header:
        return False  # HTTP/1.1 requires it; a browser always sends it
    name = _host_name(header)
    if not name:
        return False
    if name in LOCAL_NAMES or name in {h.rstrip(".").lower() for h in public_hosts}:
        return True
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
        return True
    except ValueError:
        return False


def is_local_client(request: web.BaseRequest) -> bool:
    """True for a peer on the loopback interface that is not a proxy forwarding someone else."""
    try:
        loopback = ipaddress.ip_address((request.remote or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False
    return loopback and not any(h in request.headers for h in _PROXY_HEADERS)


def bearer_token(request: web.BaseRequest) -> str:
    """The token a request carries as ``Authorization: Bearer`` or ``X-Snowmelt-Token`` ("" when none)."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-Snowmelt-Token", "").strip()


def refusal(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    """The JSON refusal the browser-facing surfaces answer (see the module docstring)."""
    return web.Response(status=status, text=json.dumps({"error": code, "message": message}),
                        content_type="application/json", headers=headers)


def host_refusal(request: web.BaseRequest, public_hosts: Iterable[str] = ()) -> web.Response | None:
    """None when ``request``'s Host is one this server answers for, else the 403 ``host_not_allowed``."""
    if host_allowed(request.headers.get("Host"), public_hosts):
        return None
    return refusal(403, "host_not_allowed",
                   f"this server does not answer for the host name {_host_name(request.headers.get('Host', ''))!r}; "
                   f"reach it as localhost or by IP address, or add the name to api.public_hosts")


def _local_port(request: web.BaseRequest) -> int | None:
    """The port this server answered ``request`` on (its socket's, not the Host header's), when known."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, (tuple, list)) and len(sockname) >= 2 and isinstance(sockname[1], int):
        return sockname[1]
    return None


def local_only_message(request: web.BaseRequest) -> str:
    """What a client beyond this machine is told while ``up.api_token`` is empty: why, and the two ways in.

    The SSH tunnel names the port this server listens on and the host name
    the client used, so it can be copied as it is; through a tunnel the
    client is on the loopback interface, which needs no token.
    """
    port = _local_port(request)
    name = _host_name(request.headers.get("Host", "")) or "THIS-HOST"
    forward = f"{port}:127.0.0.1:{port}" if port else "PORT:127.0.0.1:PORT"
    local = f"http://localhost:{port}/" if port else "http://localhost:PORT/"
    return ("this server gives its API and the dashboard's data only to clients on its own machine. "
            "To use them from another machine, either set up.api_token in its configuration and restart it "
            "(clients then send the token as Authorization: Bearer; the dashboard page asks for it), "
            f"or reach its loopback port through an SSH tunnel: ssh -L {forward} {name}, then open {local}")


def token_refusal(request: web.BaseRequest, token: str, public_hosts: Iterable[str] = ()) -> web.Response | None:
    """None when ``request`` may use ``/micro`` or the dashboard's data, else the refusal to answer.

    Host first (DNS rebinding), then: a local client may; anyone else needs
    ``token`` (403 ``local_only`` while it is empty, 401 without one, 403 with another).
    """
    answer = host_refusal(request, public_hosts)
    if answer is not None:
        return answer
    if is_local_client(request):
        return None
    if not token:
        return refusal(403, "local_only", local_only_message(request))
    given = bearer_token(request)
    if not given:
        return refusal(401, "token_required", "send the access token (up.api_token) as Authorization: Bearer",
                       {"WWW-Authenticate": 'Bearer realm="snowmelt"'})
    if not hmac.compare_digest(given.encode(), token.encode()):
        return refusal(403, "wrong_token", "the access token was refused")
    return None
