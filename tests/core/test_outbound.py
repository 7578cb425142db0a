"""apps.core.outbound.fetch: refusals of non-public targets, and limits against a local server.

The refusals need no network: every refused host is an address literal or ``localhost``,
and the check happens before any connection. The rest talks to a ``http.server`` thread on
127.0.0.1, which the tests allow through ``TRELLIS_OUTBOUND_ALLOW_NETWORKS``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.core.outbound import OutboundError, OutboundRefused, fetch

BIG_BODY_BYTES = 100_000
CAP_BYTES = 10_000
FEED_HOST = "feeds.example.test"


class _Handler(BaseHTTPRequestHandler):
    release: threading.Event  # set by the fixture: lets /slow finish at teardown

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: the tests assert on responses, not on the server's log."""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, *, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for start in range(0, len(body), 8192):
                self.wfile.write(body[start : start + 8192])
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading at its cap
            pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        if url.path == "/ok":
            self._send(200, b"hello from the feed")
        elif url.path == "/host":
            self._send(200, self.headers["Host"].encode())
        elif url.path == "/auth":
            self._send(200, (self.headers.get("Authorization") or "none").encode())
        elif url.path == "/big-declared":
            self._send(200, b"x" * BIG_BODY_BYTES)
        elif url.path == "/big-streamed":  # no Content-Length: the body ends when the socket closes
            self._send(200, b"x" * BIG_BODY_BYTES, length=False)
        elif url.path == "/slow":
            self.release.wait(10)
            self._send(200, b"too late")
        elif url.path == "/redirect":
            self._send(302, b"", {"Location": parse_qs(url.query)["to"][0]})
        elif url.path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        else:
            self._send(404, b"no such page")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self._send(200, b"POST " + self.rfile.read(length))


@contextlib.contextmanager
def _serve(context: ssl.SSLContext | None = None) -> Iterator[int]:
    release = threading.Event()
    handler = type("Handler", (_Handler,), {"release": release})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def local_server(settings) -> Iterator[str]:
    """``http://127.0.0.1:<port>``, with only 127.0.0.1 allowed (127.0.0.2 and the rest are not)."""
    settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    with _serve() as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def fake_dns(monkeypatch) -> list[str]:
    """``feeds.example.test`` resolves to 127.0.0.1; returns the names looked up, in order."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == FEED_HOST:
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


# --- refusals (nothing is allowed: the default)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://localhost:6379/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.0.0.7/admin", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://0.0.0.0:8000/", "unspecified"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 written as one decimal number
        ("http://0177.0.0.1/", "loopback"),  # ... in octal
        ("http://[64:ff9b::a00:1]/", "private"),  # 10.0.0.1 behind NAT64
        ("http://224.0.0.1/", "multicast"),
        ("http://[fe80::1]/", "link-local"),
        ("http://100.64.0.1/", "not globally routable"),  # carrier-grade NAT
    ],
)
def test_non_public_addresses_are_refused(settings, url, reason):
    settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS = []

    with pytest.raises(OutboundRefused) as refused:
        fetch(url)

    assert refused.value.code == "address_refused"
    assert reason in refused.value.message
    assert "TRELLIS_OUTBOUND_ALLOW_NETWORKS" in refused.value.message


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/_x", "ftp://example.com/", "//x/"])
def test_schemes_other_than_http_and_https_are_refused(url):
    with pytest.raises(OutboundRefused) as refused:
        fetch(url)

    assert refused.value.code == "scheme_refused"


def test_credentials_in_the_url_are_refused():
    with pytest.raises(OutboundRefused) as refused:
        fetch("http://user:secret@example.com/")

    assert refused.value.code == "credentials_in_url"


def test_a_name_with_one_private_answer_among_public_ones_is_refused(monkeypatch):
    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    with pytest.raises(OutboundRefused, match="127.0.0.1 is a loopback address"):
        fetch("http://mixed.example.test/")


def test_an_invalid_allow_list_entry_is_a_configuration_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS = ["10.0.0.0/33"]

    with pytest.raises(ImproperlyConfigured, match="10.0.0.0/33"):
        fetch("http://example.com/")


# --- allowed networks, against the local server


def test_an_allowed_network_is_fetched(local_server):
    response = fetch(f"{local_server}/ok")

    assert response.status == 200
    assert response.body == b"hello from the feed"
    assert response.text == "hello from the feed"
    assert response.content_type == "text/plain"
    assert response.redirects == ()


def test_other_statuses_are_responses_not_errors(local_server):
    assert fetch(f"{local_server}/missing").status == 404


def test_post_sends_the_body(local_server):
    response = fetch(f"{local_server}/hook", method="POST", body='{"alert": 1}',
                     headers={"Content-Type": "application/json"})

    assert response.body == b'POST {"alert": 1}'


def test_a_declared_oversized_body_is_refused_before_reading(local_server):
    with pytest.raises(OutboundError) as error:
        fetch(f"{local_server}/big-declared", max_bytes=CAP_BYTES)

    assert error.value.code == "too_large"
    assert str(BIG_BODY_BYTES) in error.value.message


def test_an_undeclared_oversized_body_stops_at_the_cap(local_server):
    with pytest.raises(OutboundError) as error:
        fetch(f"{local_server}/big-streamed", max_bytes=CAP_BYTES)

    assert error.value.code == "too_large"
    assert "stopped reading" in error.value.message


def test_the_same_body_under_a_larger_cap_is_read_whole(local_server):
    assert len(fetch(f"{local_server}/big-streamed", max_bytes=2 * BIG_BODY_BYTES).body) == BIG_BODY_BYTES


def test_a_slow_server_times_out(local_server):
    with pytest.raises(OutboundError) as error:
        fetch(f"{local_server}/slow", timeout=0.5)

    assert error.value.code == "timeout"
    assert not isinstance(error.value, OutboundRefused)


def test_a_redirect_within_allowed_networks_is_followed(local_server):
    response = fetch(f"{local_server}/redirect?to=/ok")

    assert response.body == b"hello from the feed"
    assert response.url == f"{local_server}/ok"
    assert response.redirects == (f"{local_server}/ok",)


def test_a_redirect_to_a_loopback_address_that_is_not_allowed_is_refused(local_server):
    port = urlsplit(local_server).port
    # 127.0.0.2 is loopback too, but outside the allowed 127.0.0.1/32.
    with pytest.raises(OutboundRefused) as refused:
        fetch(f"{local_server}/redirect?to=http://127.0.0.2:{port}/ok")

    assert refused.value.code == "address_refused"
    assert refused.value.url == f"http://127.0.0.2:{port}/ok"


def test_a_redirect_to_another_scheme_is_refused(local_server):
    with pytest.raises(OutboundRefused) as refused:
        fetch(f"{local_server}/redirect?to=file:///etc/passwd")

    assert refused.value.code == "scheme_refused"


def test_credentials_reach_the_same_origin_only(local_server, settings):
    # localhost may resolve to ::1 first, where nothing listens: the next address is tried.
    settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32", "::1/128"]
    port = urlsplit(local_server).port
    auth = {"Authorization": "Bearer feed-secret"}

    same = fetch(f"{local_server}/redirect?to=/auth", headers=auth)
    other = fetch(f"{local_server}/redirect?to=http://localhost:{port}/auth", headers=auth)

    assert same.body == b"Bearer feed-secret"
    assert other.body == b"none"
    assert other.url == f"http://localhost:{port}/auth"


def test_redirects_are_bounded(local_server):
    with pytest.raises(OutboundRefused) as refused:
        fetch(f"{local_server}/loop", max_redirects=3)

    assert refused.value.code == "too_many_redirects"


def test_with_no_redirects_allowed_the_redirect_itself_is_returned(local_server):
    response = fetch(f"{local_server}/redirect?to=/ok", max_redirects=0)

    assert response.status == 302
    assert response.headers["location"] == "/ok"


def test_the_checked_address_is_used_and_the_name_sent_as_host(local_server, fake_dns):
    port = urlsplit(local_server).port

    response = fetch(f"http://{FEED_HOST}:{port}/host")

    # One lookup of the name: the connection goes to the address that was checked, so a
    # DNS answer that changes afterwards (rebinding) cannot redirect it.
    assert fake_dns == [FEED_HOST]
    assert response.body == f"{FEED_HOST}:{port}".encode()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, FEED_HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(FEED_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_to_the_checked_address_sends_the_name_as_sni(settings, tmp_path, fake_dns):
    settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    cert_path, key_path = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server_names: list[str | None] = []
    context.sni_callback = lambda _sock, server_name, _ctx: server_names.append(server_name)

    with _serve(context) as port:
        response = fetch(f"https://{FEED_HOST}:{port}/host", ca_certs=str(cert_path))

        assert response.body == f"{FEED_HOST}:{port}".encode()
        assert server_names == [FEED_HOST]
        assert fake_dns == [FEED_HOST]


def test_https_with_a_certificate_for_another_name_fails(settings, tmp_path):
    settings.TRELLIS_OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    cert_path, key_path = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)

    with _serve(context) as port:
        with pytest.raises(OutboundError) as error:
            fetch(f"https://127.0.0.1:{port}/ok", ca_certs=str(cert_path))

        assert error.value.code == "tls_failed"
