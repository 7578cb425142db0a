"""The one way Trellis fetches a URL that a user typed (RSS feeds, alert webhooks).

A URL from a user may point at the server's own network: ``http://127.0.0.1:6379/``,
``http://169.254.169.254/`` (cloud metadata), ``http://2130706433/`` (127.0.0.1 in decimal),
or a name whose DNS answer changes between the check and the connection (DNS rebinding).
``fetch`` therefore

- accepts only ``http`` and ``https``;
- resolves the host once, refuses the request if any answer is private, loopback,
  link-local, multicast, reserved, unspecified or otherwise not globally routable (IPv4
  and IPv6, including IPv4 addresses embedded in IPv6), unless a network in
  ``settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS`` contains it;
- connects to the checked address itself (no second lookup), sending the original name as
  the Host header and, for HTTPS, as SNI and the name the certificate must match;
- follows redirects only through the same checks, at most ``max_redirects`` of them;
- bounds the connection and every read by ``timeout``, the whole exchange by
  ``total_timeout``, and the body by ``max_bytes`` (decoded bytes; it stops reading there).

Every failure raises ``OutboundError`` (policy refusals: its subclass ``OutboundRefused``)
with a stable ``code`` and a message that can be shown to the user who typed the URL.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 5 * MiB  # a large RSS feed is ~1 MiB; webhook answers are tiny
DEFAULT_TIMEOUT_S = 5.0  # connect, and each read
DEFAULT_TOTAL_TIMEOUT_S = 30.0  # the whole exchange, redirects included
DEFAULT_MAX_REDIRECTS = 5
READ_CHUNK_BYTES = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Dropped when a redirect leaves the origin, so credentials for one host never reach another.
ORIGIN_BOUND_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
USER_AGENT = "Trellis-outbound/1"

# IPv6 ranges that carry an IPv4 address in their last 32 bits (RFC 6052 NAT64, RFC 4291
# IPv4-compatible). The IPv4 address is judged as well: a NAT64 gateway would reach it.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class OutboundError(Exception):
    """A fetch that did not produce a response: ``code`` says why, ``url`` which hop failed."""

    def __init__(self, code: str, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.url = url


class OutboundRefused(OutboundError):
    """Refused by policy (scheme, address, redirects) before any byte was sent there."""


@dataclass(frozen=True)
class OutboundResponse:
    url: str  # the URL that answered (after redirects)
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes
    redirects: tuple[str, ...] = field(default=())  # the URLs redirected to, in order

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def text(self) -> str:
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip("\"'")
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:  # an unknown charset name in the header
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # IDNA-encoded name or IP literal, without brackets
    port: int
    path: str  # path and query
    host_header: str


# --- address policy


def allowed_networks(extra: Iterable[str] | None = None) -> list[IPNetwork]:
    """``settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS`` (or ``extra``) parsed as networks."""
    raw = settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS if extra is None else extra
    networks = []
    for item in raw:
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"TRELLIS_OUTBOUND_ALLOW_NETWORKS: {item!r} is not a network: {exc}") from exc
    return networks


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal_reason(ip: IPAddress, networks: list[IPNetwork]) -> str | None:
    """Why ``ip`` may not be contacted (None: it may). An allowed network always wins."""
    if any(ip.version == net.version and ip in net for net in networks):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            if ip.ipv4_mapped is not None:  # the socket would connect to the IPv4 address itself
                return refusal_reason(embedded, networks)
            reason = refusal_reason(embedded, networks)
            if reason:
                return f"{reason} (embedded in {ip})"
    # Most specific first, so the message names the reason a user recognises.
    checks = (
        ("an unspecified address", ip.is_unspecified),
        ("a loopback address", ip.is_loopback),
        ("a link-local address", ip.is_link_local),
        ("a multicast address", ip.is_multicast),
        ("a private address", ip.is_private),
        ("a reserved address", ip.is_reserved),
        ("not globally routable", not ip.is_global),
    )
    for reason, hit in checks:
        if hit:
            return f"{ip} is {reason}"
    return None


def _resolve(target: _Target) -> list[IPAddress]:
    """Every address ``target.host`` resolves to, in the resolver's order, once each.

    Numeric forms the C resolver accepts (``2130706433``, ``0177.0.0.1``, ``0x7f.1``) come
    back as the address they mean, so they are judged like any other answer.
    """
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError("dns_failed", f"Could not resolve {target.host!r}: {exc}.", url=target.url) from exc
    seen: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # drop an IPv6 zone index
        if ip not in seen:
            seen.append(ip)
    if not seen:
        raise OutboundError("dns_failed", f"{target.host!r} has no address.", url=target.url)
    return seen


def _checked_addresses(target: _Target, networks: list[IPNetwork]) -> list[IPAddress]:
    addresses = _resolve(target)
    for ip in addresses:
        reason = refusal_reason(ip, networks)
        if reason:
            raise OutboundRefused(
                "address_refused",
                f"Refusing to connect to {target.host!r}: {reason}. Ask an administrator to add its "
                "network to TRELLIS_OUTBOUND_ALLOW_NETWORKS if this server should be reachable.",
                url=target.url,
            )
    return addresses


# --- URLs


def _parse(url: str) -> _Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise OutboundError("invalid_url", f"Not a valid URL: {exc}.", url=url) from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise OutboundRefused(
            "scheme_refused", f"Only http and https URLs can be fetched, not {scheme or 'no scheme'!r}.", url=url
        )
    if not parts.hostname:
        raise OutboundError("invalid_url", "The URL has no host name.", url=url)
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused(
            "credentials_in_url", "Credentials in the URL are not sent; pass an Authorization header.", url=url
        )
    try:
        # An IP literal (a zone index arrives URL-encoded: fe80::1%25eth0), as the resolver reads it.
        host = str(ipaddress.ip_address(unquote(parts.hostname)))
    except ValueError:
        try:
            host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise OutboundError("invalid_url", f"Host name {parts.hostname!r} is not valid: {exc}.", url=url) from exc
    port = port or DEFAULT_PORTS[scheme]
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(url=url, scheme=scheme, host=host, port=port, path=path, host_header=host_header)


# --- one exchange


def _open(
    target: _Target,
    ip: IPAddress,
    *,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    timeout: urllib3.Timeout,
    ca_certs: str | None,
) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        # SNI and the certificate check use the name; the socket goes to the checked address.
        pool = urllib3.HTTPSConnectionPool(
            str(ip), target.port, timeout=timeout, retries=False, maxsize=1,
            cert_reqs="CERT_REQUIRED", ca_certs=ca_certs, server_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(str(ip), target.port, timeout=timeout, retries=False, maxsize=1)
    try:
        response = pool.urlopen(
            method, target.path, body=body, headers={**headers, "Host": target.host_header},
            redirect=False, retries=False, preload_content=False, decode_content=True, assert_same_host=False,
        )
    except BaseException:
        pool.close()
        raise
    return pool, response


def _read_capped(response: urllib3.BaseHTTPResponse, *, max_bytes: int, deadline: float, url: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and not response.headers.get("content-encoding") and int(declared) > max_bytes:
        raise OutboundError("too_large", f"The response is {declared} bytes; the limit is {max_bytes} bytes.", url=url)
    chunks: list[bytes] = []
    received = 0
    while True:
        if time.monotonic() > deadline:
            raise OutboundError("timeout", "The response took longer than the total time allowed.", url=url)
        chunk = response.read(READ_CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        received += len(chunk)
        if received > max_bytes:
            raise OutboundError(
                "too_large", f"The response is larger than the limit of {max_bytes} bytes; stopped reading.", url=url
            )
        chunks.append(chunk)


def _exchange(
    target: _Target,
    addresses: list[IPAddress],
    *,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    timeout: float,
    deadline: float,
    ca_certs: str | None,
) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    """Opens the first checked address that accepts a connection."""
    last: Exception | None = None
    for ip in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OutboundError("timeout", "The exchange took longer than the total time allowed.", url=target.url)
        per_op = urllib3.Timeout(connect=min(timeout, remaining), read=min(timeout, remaining))
        try:
            return _open(target, ip, method=method, headers=headers, body=body, timeout=per_op, ca_certs=ca_certs)
        except NewConnectionError as exc:  # refused or unreachable: the next address may answer
            last = exc
        except Urllib3Timeout as exc:
            raise OutboundError("timeout", f"{target.host_header} did not answer within {timeout:g} s.",
                                url=target.url) from exc
        except SSLError as exc:
            raise OutboundError("tls_failed", f"TLS with {target.host_header} failed: {exc}.", url=target.url) from exc
        except HTTPError as exc:
            raise OutboundError("http_failed", f"{target.host_header}: {exc}.", url=target.url) from exc
    detail = f": {last}" if last else ""
    raise OutboundError("connect_failed", f"Could not connect to {target.host_header}{detail}.", url=target.url)


def _request_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    out = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
    for name, value in (headers or {}).items():
        if name.lower() == "host":  # always the URL's host: it must match the checked address
            continue
        out[name] = value
    return out


def _same_origin(a: _Target, b: _Target) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    allow_networks: Iterable[str] | None = None,
    ca_certs: str | None = None,
) -> OutboundResponse:
    """Fetches ``url`` under the rules in this module's docstring.

    ``timeout`` bounds the connection and each read (seconds), ``total_timeout`` the whole
    exchange; ``max_redirects=0`` returns a redirect response as it is. ``allow_networks``
    replaces the setting (CIDRs); ``ca_certs`` is a CA bundle for servers with a private CA.
    Any status is returned (a 404 is a response); failures raise ``OutboundError``.
    """
    networks = allowed_networks(allow_networks)
    method = method.upper()
    payload = body.encode("utf-8") if isinstance(body, str) else body
    request_headers = _request_headers(headers)
    deadline = time.monotonic() + total_timeout
    target = _parse(url)
    redirects: list[str] = []
    while True:
        addresses = _checked_addresses(target, networks)
        pool, response = _exchange(
            target, addresses, method=method, headers=request_headers, body=payload,
            timeout=timeout, deadline=deadline, ca_certs=ca_certs,
        )
        try:
            location = response.headers.get("location")
            if response.status not in REDIRECT_STATUSES or not location or max_redirects == 0:
                content = _read_body(response, max_bytes=max_bytes, deadline=deadline, target=target, timeout=timeout)
                return OutboundResponse(
                    url=target.url,
                    status=response.status,
                    headers={name.lower(): ", ".join(response.headers.getlist(name)) for name in response.headers},
                    body=content,
                    redirects=tuple(redirects),
                )
        finally:
            response.close()
            pool.close()
        if len(redirects) >= max_redirects:
            raise OutboundRefused("too_many_redirects", f"More than {max_redirects} redirects.", url=target.url)
        next_target = _parse(urljoin(target.url, location))
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            # What browsers do (RFC 9110 15.4): the next request is a GET without the body.
            method, payload = "GET", None
            request_headers = {k: v for k, v in request_headers.items() if k.lower() != "content-type"}
        if not _same_origin(target, next_target):
            request_headers = {k: v for k, v in request_headers.items() if k.lower() not in ORIGIN_BOUND_HEADERS}
        redirects.append(next_target.url)
        target = next_target


def _read_body(
    response: urllib3.BaseHTTPResponse, *, max_bytes: int, deadline: float, target: _Target, timeout: float
) -> bytes:
    try:
        return _read_capped(response, max_bytes=max_bytes, deadline=deadline, url=target.url)
    except Urllib3Timeout as exc:
        raise OutboundError("timeout", f"{target.host_header} stopped sending for {timeout:g} s.",
                            url=target.url) from exc
    except HTTPError as exc:  # a broken chunked body, a bad gzip stream, a reset connection
        raise OutboundError("http_failed", f"Reading the response of {target.host_header} failed: {exc}.",
                            url=target.url) from exc
