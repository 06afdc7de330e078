"""An OpenAI-compatible upstream over real TLS, for sluice's integration and e2e tests.

One MockUpstream is one HTTPS server on 127.0.0.1 (a thread per connection, HTTP/1.1 keep-alive). What it
does with a request is a Behavior, chosen by the `model` the request names (set_behavior(b, model=...)) or
the server's default behaviour. It records every request (headers, body) and every connection (open time,
close time as seen from the server, bytes sent), so tests can assert what sluice sent and when it let go of
a connection.

Certificates come from make_certs(), which runs the `openssl` CLI: a test CA, a server certificate for
localhost / 127.0.0.1 and one for a wrong host name, both signed by that CA.
"""

from __future__ import annotations

import dataclasses
import json
import select
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional

# --------------------------------------------------------------------------------------------------------
# Certificates


@dataclasses.dataclass(frozen=True)
class Certs:
    ca_cert: Path
    server_cert: Path  # CN/SAN localhost, IP 127.0.0.1
    server_key: Path
    wrong_cert: Path  # SAN wrong.example only
    wrong_key: Path


def _openssl(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def make_certs(directory: Path) -> Certs:
    """A CA plus two leaf certificates it signed (EC P-256: fast to generate and to handshake)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
              "-subj", "/CN=sluice test CA",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)

    def leaf(stem: str, cn: str, san: str) -> None:
        _openssl(["req", "-new", *ec, "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", f"/CN={cn}"], d)
        (d / f"{stem}.ext").write_text(
            f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        _openssl(["x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                  "-CAcreateserial", "-out", f"{stem}.pem", "-days", "2", "-extfile", f"{stem}.ext"], d)

    leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1")
    leaf("wrong", "wrong.example", "DNS:wrong.example")
    return Certs(d / "ca.pem", d / "server.pem", d / "server.key", d / "wrong.pem", d / "wrong.key")


# --------------------------------------------------------------------------------------------------------
# Behaviours


@dataclasses.dataclass
class Behavior:
    """What the mock does with one request.

    kind:
      ok                 answer normally (JSON, or SSE when the request has "stream": true)
      status             answer `status` with `body` (an OpenAI error JSON by default) and `headers`
      hang               read the request and never answer (until the client closes or the mock stops)
      reset_before       read the request, then reset the connection (RST) before any response byte
      reset_after_first  stream: send the header and `cut_after` chunks, then RST; non-stream: header + half
                         the body, then RST
    """

    kind: str = "ok"
    chunks: int = 3                 # content chunks of a stream (and words of a non-stream answer)
    chunk_delay: float = 0.0        # seconds between stream chunks
    header_delay: float = 0.0       # seconds before the response header
    pad: int = 0                    # extra characters in each chunk's content (big streams)
    status: int = 200
    headers: dict = dataclasses.field(default_factory=dict)
    body: Optional[bytes] = None
    cut_after: int = 1
    prompt_tokens: int = 7


def ok(chunks: int = 3, chunk_delay: float = 0.0, header_delay: float = 0.0, pad: int = 0) -> Behavior:
    return Behavior("ok", chunks=chunks, chunk_delay=chunk_delay, header_delay=header_delay, pad=pad)


def slow_stream(chunks: int = 10, chunk_delay: float = 0.3) -> Behavior:
    return Behavior("ok", chunks=chunks, chunk_delay=chunk_delay)


def flood(chunks: int = 200_000, pad: int = 1024) -> Behavior:
    """A long stream sent as fast as the connection takes it."""
    return Behavior("ok", chunks=chunks, pad=pad)


def error_status(status: int = 500, message: str = "mock failure", headers: Optional[dict] = None) -> Behavior:
    body = json.dumps({"error": {"message": message, "type": "server_error", "param": None,
                                 "code": None}}).encode()
    return Behavior("status", status=status, body=body, headers=dict(headers or {}))


def rate_limited(retry_after: int = 30) -> Behavior:
    body = json.dumps({"error": {"message": "mock rate limit", "type": "rate_limit_error", "param": None,
                                 "code": "rate_limit_exceeded"}}).encode()
    return Behavior("status", status=429, body=body, headers={"Retry-After": str(retry_after)})


def hang() -> Behavior:
    return Behavior("hang")


def reset_before_first_byte() -> Behavior:
    return Behavior("reset_before")


def reset_after_first_chunk(chunks: int = 5, cut_after: int = 1) -> Behavior:
    return Behavior("reset_after_first", chunks=chunks, cut_after=cut_after)


def content_of(chunks: int, pad: int = 0) -> str:
    """The text a normal answer of `chunks` pieces carries (concatenated)."""
    return "".join(_piece(i, pad) for i in range(chunks))


def _piece(i: int, pad: int) -> str:
    return f"tok{i} " + ("x" * pad if pad else "")


# --------------------------------------------------------------------------------------------------------
# Records


@dataclasses.dataclass
class RecordedRequest:
    conn_id: int
    method: str
    path: str
    headers: dict  # lower-case names
    body: bytes
    received_at: float  # time.monotonic()

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclasses.dataclass
class ConnectionRecord:
    conn_id: int
    opened_at: float
    handshake_ok: bool = False
    closed_at: Optional[float] = None   # when the peer closed/reset it, or the mock closed it
    closed_by: str = ""                 # "peer" or "mock"
    bytes_sent: int = 0
    requests: int = 0
    response_done_at: Optional[float] = None  # when the last response on it was fully written


class PeerClosed(Exception):
    pass


class _Stopped(Exception):
    pass


# --------------------------------------------------------------------------------------------------------
# The server


class MockUpstream:
    def __init__(self, certs: Certs, wrong_host: bool = False, name: str = "mock", plain: bool = False):
        self.name = name
        self.plain = plain  # plain HTTP instead of TLS (to tell TLS problems from others)
        self.models_status = 200  # what GET .../models (the health probes' default path) answers
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if wrong_host:
            self._ctx.load_cert_chain(certs.wrong_cert, certs.wrong_key)
        else:
            self._ctx.load_cert_chain(certs.server_cert, certs.server_key)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._default = Behavior()
        self._by_model: dict[str, Behavior] = {}
        self.requests: list[RecordedRequest] = []
        self.connections: list[ConnectionRecord] = []
        self._live: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True)
        self._accept_thread.start()

    # --- control -----------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{'http' if self.plain else 'https'}://localhost:{self.port}"

    def set_behavior(self, behavior: Behavior, model: Optional[str] = None) -> None:
        with self._lock:
            if model is None:
                self._default = behavior
            else:
                self._by_model[model] = behavior

    def behavior_for(self, model: Optional[str]) -> Behavior:
        with self._lock:
            return self._by_model.get(model or "", self._default)

    def reset_records(self) -> None:
        with self._lock:
            self.requests.clear()

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: expected {n} requests, got {len(self.requests)}")
                self._cond.wait(left)
            return list(self.requests)

    def connection(self, conn_id: int) -> ConnectionRecord:
        with self._lock:
            return dataclasses.replace(self.connections[conn_id])

    def wait_for_close(self, conn_id: int, timeout: float) -> ConnectionRecord:
        """Waits until connection `conn_id` is closed; returns its record (closed_at None on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.connections[conn_id].closed_at is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return dataclasses.replace(self.connections[conn_id])

    def wait_until(self, predicate: Callable[["MockUpstream"], bool], timeout: float) -> bool:
        """Polls `predicate(self)` (under no lock) until it holds or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            live = list(self._live)
        for s in live:
            try:
                socket.socket.shutdown(s, socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept_thread.join(timeout=5)
        for t in list(self._threads):
            t.join(timeout=5)

    def __enter__(self) -> "MockUpstream":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- connection handling -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                rec = ConnectionRecord(conn_id=len(self.connections), opened_at=time.monotonic())
                self.connections.append(rec)
            t = threading.Thread(target=self._serve, args=(raw, rec), name=f"{self.name}-conn{rec.conn_id}",
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _mark_closed(self, rec: ConnectionRecord, by: str) -> None:
        with self._cond:
            if rec.closed_at is None:
                rec.closed_at = time.monotonic()
                rec.closed_by = by
            self._cond.notify_all()

    def _serve(self, raw: socket.socket, rec: ConnectionRecord) -> None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(10)
        try:
            sock = raw if self.plain else self._ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            self._mark_closed(rec, "peer")
            raw.close()
            return
        rec.handshake_ok = True
        sock.settimeout(None)
        with self._lock:
            self._live.add(sock)
        conn = _Conn(self, sock, rec)
        by = "mock"
        try:
            while not self._stop.is_set():
                req = conn.read_request()
                if req is None:
                    by = "peer"
                    break
                with self._cond:
                    rec.requests += 1
                    self.requests.append(req)
                    self._cond.notify_all()
                if not self._respond(conn, req):
                    break
        except PeerClosed:
            by = "peer"
        except _Stopped:
            by = "mock"
        except (OSError, ssl.SSLError, ValueError):
            by = "peer"
        finally:
            with self._lock:
                self._live.discard(sock)
            self._mark_closed(rec, by)
            try:
                sock.close()
            except OSError:
                pass

    # Returns False when the connection must be closed afterwards.
    def _respond(self, conn: "_Conn", req: RecordedRequest) -> bool:
        try:
            body = json.loads(req.body) if req.body else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        b = self.behavior_for(body.get("model") if isinstance(body.get("model"), str) else None)
        if req.path.endswith("/models") and req.method == "GET":
            if self.models_status == 200:
                conn.send_response(200, json.dumps({"object": "list", "data": []}).encode())
            else:
                conn.send_response(self.models_status, json.dumps({"error": {"message": "down"}}).encode())
            return True
        if b.header_delay:
            conn.wait_or_closed(b.header_delay)
        if b.kind == "hang":
            conn.wait_or_closed(120.0)
            return False
        if b.kind == "reset_before":
            conn.reset()
            return False
        if b.kind == "status":
            payload = b.body if b.body is not None else b"{}"
            conn.send_response(b.status, payload, extra=b.headers)
            return True
        stream = bool(body.get("stream"))
        chat = req.path.endswith("/chat/completions")
        model = body.get("model", "")
        if not stream:
            payload = json.dumps(_completion_body(chat, model, b)).encode()
            if b.kind == "reset_after_first":
                conn.send_head(200, "application/json", length=len(payload))
                conn.send_raw(payload[: len(payload) // 2])
                conn.reset()
                return False
            conn.send_response(200, payload)
            return True
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        conn.send_head(200, "text/event-stream", length=None)
        for i in range(b.chunks):
            if i > 0 and b.chunk_delay:
                conn.wait_or_closed(b.chunk_delay)
            conn.send_chunk(_sse(_stream_chunk(chat, model, _piece(i, b.pad), None, i == 0)))
            if b.kind == "reset_after_first" and i + 1 >= b.cut_after:
                conn.reset()
                return False
        if b.chunk_delay:
            conn.wait_or_closed(b.chunk_delay)
        conn.send_chunk(_sse(_stream_chunk(chat, model, "", "stop", False)))
        if include_usage:
            conn.send_chunk(_sse({"id": "mock-1", "object": _chunk_object(chat), "created": 1, "model": model,
                                  "choices": [], "usage": _usage(b)}))
        # [DONE] and the last chunk in one write, as servers that flush per event usually do at the end.
        done = b"data: [DONE]\n\n"
        conn.send_raw(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
        conn.done()
        return True


def _usage(b: Behavior) -> dict:
    return {"prompt_tokens": b.prompt_tokens, "completion_tokens": b.chunks,
            "total_tokens": b.prompt_tokens + b.chunks}


def _chunk_object(chat: bool) -> str:
    return "chat.completion.chunk" if chat else "text_completion"


def _completion_body(chat: bool, model: str, b: Behavior) -> dict:
    text = content_of(b.chunks, b.pad)
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                  "logprobs": None}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        obj = "text_completion"
    return {"id": "mock-1", "object": obj, "created": 1, "model": model, "choices": [choice], "usage": _usage(b)}


def _stream_chunk(chat: bool, model: str, text: str, finish: Optional[str], first: bool) -> dict:
    if chat:
        delta: dict = {}
        if first:
            delta["role"] = "assistant"
        if text or first:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
    return {"id": "mock-1", "object": _chunk_object(chat), "created": 1, "model": model, "choices": [choice]}


def _sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class _Conn:
    """One server-side connection (TLS unless the mock is plain): request parsing and response writing, with
    close detection."""

    MAX_HEADER = 256 * 1024

    def __init__(self, server: MockUpstream, sock: socket.socket, rec: ConnectionRecord):
        self.server = server
        self.sock = sock
        self.rec = rec
        self.buf = b""

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise PeerClosed()
        return data

    def read_request(self) -> Optional[RecordedRequest]:
        try:
            while b"\r\n\r\n" not in self.buf:
                if len(self.buf) > self.MAX_HEADER:
                    raise ValueError("header too large")
                self.buf += self._recv()
        except PeerClosed:
            return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked_body()
        else:
            n = int(headers.get("content-length", "0") or 0)
            while len(self.buf) < n:
                self.buf += self._recv()
            body, self.buf = self.buf[:n], self.buf[n:]
        return RecordedRequest(self.rec.conn_id, method, path, headers, body, time.monotonic())

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self._recv()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_chunked_body(self) -> bytes:
        out = b""
        while True:
            size = int(self._read_line().split(b";")[0], 16)
            if size == 0:
                while self._read_line():
                    pass
                return out
            while len(self.buf) < size + 2:
                self.buf += self._recv()
            out += self.buf[:size]
            self.buf = self.buf[size + 2:]

    def wait_or_closed(self, seconds: float) -> None:
        """Sleeps `seconds`, raising PeerClosed as soon as the peer closes or resets the connection."""
        deadline = time.monotonic() + seconds
        while True:
            if self.server._stop.is_set():
                raise _Stopped()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self.sock], [], [], min(left, 0.05))
            if not r and not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                continue
            self.sock.settimeout(0.05)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (OSError, ssl.SSLError):
                raise PeerClosed()
            finally:
                self.sock.settimeout(None)
            if not data:
                raise PeerClosed()
            self.buf += data  # a pipelined request: kept for later

    def send_raw(self, data: bytes) -> None:
        if self.server._stop.is_set():
            raise _Stopped()
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError):
            raise PeerClosed()
        with self.server._lock:
            self.rec.bytes_sent += len(data)

    def send_head(self, status: int, content_type: str, length: Optional[int], extra: Optional[dict] = None):
        reason = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error",
                  502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", "Connection: keep-alive"]
        if length is None:
            lines.append("Transfer-Encoding: chunked")
            lines.append("Cache-Control: no-cache")
        else:
            lines.append(f"Content-Length: {length}")
        for k, v in (extra or {}).items():
            lines.append(f"{k}: {v}")
        self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send_chunk(self, data: bytes) -> None:
        self.send_raw(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def send_response(self, status: int, body: bytes, extra: Optional[dict] = None) -> None:
        self.send_head(status, "application/json", len(body), extra)
        self.send_raw(body)
        self.done()

    def done(self) -> None:
        with self.server._lock:
            self.rec.response_done_at = time.monotonic()

    def reset(self) -> None:
        """Closes with RST (SO_LINGER 0): the peer sees a connection reset, not an orderly close."""
        try:
            socket.socket.setsockopt(self.sock, socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            socket.socket.close(self.sock)
        except OSError:
            pass
