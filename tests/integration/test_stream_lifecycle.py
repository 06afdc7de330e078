"""A stream's life beyond the happy path: the client leaves (the upstream connection must close at once),
the client stops reading (bounded memory, the upstream is no longer read), the client stays blocked past
the write timeout, and SIGTERM while streams are open (they finish; exit code 0)."""

import signal
import socket
import threading
import time

import mock_upstream as mu
import sluice_harness as sh

MIB = 1024 * 1024


def test_client_disconnect_closes_upstream_connection(sluice_factory, primary):
    primary.set_behavior(mu.slow_stream(chunks=40, chunk_delay=0.2))
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    c = s.stream(sh.chat_body(stream=True))
    assert c.status == 200
    it = iter(c.events())
    next(it)
    next(it)
    (req,) = primary.wait_for_requests(1)
    c.close()
    t0 = time.monotonic()
    rec = primary.wait_for_close(req.conn_id, timeout=5.0)
    assert rec.closed_at is not None, "sluice kept the upstream connection open after the client left"
    assert rec.closed_by == "peer"
    assert rec.closed_at - t0 <= 1.0, f"the upstream connection closed {rec.closed_at - t0:.2f}s after the client"
    assert rec.response_done_at is None, "the upstream stream ran to its end"
    # sluice itself is fine afterwards.
    primary.set_behavior(mu.ok())
    assert s.chat().status == 200


def test_client_disconnect_while_waiting_for_first_byte(sluice_factory, primary):
    primary.set_behavior(mu.hang())
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    body = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    (req,) = primary.wait_for_requests(1)
    sock.close()
    t0 = time.monotonic()
    rec = primary.wait_for_close(req.conn_id, timeout=5.0)
    assert rec.closed_at is not None and rec.closed_at - t0 <= 1.0, rec


def _stable(read, settle: float, timeout: float) -> int:
    """Polls read() until its value has not changed for `settle` seconds; returns it."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return now
    raise AssertionError(f"value kept changing for {timeout}s (last {last})")


def test_slow_client_gets_backpressure_not_buffering(sluice_factory, primary):
    chunks, pad = 400_000, 1024  # about 450 MiB if nothing stopped it
    primary.set_behavior(mu.flood(chunks=chunks, pad=pad))
    s = sluice_factory({"primary": primary}, routes=[sh.route()],
                       server={"limits": {"write_timeout_ms": 30000, "output_buffer_bytes": 65536}})
    primary.set_behavior(mu.ok(), model="warmup")
    assert s.chat("warmup").status == 200
    rss_before = s.rss_kib()

    c = s.stream(sh.chat_body(stream=True), rcvbuf=64 * 1024)
    try:
        assert c.status == 200
        c.read_some_bytes(256 * 1024)
        (req,) = [r for r in primary.wait_for_requests(2) if r.json.get("model") != "warmup"]

        def sent():
            return primary.connection(req.conn_id).bytes_sent

        # The client reads nothing now: the upstream must stall once the buffers in between are full.
        stalled_at = _stable(sent, settle=1.5, timeout=30)
        total = chunks * (pad + 150)
        assert stalled_at < 64 * MIB, f"sluice read {stalled_at / MIB:.1f} MiB from the upstream for a stalled client"
        assert stalled_at < total / 4
        rss_growth_mib = (s.rss_kib() - rss_before) / 1024
        print(f"upstream stalled after {stalled_at / MIB:.2f} MiB; RSS +{rss_growth_mib:.1f} MiB")
        assert rss_growth_mib < 64, f"RSS grew by {rss_growth_mib:.1f} MiB behind a stalled client"

        # Reading again resumes the upstream.
        c.read_some_bytes(8 * MIB)
        assert primary.wait_until(lambda m: sent() > stalled_at + 4 * MIB, timeout=20), \
            "the upstream was not read again after the client resumed"
        assert (s.rss_kib() - rss_before) / 1024 < 64
    finally:
        c.close()
    rec = primary.wait_for_close(req.conn_id, timeout=5.0)
    assert rec.closed_at is not None, "the upstream connection stayed open after the client left"


def test_client_blocked_past_write_timeout_is_cut(sluice_factory, primary):
    primary.set_behavior(mu.flood(chunks=400_000, pad=1024))
    s = sluice_factory({"primary": primary}, routes=[sh.route()],
                       server={"limits": {"write_timeout_ms": 1500, "output_buffer_bytes": 65536}})
    c = s.stream(sh.chat_body(stream=True), rcvbuf=32 * 1024)
    try:
        assert c.status == 200
        (req,) = primary.wait_for_requests(1)
        # Never read again. sluice must give up on this client and release the upstream.
        rec = primary.wait_for_close(req.conn_id, timeout=20.0)
        assert rec.closed_at is not None, "a client blocked past write_timeout_ms kept its upstream open"
        assert rec.response_done_at is None
    finally:
        c.close()
    primary.set_behavior(mu.ok())
    assert s.chat().status == 200


def test_sigterm_lets_open_streams_finish(sluice_factory, primary):
    chunks = 8
    primary.set_behavior(mu.slow_stream(chunks=chunks, chunk_delay=0.25))
    s = sluice_factory({"primary": primary}, routes=[sh.route()], server={"shutdown_grace_ms": 8000})
    # An idle keep-alive connection must not hold the shutdown up.
    import http.client
    idle = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    idle.request("GET", "/health")
    assert idle.getresponse().read()

    streams = [s.stream(sh.chat_body(stream=True)) for _ in range(2)]
    results = [None, None]
    iters = [iter(c.events()) for c in streams]
    firsts = [next(it) for it in iters]

    def finish(i):
        results[i] = [firsts[i]] + list(iters[i])

    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    threads = [threading.Thread(target=finish, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for i, c in enumerate(streams):
        events = results[i]
        assert events is not None
        assert c.clean_end, f"stream {i} was cut by SIGTERM"
        assert events[-1].data == "[DONE]"
        assert sh.stream_text(events) == mu.content_of(chunks)
        c.close()
    rc = s.wait(timeout=15)
    exited_after = time.monotonic() - t0
    idle.close()
    assert rc == 0, f"exit code {rc}"
    assert exited_after < 6.0, f"exit took {exited_after:.1f}s: an idle connection held the drain up"
    # New connections are refused once it is gone.
    try:
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    assert refused


def test_sigterm_when_idle_exits_zero(sluice_factory, primary):
    s = sluice_factory({"primary": primary}, routes=[sh.route()])
    assert s.chat().status == 200
    t0 = time.monotonic()
    rc = s.stop(timeout=10)
    assert rc == 0
    assert time.monotonic() - t0 < 5.0
