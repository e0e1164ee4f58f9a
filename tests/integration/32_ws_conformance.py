"""WebSocket conformance against the real server, organised like the Autobahn testsuite's
sections: 1 framing, 2 pings/pongs, 3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8
handling, 7 close handling, 9 limits; plus the handshake (101, 426, 400, 403, subprotocol,
auth) and the closes the server starts itself (filter error, shutdown).

Each case asserts the server's exact answer: the pong's payload, the JSON reply of the route's
`message` hook to a (possibly fragmented) text message, or the close code. The echo hook
returns {"echo": <the message>}, so a reply proves the server reassembled exactly the bytes the
client sent. After every case a bystander WebSocket, open from the start, must still get a
freshly published event and /health must answer: one bad client never hurts the others."""

import json
import socket
import time

import frtest as ft

LIMIT = 131072  # limits.body: the largest WebSocket message the server accepts

APP = """
    heartbeat = 60,
    retry = 1000,
    cors = { "https://good.example" },
    limits = { body = 131072 },
"""

# The stream route of the conformance app: topics from the path, a message hook that echoes,
# auth that refuses ?deny=1, a filter that raises on the event "boom".
ECHO_ROUTE = """
    local route = {}
    function route.auth(req)
      if req.query.deny == "1" then return nil, 401, "no entry" end
      return { name = req.query.user or "anon" }
    end
    function route.topics(req, who)
      local list = {}
      for name in req.params.topics:gmatch("[^,]+") do list[#list + 1] = name end
      return list
    end
    function route.filter(event, who)
      if event.data == "boom" then error("filter blew up") end
      return true
    end
    function route.message(conn, msg, who)
      if msg.type == "whoami" then
        return { conn = conn, who = who }
      end
      if msg.type == "raise" then error("message hook blew up") end
      return { echo = msg }
    end
    return route
"""

UTF8_SAMPLE = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 \U0010FFFF"


def echo_msg(text, kind="echo"):
    """A JSON message the echo hook answers, and its encoded bytes."""
    obj = {"type": kind, "text": text}
    return obj, json.dumps(obj, ensure_ascii=False).encode()


def padded_msg(size):
    """A JSON message of exactly `size` bytes."""
    head = b'{"type":"echo","text":"'
    tail = b'"}'
    pad = size - len(head) - len(tail)
    ft.check(pad >= 0, "padded message too small", size)
    raw = head + b"x" * pad + tail
    return json.loads(raw), raw


class Suite:
    def __init__(self, srv):
        self.srv = srv
        self.port = srv.port
        self.bystander = ft.ws_connect(self.port, "/sub/watch", timeout=10)
        self.case_count = 0

    def ws(self, path="/sub/conf", **kw):
        return ft.ws_connect(self.port, path, **kw)

    def expect_echo(self, ws, obj, timeout=5):
        reply = ws.next_json(timeout, answer_pings=False)
        ft.check_eq(reply, {"echo": obj}, "the message hook's reply")

    def others_fine(self):
        """The bystander still gets events and the server still answers."""
        self.case_count += 1
        data = f"still here {self.case_count}"
        eid = ft.publish(self.port, "/pub/watch", data)
        got = self.bystander.events(1)[0]
        ft.check_eq((got["id"], got["data"]), (eid, data),
                    "the bystander WebSocket's next event after a bad client")
        ft.check_eq(self.srv.health()["status"], "ok", "/health after a bad client")

    def case(self, name, fn):
        with ft.subtest(name):
            fn()
            self.others_fine()


def nodelay(ws):
    ws.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def send_slowly(ws, data, chunk=1, delay=0.001):
    """Sends data in pieces of `chunk` bytes, each in a TCP segment of its own."""
    nodelay(ws)
    for i in range(0, len(data), chunk):
        ws.send_raw(data[i:i + chunk])
        time.sleep(delay)


# ---- handshake -------------------------------------------------------------------------------


def handshake_cases(t):
    port = t.port

    def accept_and_no_protocol():
        with ft.WSClient(port, "/sub/conf") as ws:
            ft.check_eq(ws.status, 101, "status of a valid upgrade")
            ft.check_eq((ws.response.header("connection") or "").lower(), "upgrade",
                        "Connection header of the 101 answer")
            ft.check_eq(ws.response.header("sec-websocket-protocol"), None,
                        "Sec-WebSocket-Protocol when the client offered none")
            # Nothing follows the 101 until there is something to say.
            ws.expect_no_message(0.1)
    t.case("handshake: 101 with the right Sec-WebSocket-Accept, no subprotocol unasked",
           accept_and_no_protocol)

    def subprotocol_offered():
        with ft.WSClient(port, "/sub/conf", protocols="chat, freshet.v1") as ws:
            ft.check_eq(ws.status, 101, "status")
            ft.check_eq(ws.response.header("sec-websocket-protocol"), "freshet.v1",
                        "the subprotocol chosen among chat, freshet.v1")
    t.case("handshake: freshet.v1 chosen when offered among others", subprotocol_offered)

    def subprotocol_unknown():
        with ft.WSClient(port, "/sub/conf", protocols="chat, superchat") as ws:
            ft.check_eq(ws.status, 101, "status (a server may accept without a subprotocol)")
            ft.check_eq(ws.response.header("sec-websocket-protocol"), None,
                        "Sec-WebSocket-Protocol: the server must not pick one the client did "
                        "not offer")
    t.case("handshake: no Sec-WebSocket-Protocol when freshet.v1 is not offered",
           subprotocol_unknown)

    for version in ("8", "12", "14", None):
        def wrong_version(version=version):
            with ft.WSClient(port, "/sub/conf", version=version) as ws:
                ws.response.check_error(426, f"Sec-WebSocket-Version {version}")
                ft.check_eq(ws.response.header("sec-websocket-version"), "13",
                            "Sec-WebSocket-Version header of the 426 answer")
        t.case(f"handshake: version {version or '(missing)'} -> 426 with "
               "Sec-WebSocket-Version: 13", wrong_version)

    bad_keys = {
        "missing": "",
        "not base64": "not a websocket key!!!!=",
        "15 bytes": "AAAAAAAAAAAAAAAAAAAA",          # base64 of 15 bytes
        "17 bytes": "AAAAAAAAAAAAAAAAAAAAAAA=",      # base64 of 17 bytes
    }
    for what, key in bad_keys.items():
        def bad_key(key=key, what=what):
            with ft.WSClient(port, "/sub/conf", key=key) as ws:
                ws.response.check_error(400, f"Sec-WebSocket-Key {what}")
        t.case(f"handshake: Sec-WebSocket-Key {what} -> 400", bad_key)

    def no_connection_upgrade():
        with ft.WSClient(port, "/sub/conf", upgrade=False,
                         headers={"Upgrade": "websocket", "Connection": "keep-alive"}) as ws:
            ws.response.check_error(400, "Upgrade: websocket without Connection: Upgrade")
    t.case("handshake: Upgrade without Connection: Upgrade -> 400", no_connection_upgrade)

    def origin_allowed():
        with ft.WSClient(port, "/sub/conf", origin="https://good.example") as ws:
            ft.check_eq(ws.status, 101, "status for an Origin the app lists in cors")
    t.case("handshake: an Origin listed in cors -> 101", origin_allowed)

    def origin_refused():
        with ft.WSClient(port, "/sub/conf", origin="https://evil.example") as ws:
            ws.response.check_error(403, "Origin not listed in cors")
    t.case("handshake: an Origin not listed in cors -> 403 (cross-site WebSocket hijacking)",
           origin_refused)

    def no_origin():
        with ft.WSClient(port, "/sub/conf") as ws:
            ft.check_eq(ws.status, 101, "status without Origin (a client that is not a browser)")
    t.case("handshake: no Origin -> 101", no_origin)

    def auth_refused():
        with ft.WSClient(port, "/sub/conf?deny=1") as ws:
            ft.check_eq(ws.response.check_error(401, "auth refusing the upgrade"), "no entry",
                        "the auth hook's message")
    t.case("handshake: the route's auth hook refuses -> its status, no upgrade", auth_refused)

    def conn_table():
        with t.ws("/sub/conf,other?user=ann") as ws:
            ws.send_json({"type": "whoami"})
            reply = ws.next_json()
            conn = reply.get("conn") or {}
            ft.check(isinstance(conn.get("id"), (int, float)), "conn.id is a number", reply)
            ft.check_eq(conn.get("remote"), "127.0.0.1", "conn.remote")
            ft.check_eq(conn.get("topics"), ["conf", "other"], "conn.topics")
            ft.check_eq(reply.get("who"), {"name": "ann"}, "who (from the auth hook)")
    t.case("handshake: the message hook gets conn {id, remote, topics} and who", conn_table)


# ---- 1 framing -----------------------------------------------------------------------------


def framing_cases(t):
    def empty():
        with t.ws() as ws:
            ws.send_frame(ft.WS_TEXT, b"")
            ft.check_eq(ws.next_json(), {"v": 1, "type": "error",
                                         "error": "messages are JSON objects"},
                        "reply to an empty text message")
    t.case("1.1 empty text message -> the error message for what is not JSON", empty)

    for size in (30, 125, 126, 127, 128, 65535, 65536, 100000):
        def sized(size=size):
            with t.ws() as ws:
                obj, raw = padded_msg(size)
                ws.send_frame(ft.WS_TEXT, raw)
                t.expect_echo(ws, obj)
        t.case(f"1.1 text message of {size} bytes in one frame -> echoed", sized)

    def long_forms():
        # The 16- and 64-bit length forms with payloads that need them.
        with t.ws() as ws:
            for size, form in ((200, 16), (70000, 64)):
                obj, raw = padded_msg(size)
                ws.send_frame(ft.WS_TEXT, raw, length_form=form)
                t.expect_echo(ws, obj)
    t.case("1.1 16-bit and 64-bit length forms", long_forms)

    def byte_by_byte():
        with t.ws() as ws:
            obj, raw = echo_msg("one byte per TCP segment")
            send_slowly(ws, ft.ws_frame(ft.WS_TEXT, raw))
            t.expect_echo(ws, obj)
    t.case("1.1 a frame sent one byte at a time", byte_by_byte)

    def many_in_one_write():
        with t.ws() as ws:
            msgs = [echo_msg(f"message {i}") for i in range(20)]
            ws.send_raw(b"".join(ft.ws_frame(ft.WS_TEXT, raw) for _, raw in msgs))
            for obj, _ in msgs:
                t.expect_echo(ws, obj)
    t.case("1.1 twenty frames in one TCP write: twenty replies in order", many_in_one_write)

    def not_json():
        with t.ws() as ws:
            ws.send_text("hello, not json")
            ft.check_eq(ws.next_json(), {"v": 1, "type": "error",
                                         "error": "messages are JSON objects"},
                        "reply to a text message that is not a JSON object")
            for other in ('"a JSON string"', "42", "true", "null"):
                ws.send_text(other)
                ft.check_eq(ws.next_json(), {"v": 1, "type": "error",
                                             "error": "messages are JSON objects"},
                            f"reply to the JSON value {other}")
            # The connection is still usable.
            obj, raw = echo_msg("after the errors")
            ws.send_frame(ft.WS_TEXT, raw)
            t.expect_echo(ws, obj)
    t.case("1.x text that is not a JSON object -> an error message, the socket stays open",
           not_json)

    def unmasked():
        with t.ws() as ws:
            obj, raw = echo_msg("unmasked")
            ws.send_frame(ft.WS_TEXT, raw, mask=False)
            ws.expect_close(1002)
    t.case("1.x unmasked client frame -> close 1002", unmasked)

    def unmasked_after_good():
        with t.ws() as ws:
            obj, raw = echo_msg("good first")
            ws.send_frame(ft.WS_TEXT, raw)
            t.expect_echo(ws, obj)
            ws.send_frame(ft.WS_PING, b"x", mask=False)
            ws.expect_close(1002)
    t.case("1.x unmasked ping after a good message -> close 1002, no pong", unmasked_after_good)

    def top_bit_length():
        with t.ws() as ws:
            # A 64-bit length with the most significant bit set (RFC 6455 §5.2).
            ws.send_raw(bytes([0x81, 0x80 | 127]) + (1 << 63 | 5).to_bytes(8, "big")
                        + b"\0\0\0\0")
            ws.expect_close(1002)
    t.case("1.x 64-bit length with the top bit set -> close 1002", top_bit_length)


# ---- 2 pings and pongs ---------------------------------------------------------------------


def ping_cases(t):
    payloads = {
        "2.1 empty ping": b"",
        "2.2 ping with a text payload": b"Hello, world!",
        "2.3 ping with a binary payload": bytes([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]),
        "2.4 ping with a 125-byte payload": bytes(range(125)),
    }
    for name, payload in payloads.items():
        def ping(payload=payload):
            with t.ws() as ws:
                ws.send_frame(ft.WS_PING, payload)
                f = ws.recv_frame()
                ft.check(f is not None, "connection closed instead of a pong")
                ft.check_eq((f.opcode, f.fin, f.rsv, f.payload), (ft.WS_PONG, True, 0, payload),
                            "(opcode, fin, rsv, payload) of the answer")
        t.case(f"{name} -> pong with the same payload", ping)

    def ping_126():
        with t.ws() as ws:
            ws.send_frame(ft.WS_PING, b"x" * 126)
            ws.expect_close(1002)
    t.case("2.5 ping with a 126-byte payload -> close 1002, no pong", ping_126)

    def ping_slowly():
        with t.ws() as ws:
            payload = bytes(range(125))
            send_slowly(ws, ft.ws_frame(ft.WS_PING, payload))
            f = ws.recv_frame()
            ft.check_eq((f.opcode, f.payload), (ft.WS_PONG, payload), "the pong")
    t.case("2.6 125-byte ping sent one byte at a time -> pong", ping_slowly)

    def unsolicited_pong():
        with t.ws() as ws:
            ws.send_frame(ft.WS_PONG, b"")
            ws.send_frame(ft.WS_PONG, b"unsolicited")
            # The next thing the server sends answers the message after the pongs.
            obj, raw = echo_msg("after pongs")
            ws.send_frame(ft.WS_TEXT, raw)
            t.expect_echo(ws, obj)
    t.case("2.7/2.8 unsolicited pongs are ignored", unsolicited_pong)

    def pong_then_ping():
        with t.ws() as ws:
            ws.send_raw(ft.ws_frame(ft.WS_PONG, b"unsolicited")
                        + ft.ws_frame(ft.WS_PING, b"ping payload"))
            f = ws.recv_frame()
            ft.check_eq((f.opcode, f.payload), (ft.WS_PONG, b"ping payload"),
                        "the only answer is the ping's pong")
            ws.expect_no_message(0.2)
    t.case("2.9 unsolicited pong, then ping -> one pong for the ping", pong_then_ping)

    def ten_pings():
        with t.ws() as ws:
            payloads = [f"payload-{i}".encode() for i in range(10)]
            ws.send_raw(b"".join(ft.ws_frame(ft.WS_PING, p) for p in payloads))
            got = [ws.recv_frame() for _ in payloads]
            ft.check_eq([(f.opcode, f.payload) for f in got],
                        [(ft.WS_PONG, p) for p in payloads], "ten pongs in order")
    t.case("2.10/2.11 ten pings in one write -> ten pongs in order", ten_pings)

    def json_ping():
        with t.ws() as ws:
            ws.send_json({"type": "ping"})
            ft.check_eq(ws.next_json(answer_pings=False), {"v": 1, "type": "pong"},
                        "the reply to an application-level ping")
    t.case("2.x {\"type\":\"ping\"} -> {\"v\":1,\"type\":\"pong\"}", json_ping)


# ---- 3 reserved bits ------------------------------------------------------------------------


def rsv_cases(t):
    obj, raw = echo_msg("valid")
    cases = [
        ("3.1 text with RSV1", ft.WS_TEXT, raw, 1),
        ("3.2 text with RSV2 after a good message", ft.WS_TEXT, raw, 2),
        ("3.3 text with RSV1+RSV2", ft.WS_TEXT, raw, 3),
        ("3.4 text with RSV3", ft.WS_TEXT, raw, 4),
        ("3.5 binary with RSV1+RSV3", ft.WS_BINARY, b"\x00\x01", 5),
        ("3.6 ping with RSV2+RSV3", ft.WS_PING, b"ping", 6),
        ("3.7 close with all reserved bits", ft.WS_CLOSE, ft.ws_close_payload(1000), 7),
    ]
    for name, op, payload, rsv in cases:
        def bad(op=op, payload=payload, rsv=rsv, name=name):
            with t.ws() as ws:
                if "after a good" in name:
                    ws.send_frame(ft.WS_TEXT, raw)
                    t.expect_echo(ws, obj)
                # A ping after the bad frame must not be answered: the server stops at it.
                ws.send_raw(ft.ws_frame(op, payload, rsv=rsv) + ft.ws_frame(ft.WS_PING, b"p"))
                ws.expect_close(1002)
        t.case(f"{name} -> close 1002, nothing after it answered", bad)


# ---- 4 opcodes ------------------------------------------------------------------------------


def opcode_cases(t):
    obj, raw = echo_msg("before the bad opcode")
    for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
        kind = "non-control" if op < 8 else "control"

        def bad(op=op):
            with t.ws() as ws:
                ws.send_frame(ft.WS_TEXT, raw)
                t.expect_echo(ws, obj)
                ws.send_raw(ft.ws_frame(op, b"payload") + ft.ws_frame(ft.WS_PING, b"p"))
                ws.expect_close(1002)
        section = "4.1" if op < 8 else "4.2"
        t.case(f"{section} reserved {kind} opcode {op} -> close 1002", bad)

    def binary():
        with t.ws() as ws:
            ws.send_frame(ft.WS_BINARY, b"\x00\x01\x02")
            f = ws.expect_close(1003)
            ft.check_eq(f.close_reason, "messages are JSON text", "close reason")
    t.case("4.x binary message -> close 1003 (messages are JSON text)", binary)


# ---- 5 fragmentation ------------------------------------------------------------------------


def fragmentation_cases(t):
    def fragmented_ping():
        with t.ws() as ws:
            ws.send_raw(ft.ws_frame(ft.WS_PING, b"frag", fin=False)
                        + ft.ws_frame(ft.WS_CONT, b"ment", fin=True))
            ws.expect_close(1002)
    t.case("5.1 fragmented ping -> close 1002", fragmented_ping)

    def fragmented_pong():
        with t.ws() as ws:
            ws.send_raw(ft.ws_frame(ft.WS_PONG, b"frag", fin=False)
                        + ft.ws_frame(ft.WS_CONT, b"ment", fin=True))
            ws.expect_close(1002)
    t.case("5.2 fragmented pong -> close 1002", fragmented_pong)

    def two_fragments(slow=False):
        with t.ws() as ws:
            obj, raw = echo_msg("two fragments")
            half = len(raw) // 2
            a = ft.ws_frame(ft.WS_TEXT, raw[:half], fin=False)
            b = ft.ws_frame(ft.WS_CONT, raw[half:], fin=True)
            if slow:
                send_slowly(ws, a + b, chunk=3)
            else:
                ws.send_raw(a)
                time.sleep(0.05)
                ws.send_raw(b)
            t.expect_echo(ws, obj)
    t.case("5.3/5.4 text in two fragments -> one reply", two_fragments)
    t.case("5.5 text in two fragments, sent three bytes at a time -> one reply",
           lambda: two_fragments(slow=True))

    def ping_between(with_delay):
        with t.ws() as ws:
            obj, raw = echo_msg("fragments with pings between them")
            parts = [raw[i:i + 7] for i in range(0, len(raw), 7)]
            frames = []
            for i, p in enumerate(parts):
                op = ft.WS_TEXT if i == 0 else ft.WS_CONT
                frames.append(ft.ws_frame(op, p, fin=i == len(parts) - 1))
                if i < len(parts) - 1:
                    frames.append(ft.ws_frame(ft.WS_PING, f"ping {i}".encode()))
            for f in frames:
                ws.send_raw(f)
                if with_delay:
                    time.sleep(0.005)
            # Each ping is answered as it arrives, before the message is complete.
            for i in range(len(parts) - 1):
                f = ws.recv_frame()
                ft.check_eq((f.opcode, f.payload), (ft.WS_PONG, f"ping {i}".encode()),
                            f"pong {i} between the fragments")
            t.expect_echo(ws, obj)
    t.case("5.6/5.7 pings between fragments are answered, then the message",
           lambda: ping_between(False))
    t.case("5.8/5.19 same, with a pause after each frame", lambda: ping_between(True))

    def cont_without_message(fin):
        with t.ws() as ws:
            ws.send_raw(ft.ws_frame(ft.WS_CONT, b'{"type":"echo"}', fin=fin)
                        + ft.ws_frame(ft.WS_PING, b"p"))
            ws.expect_close(1002)
    t.case("5.9 continuation (fin) with no message started -> close 1002",
           lambda: cont_without_message(True))
    t.case("5.10 continuation (not fin) with no message started -> close 1002",
           lambda: cont_without_message(False))

    def cont_after_end():
        with t.ws() as ws:
            obj, raw = echo_msg("complete")
            ws.send_raw(ft.ws_frame(ft.WS_TEXT, raw[:5], fin=False)
                        + ft.ws_frame(ft.WS_CONT, raw[5:], fin=True)
                        + ft.ws_frame(ft.WS_CONT, b"extra", fin=True))
            t.expect_echo(ws, obj)
            ws.expect_close(1002)
    t.case("5.15 a continuation after the message ended -> reply, then close 1002",
           cont_after_end)

    def new_message_inside(op):
        with t.ws() as ws:
            obj, raw = echo_msg("interrupted")
            ws.send_raw(ft.ws_frame(ft.WS_TEXT, raw[:5], fin=False)
                        + ft.ws_frame(op, raw, fin=True))
            ws.expect_close(1002)
    t.case("5.17 a text frame inside a fragmented message -> close 1002",
           lambda: new_message_inside(ft.WS_TEXT))
    t.case("5.18 a binary frame inside a fragmented message -> close 1002",
           lambda: new_message_inside(ft.WS_BINARY))

    def empty_fragments():
        with t.ws() as ws:
            obj, raw = echo_msg("empty fragments around me")
            ws.send_raw(ft.ws_frame(ft.WS_TEXT, b"", fin=False)
                        + ft.ws_frame(ft.WS_CONT, raw, fin=False)
                        + ft.ws_frame(ft.WS_CONT, b"", fin=False)
                        + ft.ws_frame(ft.WS_CONT, b"", fin=True))
            t.expect_echo(ws, obj)
    t.case("5.x empty fragments before, between and after the data -> one reply",
           empty_fragments)

    def many_fragments():
        with t.ws() as ws:
            obj, raw = padded_msg(20000)
            frames = [ft.ws_frame(ft.WS_TEXT if i == 0 else ft.WS_CONT, raw[i:i + 16],
                                  fin=i + 16 >= len(raw))
                      for i in range(0, len(raw), 16)]
            ws.send_raw(b"".join(frames))
            t.expect_echo(ws, obj)
    t.case("5.x a 20,000-byte message in 1,250 fragments -> one reply", many_fragments)


# ---- 6 UTF-8 handling -----------------------------------------------------------------------


VALID_TEXTS = {
    "6.2 multi-byte text (2-, 3- and 4-byte sequences)": UTF8_SAMPLE,
    "6.3 U+007F, U+0080, U+07FF, U+0800": "\u007f\u0080\u07ff\u0800",
    "6.4 U+D7FF and U+E000 (either side of the surrogates)": "\ud7ff\ue000",
    "6.5 U+FFFD, U+FFFE, U+FFFF (noncharacters are valid UTF-8)": "\ufffd\ufffe\uffff",
    "6.6 U+10000 and U+10FFFF": "\U00010000\U0010FFFF",
}

# Byte sequences that are not UTF-8, wrapped in a JSON string so that only the encoding is wrong.
INVALID_BYTES = {
    "lone continuation byte 0x80": b"\x80",
    "lone continuation byte 0xBF": b"\xbf",
    "start byte 0xC0 (overlong '/')": b"\xc0\xaf",
    "start byte 0xC1": b"\xc1\xbf",
    "overlong 3-byte NUL": b"\xe0\x80\x80",
    "overlong 4-byte U+FFFF": b"\xf0\x8f\xbf\xbf",
    "UTF-16 high surrogate U+D800": b"\xed\xa0\x80",
    "UTF-16 low surrogate U+DFFF": b"\xed\xbf\xbf",
    "U+110000 (past the last code point)": b"\xf4\x90\x80\x80",
    "start byte 0xF5": b"\xf5\x80\x80\x80",
    "5-byte sequence": b"\xf8\x88\x80\x80\x80",
    "6-byte sequence": b"\xfc\x84\x80\x80\x80\x80",
    "byte 0xFE": b"\xfe",
    "byte 0xFF": b"\xff",
    "2-byte start then ASCII": b"\xc2A",
    "3-byte start cut by ASCII": b"\xe2\x82A",
}


def utf8_cases(t):
    for name, text in VALID_TEXTS.items():
        def valid(text=text):
            with t.ws() as ws:
                obj, raw = echo_msg(text)
                ws.send_frame(ft.WS_TEXT, raw)
                t.expect_echo(ws, obj)
        t.case(f"{name} -> echoed exactly", valid)

    def split_every_byte():
        # The text split at every byte position across two fragments, sequences included.
        obj, raw = echo_msg("µ𝄞κ")
        with t.ws() as ws:
            for cut in range(1, len(raw)):
                ws.send_raw(ft.ws_frame(ft.WS_TEXT, raw[:cut], fin=False)
                            + ft.ws_frame(ft.WS_CONT, raw[cut:], fin=True))
                t.expect_echo(ws, obj)
    t.case("6.2 valid text split into two fragments at every byte -> every one echoed",
           split_every_byte)

    def one_byte_fragments():
        obj, raw = echo_msg(UTF8_SAMPLE)
        with t.ws() as ws:
            frames = [ft.ws_frame(ft.WS_TEXT if i == 0 else ft.WS_CONT, raw[i:i + 1],
                                  fin=i == len(raw) - 1) for i in range(len(raw))]
            ws.send_raw(b"".join(frames))
            t.expect_echo(ws, obj)
    t.case("6.2 valid text in one-byte fragments -> echoed", one_byte_fragments)

    for name, bad in INVALID_BYTES.items():
        def invalid(bad=bad):
            with t.ws() as ws:
                raw = b'{"type":"echo","text":"ok ' + bad + b' ok"}'
                ws.send_frame(ft.WS_TEXT, raw)
                ws.expect_close(1007)
        t.case(f"6.x invalid UTF-8 ({name}) -> close 1007", invalid)

    def truncated_at_end():
        with t.ws() as ws:
            # The message ends in the middle of a 4-byte sequence.
            ws.send_frame(ft.WS_TEXT, b'{"type":"echo"} \xf0\x9d\x84')
            ws.expect_close(1007)
    t.case("6.x text that ends inside a UTF-8 sequence -> close 1007", truncated_at_end)

    def split_then_bad():
        with t.ws() as ws:
            # A sequence started in one fragment and broken in the next.
            ws.send_raw(ft.ws_frame(ft.WS_TEXT, b'{"text":"\xf0\x9d', fin=False)
                        + ft.ws_frame(ft.WS_CONT, b'A"}', fin=True))
            ws.expect_close(1007)
    t.case("6.x a UTF-8 sequence broken across fragments -> close 1007", split_then_bad)

    def fail_fast():
        # The server checks text as it arrives: the invalid first fragment is refused before
        # the message is complete (the final fragment is never sent).
        with t.ws() as ws:
            ws.send_frame(ft.WS_TEXT, b'{"text":"\xce\xba\xe1\xbd\xb9\xed\xa0\x80', fin=False)
            ws.expect_close(1007)
    t.case("6.4 invalid UTF-8 in the first fragment -> close 1007 without waiting for the rest",
           fail_fast)


# ---- 7 close handling -----------------------------------------------------------------------


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535]


def close_cases(t):
    def message_then_close():
        with t.ws() as ws:
            obj, raw = echo_msg("last words")
            ws.send_raw(ft.ws_frame(ft.WS_TEXT, raw) + ft.ws_frame(ft.WS_CLOSE,
                                                                    ft.ws_close_payload(1000)))
            t.expect_echo(ws, obj)
            ws.expect_close(1000)
    t.case("7.1.1 a message, then close 1000 -> the reply, then close 1000", message_then_close)

    def close_twice():
        with t.ws() as ws:
            ws.send_raw(ft.ws_frame(ft.WS_CLOSE, ft.ws_close_payload(1000))
                        + ft.ws_frame(ft.WS_CLOSE, ft.ws_close_payload(1001)))
            ws.expect_close(1000)
    t.case("7.1.2 two closes -> one close 1000, then the end", close_twice)

    def after_close(what, frame):
        with t.ws() as ws:
            ws.send_raw(ft.ws_frame(ft.WS_CLOSE, ft.ws_close_payload(1000)) + frame)
            ws.expect_close(1000)
    t.case("7.1.3 close then ping -> close 1000, no pong",
           lambda: after_close("ping", ft.ws_frame(ft.WS_PING, b"late")))
    t.case("7.1.4 close then text -> close 1000, no reply",
           lambda: after_close("text", ft.ws_frame(ft.WS_TEXT, echo_msg("late")[1])))

    def close_between_fragments():
        with t.ws() as ws:
            obj, raw = echo_msg("never finished")
            ws.send_raw(ft.ws_frame(ft.WS_TEXT, raw[:5], fin=False)
                        + ft.ws_frame(ft.WS_CLOSE, ft.ws_close_payload(1000))
                        + ft.ws_frame(ft.WS_CONT, raw[5:], fin=True))
            ws.expect_close(1000)
    t.case("7.1.5 close between the fragments of a message -> close 1000, no reply",
           close_between_fragments)

    def empty_close():
        with t.ws() as ws:
            ws.send_close()
            ws.expect_close(None)
    t.case("7.3.1 close without a payload -> a close without a payload", empty_close)

    def one_byte_close():
        with t.ws() as ws:
            ws.send_frame(ft.WS_CLOSE, b"\x03")
            ws.expect_close(1002)
    t.case("7.3.2 close with a 1-byte payload -> close 1002", one_byte_close)

    def close_with_reason(reason, expect):
        with t.ws() as ws:
            ws.send_frame(ft.WS_CLOSE, ft.ws_close_payload(1000, reason))
            ws.expect_close(expect)
    t.case("7.3.3 close 1000 without a reason -> close 1000",
           lambda: close_with_reason(b"", 1000))
    t.case("7.3.4 close 1000 with a reason -> close 1000",
           lambda: close_with_reason("Hello World! κόσμε".encode(), 1000))
    t.case("7.3.5 close 1000 with a 123-byte reason (125-byte payload) -> close 1000",
           lambda: close_with_reason(b"*" * 123, 1000))
    t.case("7.3.6 close with a 124-byte reason (126-byte payload) -> close 1002",
           lambda: close_with_reason(b"*" * 124, 1002))
    t.case("7.5.1 close with a reason that is not UTF-8 -> close 1007",
           lambda: close_with_reason(b"bad \xce\xba\xe1\xbd\xb9\xed\xa0\x80 reason", 1007))

    for code in VALID_CODES:
        def valid(code=code):
            with t.ws() as ws:
                ws.send_close(code, b"bye")
                ws.expect_close(code)
        t.case(f"7.7 close {code} -> echoed", valid)

    for code in INVALID_CODES:
        def invalid(code=code):
            with t.ws() as ws:
                ws.send_close(code)
                ws.expect_close(1002)
        t.case(f"7.9 close with the invalid code {code} -> close 1002", invalid)

    def filter_error():
        with t.ws("/sub/boom") as ws:
            eid = ft.publish(t.port, "/pub/boom", "fine")
            got = ws.events(1)[0]
            ft.check_eq((got["id"], got["data"]), (eid, "fine"), "the event before the error")
            ft.publish(t.port, "/pub/boom", "boom")
            ws.expect_close(1011)
    t.case("7.x the route's filter raises -> the server closes with 1011", filter_error)

    def message_hook_error():
        with t.ws() as ws:
            ws.send_json({"type": "raise"})
            ft.check_eq(ws.next_json(), {"v": 1, "type": "error", "error": "internal error"},
                        "the reply when the message hook raises")
            obj, raw = echo_msg("still open")
            ws.send_frame(ft.WS_TEXT, raw)
            t.expect_echo(ws, obj)
    t.case("7.x the message hook raises -> an error message, the socket stays open",
           message_hook_error)


# ---- 9 limits -------------------------------------------------------------------------------


def limit_cases(t):
    def at_limit():
        with t.ws() as ws:
            obj, raw = padded_msg(LIMIT)
            ws.send_frame(ft.WS_TEXT, raw)
            t.expect_echo(ws, obj, timeout=10)
    t.case(f"9.1 a message of exactly limits.body ({LIMIT} bytes) -> echoed", at_limit)

    def at_limit_fragmented():
        with t.ws() as ws:
            obj, raw = padded_msg(LIMIT)
            frames = [ft.ws_frame(ft.WS_TEXT if i == 0 else ft.WS_CONT, raw[i:i + 4096],
                                  fin=i + 4096 >= len(raw)) for i in range(0, len(raw), 4096)]
            ws.send_raw(b"".join(frames))
            t.expect_echo(ws, obj, timeout=10)
    t.case("9.2 the same message in 4 KiB fragments -> echoed", at_limit_fragmented)

    def over_limit_header_only():
        with t.ws() as ws:
            # Only the header is sent: the length alone must be enough to refuse it.
            ws.send_raw(bytes([0x81, 0x80 | 127]) + (LIMIT + 1).to_bytes(8, "big") + b"\1\2\3\4")
            ws.expect_close(1009)
    t.case("9.3 a frame announcing limits.body + 1 bytes -> close 1009 before its payload",
           over_limit_header_only)

    def huge_header_only():
        with t.ws() as ws:
            ws.send_raw(bytes([0x81, 0x80 | 127]) + (1 << 40).to_bytes(8, "big") + b"\1\2\3\4")
            ws.expect_close(1009)
    t.case("9.4 a frame announcing 1 TiB -> close 1009 at once", huge_header_only)

    def over_limit_fragments():
        with t.ws() as ws:
            obj, raw = padded_msg(LIMIT)
            # limits.body bytes in fragments, then one more fragment with one byte.
            frames = [ft.ws_frame(ft.WS_TEXT if i == 0 else ft.WS_CONT, raw[i:i + 32768],
                                  fin=False) for i in range(0, len(raw), 32768)]
            ws.send_raw(b"".join(frames))
            ws.send_raw(ft.ws_frame(ft.WS_CONT, b" ", fin=True))
            ws.expect_close(1009)
    t.case("9.5 fragments summing to limits.body + 1 -> close 1009", over_limit_fragments)

    def control_over_limit():
        with t.ws() as ws:
            # A ping whose 16-bit length says 126: control frames hold at most 125 bytes.
            ws.send_raw(bytes([0x89, 0x80 | 126]) + (126).to_bytes(2, "big") + b"\0\0\0\0"
                        + b"x" * 126)
            ws.expect_close(1002)
    t.case("9.x a control frame with a 126-byte payload -> close 1002", control_over_limit)

    def many_messages():
        with t.ws() as ws:
            msgs = [echo_msg(f"burst {i}") for i in range(500)]
            ws.send_raw(b"".join(ft.ws_frame(ft.WS_TEXT, raw) for _, raw in msgs))
            for obj, _ in msgs:
                t.expect_echo(ws, obj)
    t.case("9.x 500 messages in one write -> 500 replies in order", many_messages)


# ---- shutdown -------------------------------------------------------------------------------


def shutdown_case(t, srv):
    with ft.subtest("shutdown (SIGTERM) -> open WebSockets get close 1001 with a reason"):
        ws = t.ws()
        watcher = t.bystander
        srv.stop()
        for c in (ws, watcher):
            f = c.expect_close(1001, timeout=10)
            ft.check(f.close_reason, "the 1001 close carries a reason", f.payload)
            c.close()


def run():
    ft.require_file(ft.BIN, "freshet binary")
    appdir = ft.pubsub_app(APP, files={"routes/sub.lua": ECHO_ROUTE})
    with ft.Server(appdir) as srv:
        t = Suite(srv)
        handshake_cases(t)
        framing_cases(t)
        ping_cases(t)
        rsv_cases(t)
        opcode_cases(t)
        fragmentation_cases(t)
        utf8_cases(t)
        close_cases(t)
        limit_cases(t)
        shutdown_case(t, srv)

    # Without a cors list, the handshake takes any Origin (no origin policy to enforce).
    with ft.Server(ft.pubsub_app("heartbeat = 60,")) as srv:
        with ft.subtest("handshake: no cors in the app -> any Origin gets 101"):
            with ft.WSClient(srv.port, "/sub/x", origin="https://anywhere.example") as ws:
                ft.check_eq(ws.status, 101, "status")
        with ft.subtest("handshake: POST with upgrade headers on a stream route -> no upgrade"):
            resp = ft.request(srv.port, "POST", "/sub/x", body=b"",
                              headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                       "Sec-WebSocket-Version": "13",
                                       "Sec-WebSocket-Key": ft.ws_new_key()})
            ft.check(resp.status != 101 and resp.status >= 400,
                     "a POST must not be upgraded", resp.summary())


ft.main(run, limit=110)
