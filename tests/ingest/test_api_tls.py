"""The public HTTP port over TLS (`[http] tls_cert`/`tls_key`), as the REST API's clients reach it: HTTPS
works with a certificate from a test CA; plain HTTP on it gets no HTTP answer; a connection still in
its handshake holds a place under the connection caps; the handshake and the request headers together
must come within `http.header_timeout`, else the connection is closed and its place given back.

Also the fixtures the other API tests share: a CA and a server certificate, and a daemon serving TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from tests.pipeline import Pipeline, settings_for, start_pipeline


@dataclass
class Tls:
    ca: trustme.CA
    cert: Path
    key: Path
    ca_file: Path

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def http(self) -> dict[str, Any]:
        """The `[http]` settings serving this certificate."""
        return {"tls_cert": str(self.cert), "tls_key": str(self.key)}


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = Tls(ca, tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "ca.pem")
    files.cert.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca_file))
    return files


async def start_tls_pipeline(tmp_path: Path, tls: Tls, *, store: dict[str, Any] | None = None, **http: Any) -> Pipeline:
    """The whole daemon on the local bus with the public port on TLS (and `store`: another case store)."""
    sections: dict[str, Any] = {"store": store} if store else {}
    return await start_pipeline(settings_for("local-sqlite", tmp_path, http={**tls.http(), **http}, **sections))


@pytest.fixture
async def tls_pipeline(tmp_path: Path, tls: Tls) -> AsyncIterator[Pipeline]:
    p = await start_tls_pipeline(tmp_path, tls, header_timeout=1.0, max_connections_per_ip=2)
    try:
        yield p
    finally:
        await p.daemon.stop()


async def closed_without_http(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (bounded by a generous timeout)."""
    return await asyncio.wait_for(reader.read(65536), 20)


async def test_https_serves_the_public_port_and_plain_http_gets_no_answer(tls_pipeline: Pipeline, tls: Tls) -> None:
    port = tls_pipeline.daemon.http_port
    async with aiohttp.ClientSession() as http:
        async with http.get(f"https://127.0.0.1:{port}/healthz", ssl=tls.client_context()) as r:
            assert r.status == 200 and await r.json() == {"status": "ok"}
        with pytest.raises(aiohttp.ClientError):  # the server speaks only TLS
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                pass
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await closed_without_http(reader)
    writer.close()
    assert not answer.startswith(b"HTTP/")


async def test_a_connection_in_its_handshake_holds_a_place_and_times_out(tls_pipeline: Pipeline, tls: Tls) -> None:
    """Two places per address: two connections that never say hello take both; a third is refused at
    once; when the header timeout closes the silent two, HTTPS works again."""
    port = tls_pipeline.daemon.http_port
    silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    guard = tls_pipeline.daemon.guards["http"]
    refused_reader, refused_writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await closed_without_http(refused_reader)).startswith(b"HTTP/1.1 503")
    refused_writer.close()
    for reader, writer in silent:  # closed by the server: the handshake did not come within header_timeout
        assert await closed_without_http(reader) == b""
        writer.close()
    end = asyncio.get_running_loop().time() + 10
    while guard.open and asyncio.get_running_loop().time() < end:  # noqa: ASYNC110 - released by a loop callback
        await asyncio.sleep(0.02)
    assert guard.open == 0
    async with aiohttp.ClientSession() as http, http.get(f"https://127.0.0.1:{port}/healthz",
                                                         ssl=tls.client_context()) as r:
        assert r.status == 200


async def test_headers_after_the_handshake_share_its_clock(tls_pipeline: Pipeline, tls: Tls) -> None:
    """A client that finishes the handshake and then trickles half a request is closed by the header
    timeout, and a request that arrives with the handshake's last bytes is served."""
    port = tls_pipeline.daemon.http_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls.client_context(),
                                                   server_hostname="127.0.0.1")
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line: the headers never end
    await writer.drain()
    assert await closed_without_http(reader) == b""
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls.client_context(),
                                                   server_hostname="127.0.0.1")
    assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"status": "ok"}')


async def test_a_wrong_certificate_is_refused_by_the_client_and_the_place_returned(tls_pipeline: Pipeline) -> None:
    port = tls_pipeline.daemon.http_port
    stranger = ssl.create_default_context()
    trustme.CA().configure_trust(stranger)  # another CA: the server's certificate is not trusted
    for _ in range(3):  # more than the two places per address: each failed handshake gave its place back
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=stranger, server_hostname="127.0.0.1")
        guard = tls_pipeline.daemon.guards["http"]
        end = asyncio.get_running_loop().time() + 10
        while guard.open and asyncio.get_running_loop().time() < end:  # noqa: ASYNC110 - a loop callback
            await asyncio.sleep(0.02)
        assert guard.open == 0
