#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into tests/fuzz/corpus/<target>/seed-<name>.

Seeds are the well-formed and nearly well-formed inputs each target's format starts from, so
the fuzzer begins past the first byte of each format. The files are committed; run this again
after changing it (it rewrites only seed-* files, never the reproducers kept beside them).

    python3 tests/fuzz/make_seeds.py
"""

import base64
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

SEPARATOR = b"@@CONN@@"


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clear(target):
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        for n in os.listdir(d):
            if n.startswith("seed-"):
                os.remove(os.path.join(d, n))


# ---- HTTP -----------------------------------------------------------------------------------


def req(method, path, headers=(), body=None, version="HTTP/1.1"):
    lines = [f"{method} {path} {version}".encode(), b"Host: 127.0.0.1"]
    for k, v in headers:
        lines.append(k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()))
    if body is not None and not any(k.lower() in ("content-length", "transfer-encoding")
                                    for k, _ in headers):
        lines.append(b"Content-Length: %d" % len(body))
    out = b"\r\n".join(lines) + b"\r\n\r\n"
    if body is not None:
        out += body
    return out


def ws_frame(opcode, payload, fin=True, mask=b"\x11\x22\x33\x44"):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n <= 125:
        head += bytes([0x80 | n])
    elif n <= 0xFFFF:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


WS_HEADERS = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
              ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]

ID = "1700000000000-0"


def http_seeds():
    s = {}
    s["health"] = req("GET", "/health")
    s["head-health"] = req("HEAD", "/health")
    s["metrics"] = req("GET", "/metrics")
    s["client-js"] = req("GET", "/_freshet/freshet.js")
    s["stream"] = req("GET", "/sub/room", [("Accept", "text/event-stream")])
    s["stream-multi"] = req("GET", "/sub/a,b,c", [("Accept", "text/event-stream")])
    s["stream-resume"] = req("GET", "/sub/room", [("Last-Event-ID", ID)])
    s["stream-resume-query"] = req("GET", "/sub/room?lastEventId=" + ID + "&user=u1")
    s["stream-two-ids"] = req("GET", "/multi/a/b", [("Last-Event-ID", ID + "," + ID)])
    s["stream-deny"] = req("GET", "/sub/room", [("X-Deny", "451")])
    s["stream-406"] = req("GET", "/sub/room", [("Accept", "application/json")])
    s["stream-http10"] = req("GET", "/sub/room", version="HTTP/1.0")
    s["tier"] = req("GET", "/tier/conf", [("Accept", "text/event-stream")])
    s["poll"] = req("GET", "/sub/room?transport=poll&lastEventId=" + ID)
    s["publish"] = req("POST", "/pub/room", [("X-Event", "chat"), ("X-Priority", "critical")],
                       b"hello\nworld\r\nthird\rline")
    s["publish-bad-event"] = req("POST", "/pub/room", [("X-Event", "a\tb")], b"x")
    s["publish-json"] = req("POST", "/json/room", [("Content-Type", "application/json")],
                            b'{"events":[{"topic":"room","data":"a","event":"e"},'
                            b'{"data":"b\\u0000c","priority":"telemetry"}]}')
    s["publish-json-nul-topic"] = req("POST", "/json/room", [], b'{"topic":"ro\\u0000om","data":"x"}')
    s["publish-chunked"] = req("POST", "/pub/room", [("Transfer-Encoding", "chunked")],
                               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    s["publish-expect"] = req("POST", "/pub/room", [("Expect", "100-continue")], b"abc")
    s["publish-tier"] = req("POST", "/pub/room", [("X-Tier", "1")], b"abc")
    s["bad-route"] = req("POST", "/bad", [("X-Boom", "1")], b"abc")
    s["bad-route-409"] = req("POST", "/bad", [], b"abc")
    s["options"] = req("OPTIONS", "/sub/room", [("Origin", "http://ok.example"),
                                                ("Access-Control-Request-Method", "GET")])
    s["cors"] = req("GET", "/health", [("Origin", "http://ok.example")])
    s["method-405"] = req("DELETE", "/pub/room")
    s["method-unknown"] = b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n"
    s["static"] = req("GET", "/files/a.txt")
    s["static-dir"] = req("GET", "/files/sub/")
    s["static-space"] = req("GET", "/files/sub%20dir/b.js")
    s["static-head"] = req("HEAD", "/files/index.html")
    s["static-traversal"] = req("GET", "/files/..%2fsecret.txt")
    s["static-traversal2"] = req("GET", "/files/../secret.txt")
    s["static-symlink"] = req("GET", "/files/link.txt")
    s["bad-percent"] = req("GET", "/sub/%zz")
    s["bad-percent-query"] = req("GET", "/sub/a?x=%G1")
    s["topic-lf"] = req("GET", "/sub/a%0Ab")
    s["smuggle-cl-te"] = req("POST", "/pub/room", [("Content-Length", "4"),
                                                   ("Transfer-Encoding", "chunked")],
                             b"0\r\n\r\nGET /health HTTP/1.1\r\n\r\n")
    s["smuggle-cl-cl"] = req("POST", "/pub/room", [("Content-Length", "3"),
                                                   ("Content-Length", "4")], b"abcd")
    s["absolute-target"] = b"GET http://x/health HTTP/1.1\r\nHost: x\r\n\r\n"
    s["big-header"] = req("GET", "/health", [("X-Pad", "a" * 3000)])
    s["big-body"] = req("POST", "/pub/room", [("Content-Length", "99999")], b"")
    s["pipelined"] = req("GET", "/health") + req("POST", "/pub/t", [], b"1") + req("GET", "/sub/t")
    s["keepalive-close"] = req("GET", "/health", [("Connection", "close")]) + req("GET", "/health")
    ws = req("GET", "/sub/room", WS_HEADERS + [("Sec-WebSocket-Protocol", "freshet.v1")])
    s["ws"] = ws + ws_frame(1, b'{"type":"ping"}') + ws_frame(9, b"hi") + \
        ws_frame(1, b'{"type":"subscribe","topics":["x","y"]}') + \
        ws_frame(1, b'{"echo":"a\\nb"}') + ws_frame(1, b'{"type":"resume","id":"' + ID.encode() + b'"}') + \
        ws_frame(8, b"\x03\xe8bye")
    s["ws-fragmented"] = ws + ws_frame(1, b'{"echo":', fin=False) + ws_frame(0, b'"x"}')
    s["ws-bad"] = ws + b"\x81\x05hello"
    s["ws-binary"] = ws + ws_frame(2, b"\x00\x01")
    s["ws-old-version"] = req("GET", "/sub/room", WS_HEADERS[:3] + [("Sec-WebSocket-Version", "8")])
    s["ws-origin"] = req("GET", "/sub/room", WS_HEADERS + [("Origin", "http://evil.example")])
    s["ws-on-publish"] = req("GET", "/pub/room", WS_HEADERS)
    # Two and three connections: a stream, then a publish it should receive.
    s["stream-then-publish"] = req("GET", "/sub/room") + SEPARATOR + \
        req("POST", "/pub/room", [("X-Event", "e")], b"a\r\nb\nc\rd\x00e") + \
        req("POST", "/pub/room", [], b"drop") + req("POST", "/pub/room", [], b"filter-boom")
    s["ws-then-publish"] = ws + SEPARATOR + req("POST", "/pub/room", [("X-Event", "e")],
                                                b'quote " backslash \\ tab \t')
    s["multi-then-publish"] = req("GET", "/multi/a/b") + SEPARATOR + \
        req("POST", "/pub/a", [], b"1") + req("POST", "/pub/b", [], b"2") + SEPARATOR + \
        req("GET", "/multi/a/b", [("Last-Event-ID", "0-0,0-0")])
    s["tier-flood"] = req("GET", "/tier/cx") + SEPARATOR + \
        b"".join(req("POST", "/pub/cx", [], b"x" * 300) for _ in range(12))
    s["poll-then-publish"] = req("GET", "/sub/p?transport=poll") + SEPARATOR + \
        req("POST", "/pub/p", [], b"x")
    out = {}
    for name, data in s.items():
        out[name] = b"\x00" + data               # whole sends
        out[name + "-split"] = b"\x09" + data    # 5-byte pieces
    out["half-close"] = b"\x40" + s["publish"]
    out["reset"] = b"\x80" + s["stream-then-publish"]
    return out


def http_dict():
    words = ["GET", "POST", "HEAD", "OPTIONS", "PUT", "HTTP/1.1", "HTTP/1.0", "\\x0d\\x0a",
             "\\x0d\\x0a\\x0d\\x0a", "Host: ", "Content-Length: ", "Transfer-Encoding: chunked",
             "Connection: close", "Connection: keep-alive", "Connection: Upgrade",
             "Upgrade: websocket", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol: freshet.v1",
             "Last-Event-ID: ", "Accept: text/event-stream", "Expect: 100-continue", "Origin: ",
             "http://ok.example", "X-Event: ", "X-Priority: ", "critical", "telemetry",
             "X-Deny: ", "X-Boom: ", "X-Tier: ", "X-User: ", "/sub/", "/multi/", "/tier/",
             "/pub/", "/json/", "/bad", "/files/", "/health", "/metrics", "/_freshet/freshet.js",
             "?transport=poll", "lastEventId=", "&", "%0A", "%0D", "%00", "%2F", "%2e%2e",
             "..", "1700000000000-0", "0-0", "@@CONN@@", "0\\x0d\\x0a\\x0d\\x0a", "{\\\"events\\\":[",
             "\\\"topic\\\":", "\\\"data\\\":", "\\\"type\\\":\\\"subscribe\\\"",
             "\\\"type\\\":\\\"resume\\\"", "\\\\u0000", "\\x81\\x80", "\\x88\\x82", "\\x89\\x80"]
    return "".join(f'"{w}"\n' for w in words)


# ---- WebSocket frames -------------------------------------------------------------------------


def ws_seeds():
    f = ws_frame
    s = {
        "text": f(1, b"hello"),
        "text-utf8": f(1, "h\u00e9llo \U0001F600".encode()),
        "binary": f(2, b"\x00\xff"),
        "fragments": f(1, b"ab", fin=False) + f(9, b"p") + f(0, b"cd", fin=False) + f(0, b"e"),
        "ping-pong": f(9, b"x" * 125) + f(10, b""),
        "close": f(8, b"\x03\xe8ok"),
        "close-empty": f(8, b""),
        "close-bad-code": f(8, b"\x03\xedx"),
        "len16": f(1, b"a" * 200),
        "len64": f(2, b"b" * 70000),
        "unmasked": b"\x81\x02hi",
        "rsv": b"\xc1\x80\x00\x00\x00\x00",
        "bad-utf8": f(1, b"\xc0\xaf"),
        "split-utf8": f(1, b"\xe2\x82", fin=False) + f(0, b"\xac"),
        "ctrl-fragmented": b"\x09\x80\x00\x00\x00\x00",
        "huge-len": b"\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00",
        "top-bit-len": b"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    }
    out = {}
    for i, (name, data) in enumerate(s.items()):
        # [max_size selector][split seed]
        out[name] = bytes([9, 0]) + data
        out[name + "-small"] = bytes([4, 3 + i]) + data
    return out


# ---- ids, SSE, URLs ----------------------------------------------------------------------------


def id_seeds():
    ids = ["0-0", "1-0", "1700000000000-0", "1700000000000-18446744073709551615",
           "18446744073709551615-18446744073709551615", "18446744073709551616-0", "01-0", "1-01",
           "-1", "1-", "-", "1--1", " 1-0", "1-0 ", "1-0,2-0", "1-0,,2-0", "1-0,", ",1-0",
           "1-0;2-0", "+1-0", "1-0x", "1700000000000-0," * 63 + "1-0",
           # the v1 form of several positions (src/codec/ids.h), and near misses
           "v1ofAAA", "v1ofKAYF", "v1ofKAFI", "v1ofkDAIiB", "v1AAAA",
           "v1" + "_" * 12 + "P" + "_" * 12 + "PQ" + "_" * 12 + "PI", "v1ofKAiB", "v1ofKAA",
           "v1oAAAA", "v1ofAQAA", "v1BCAI", "v1ofAAgA", "v1ofA", "v2ofAAA",
           "v1mxxsk8yB" + "A" * 20 + "IBkB" + "I" * 40]
    seeds = {f"id{i}": bytes([i * 7 % 64 | (1 if s.startswith("v1") else 0)]) + s.encode()
             for i, s in enumerate(ids)}
    # Positions to format and read back (first byte's bit 7): a base, then per position a
    # choice byte and its bytes.
    base = struct.pack(">Q", 1732176000000)
    seeds["pos-near"] = bytes([0x80 | 7]) + base + bytes([0, 10, 0, 8, 3, 1, 5, 0, 0, 0] * 8)
    seeds["pos-edges"] = bytes([0x80 | 3]) + base + bytes([3, 7, 0x1f, 2] + [0xff] * 16 + [0x10])
    return seeds


def sse_seed(flags, topic, name, data):
    return bytes([flags, len(topic), len(name)]) + topic + name + data


def sse_seeds():
    return {
        "plain": sse_seed(0, b"room", b"chat", b"hello"),
        "lines": sse_seed(0, b"room", b"", b"a\nb\r\nc\rd\n\n"),
        "trailing": sse_seed(0, b"t", b"e", b"end with newline\n"),
        "empty": sse_seed(1, b"t", b"", b""),
        "nul-data": sse_seed(2, b"t", b"n", b"a\x00b"),
        "cr-name": sse_seed(0, b"t", b"a\rb", b"x"),
        "lf-topic": sse_seed(0, b"a\nb", b"", b"x"),
        "field-inject": sse_seed(0, b"t", b"e", b"x\nid: 999-0\nevent: admin\ndata: y"),
        "utf8": sse_seed(0, "caf\u00e9".encode(), "\u00e9v".encode(), "\U0001F600\u2028".encode()),
        "bad-utf8": sse_seed(0, b"t", b"", b"\xed\xa0\x80"),
        "json-ish": sse_seed(0, b"t", b"", b'{"a":"\\"quoted\\"","b":[1,2]}\x01\x1f'),
        "bom": sse_seed(0, b"t", b"", "\ufeffdata".encode()),
    }


def url_seeds():
    pairs = [
        ("/sub/:topics", "/sub/a%2Cb?lastEventId=1-0&user=a+b"),
        ("/rooms/:room/events", "/rooms/lobby/events"),
        ("/a/:b/:c", "/a/%41/%"),
        ("/", "/"),
        ("/:x/:x", "/1/2"),
        ("/files", "/files/../etc/passwd"),
        ("/f", "/f/%2e%2e/x"),
        ("/f", "/f/a%5cb"),
        ("/f", "/f/./a"),
        ("/x", "/x?a=%00&b=%zz&&c"),
        ("/:p", "/%E2%82%AC?k=v=w"),
        ("nopattern", "/x"),
        ("/a//b", "/a//b"),
        ("/:_1/:a2", "/x/y"),
        ("/:", "/x"),
        ("/:" + "/:".join(f"p{i}" for i in range(17)), "/" + "/".join("v" * 17)),
    ]
    return {f"u{i}": (p + "\n" + t).encode() for i, (p, t) in enumerate(pairs)}


# ---- app files ---------------------------------------------------------------------------------


def app_seeds():
    raw_apps = {
        "minimal": 'local app = freshet.app {}\nreturn app\n',
        "routes": 'local app = freshet.app { heartbeat = 15, retry = 3000 }\n'
                  'app:stream("/s/:topics", "routes/r1.lua")\n'
                  'app:publish("/p/:topic", "routes/r2.lua")\n'
                  'app:static("/files", "public")\nreturn app\n',
        "settings": 'local app = freshet.app { listen = "127.0.0.1:0", replay = { events = 10, seconds = 5 },\n'
                    '  tiers = { free = { rate = 1, burst = 2, queue = 10, bytes = 4096, lag = 5 } },\n'
                    '  timeouts = { headers = 1, idle = 2 }, limits = { body = 10, headers = 2048,\n'
                    '  streams_at = 0.5 }, log = { level = "warn", format = "json" }, drain = 0,\n'
                    '  poll_timeout = 1, jit = false, broker = "memory" }\n'
                    'app:stream("/s", "routes/r3.lua")\nreturn app\n',
        "typo": 'local app = freshet.app { heartbeet = 1 }\nreturn app\n',
        "bad-type": 'local app = freshet.app { replay = 5 }\nreturn app\n',
        "no-return": 'local app = freshet.app {}\n',
        "error": 'error("broken app")\n',
        "error-table": 'error({})\n',
        "syntax": 'local app = freshet.app {\n',
        "missing-script": 'local app = freshet.app {}\napp:stream("/s", "routes/none.lua")\nreturn app\n',
        "dir-script": 'local app = freshet.app {}\napp:publish("/p", "routes/dir.lua")\nreturn app\n',
        "bad-static": 'local app = freshet.app {}\napp:static("/f", "nowhere")\nreturn app\n',
        "bad-pattern": 'local app = freshet.app {}\napp:stream("/:a/:a", "routes/r1.lua")\nreturn app\n',
    }
    raw_routes = {
        "stream": 'local r = {}\nfunction r.topics(req) return { "t" } end\n'
                  'function r.auth(req) return {} end\nr.on_gap = "reset"\nr.on_slow = "conflate"\n'
                  'return r\n@@ROUTE@@return { publish = function() return nil end, body = "json" }\n',
        "unknown-field": 'return { topics = function() end, tpoics = 1 }\n@@ROUTE@@return { publish = 5 }\n',
        "not-table": 'return 42\n@@ROUTE@@return nil\n',
        "load-error": 'error("at load")\n@@ROUTE@@local x = = 1\n',
        "on-slow-fn": 'return { topics = function() end, on_slow = function() return "drop" end,'
                      ' on_gap = "416", message = function() end }\n@@ROUTE@@'
                      'return { publish = function() end, body = "raw", tier = function() end,'
                      ' auth = function() end }\n',
        "bad-values": 'return { topics = function() end, on_gap = "x", on_slow = 3 }\n@@ROUTE@@'
                      'return { publish = function() end, body = "xml" }\n',
    }
    out = {}
    for name, text in raw_apps.items():
        out["raw-app-" + name] = b"\x02" + text.encode()
    for name, text in raw_routes.items():
        out["raw-route-" + name] = b"\x03" + text.encode()
    # Structured inputs: the generator reads any bytes; a spread of them starts it off.
    for i in range(24):
        h = hashlib.sha256(b"freshet-app-%d" % i).digest() * 8
        out[f"gen-{i}"] = bytes([i % 2]) + h[: 32 + 8 * i]
    return out


# ---- TLS ------------------------------------------------------------------------------------


def client_hello(alpn=("http/1.1",), version=None):
    """A ClientHello from Python's TLS client on memory BIOs (random fields differ each run)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def tls_op(op, data, extra=b""):
    """One operation of fuzz_tls's session mode: [op][len / 64][len % 64][data][extra] (extra:
    the server's read length / 8 where the server reads, split lengths for op 1)."""
    return bytes([op, len(data) // 64, len(data) % 64]) + data + extra


def tls_seeds():
    import ssl
    hello = client_hello()
    out = {
        # raw: [0][read length / 16][bytes]…
        "raw-clienthello": b"\x00\xff" + hello,
        "raw-clienthello-split": b"\x00\x00" + hello[:1] + b"\x03" + hello[1:50] + b"\xff"
                                 + hello[50:],
        "raw-clienthello-h2": b"\x00\xff" + client_hello(("h2", "http/1.1")),
        "raw-clienthello-tls12": b"\x00\xff" + client_hello(version=ssl.TLSVersion.TLSv1_2),
        "raw-http": b"\x00\xff" + req("GET", "/health"),
        "raw-sslv2": b"\x00\xff" + bytes.fromhex("802e0103010015000000100100800300800700c0"
                                                  "060040020080040080") + b"\x00" * 16,
    }
    # session: [mode][handshake read length / 8][operations…]
    request = req("GET", "/sub/a", [("Accept", "text/event-stream")])
    for mode, name in ((1, "none"), (3, "h1"), (5, "h2-h1"), (7, "h2")):
        out[f"session-{name}"] = (bytes([mode, 0xff]) + tls_op(0, request, b"\xff")
                                  + tls_op(1, b"event: x\ndata: y\n\n" * 8, b"\x10")
                                  + tls_op(0, request, b"\x00") + tls_op(4, b"", b"\xff"))
    out["session-bytewise"] = b"\x03\x00" + tls_op(0, request, b"\x01") + tls_op(4, b"", b"\x00")
    out["session-corrupt"] = b"\x03\xff" + tls_op(2, request, b"\x07\x03\xff")
    out["session-inject"] = b"\x03\xff" + tls_op(3, b"\x17\x03\x03\x00\x20" + b"A" * 32, b"\xff")
    out["session-server-close"] = b"\x03\xff" + tls_op(1, b"bye", b"\x00") + tls_op(5, b"")
    return out


# ---- responses (the backend client's reader) ---------------------------------------------------


def tls_records_op(op, data=b""):
    """One operation of fuzz_tls_records's session mode: [op][length][bytes]."""
    return bytes([op, len(data)]) + data


def tls_records_seeds():
    out = {}
    for suite, name in enumerate(("aes128", "aes256", "chacha")):
        out[f"session-{name}"] = (bytes([suite]) + tls_records_op(0, b"GET /sub/a HTTP/1.1\r\n\r\n")
                                  + tls_records_op(3) + tls_records_op(1, b"HTTP/1.1 200 OK\r\n\r\n")
                                  + tls_records_op(4, b"\x02\x05") + tls_records_op(2, b"x")
                                  + tls_records_op(0, b"after") + tls_records_op(3, b"\x00\x01")
                                  + tls_records_op(4) + tls_records_op(1, b"data: 1\n\n")
                                  + tls_records_op(4, b"\x01\x00"))
    out["session-large"] = b"\x00" + tls_records_op(1, b"ab\xff" + b"z" * 40) + tls_records_op(4, b"\x30\x02")
    out["session-flip"] = b"\x01" + tls_records_op(0, b"hello") + tls_records_op(5, b"\x00\x07\x01")
    out["session-close"] = b"\x02" + tls_records_op(0, b"bye") + tls_records_op(6)
    out["raw-records"] = (b"\x04" + b"\x00\x00" + b"\x17\x03\x03\x00\x20" + b"A" * 32
                          + b"\x00\x00" + b"\x15\x03\x03\x00\x02\x01\x00")
    out["raw-overflow"] = b"\x05\x01\x00\x17\x03\x03\x41\x01" + b"B" * 10
    return out


def response_seeds():
    """[flags][limit][bytes]: flags bit 0 HEAD, bits 1-5 piece size - 1, bit 6 close at the end;
    limit 255 is 1 MiB."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    s = {
        "content-length": (0x00, ok),
        "content-length-split": (0x06, ok),
        "chunked": (0x02, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\r\nhello\r\n6;ext=v\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"),
        "until-close": (0x40, b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nthe rest of the stream"),
        "http10": (0x40, b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"),
        "interim": (0x04, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                          b"Link: </a>\r\n\r\n" + ok),
        "head": (0x01, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
        "no-content": (0x00, b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n"),
        "not-modified": (0x00, b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 9\r\n\r\n"),
        "close": (0x00, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"),
        "pipelined": (0x00, ok + ok),
        "cut-short": (0x40, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
        "too-large": (0x01 << 1, b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + b"x" * 300),
        "cl-and-te": (0x00, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        "two-cl": (0x00, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        "switching": (0x00, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
        "blank-values": (0x00, b"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Pad: \t a b \t\r\nContent-Length: 0\r\n\r\n"),
        "obs-text": (0x00, b"HTTP/1.1 200 OK\r\nX-Latin: caf\xe9\r\nContent-Length: 0\r\n\r\n"),
    }
    out = {}
    for name, (flags, data) in s.items():
        limit = 3 if name == "too-large" else 255
        out[name] = bytes([flags, limit]) + data
    return out


def response_dict():
    words = ["HTTP/1.1 ", "HTTP/1.0 ", " 200 OK", " 100 Continue", " 204 ", " 304 ", " 101 ",
             "\\x0d\\x0a", "\\x0d\\x0a\\x0d\\x0a", "Content-Length: ", "Transfer-Encoding: chunked",
             "Transfer-Encoding: gzip", "Connection: close", "Connection: keep-alive",
             "0\\x0d\\x0a\\x0d\\x0a", ";ext=", "Upgrade: "]
    return "".join(f'"{w}"\n' for w in words)


# ---- HTTP/2 (h2c) -----------------------------------------------------------------------------


def h2_frame(ftype, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def hpack_literal(name, value):
    """A literal header field without indexing, new name, no Huffman (RFC 7541, 6.2.2)."""
    name, value = name.encode(), value.encode()
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def h2_request(sid, method, path, extra=(), end=True):
    block = (b"\x82" if method == "GET" else b"\x83") + b"\x86" + hpack_literal(":path", path)
    block += hpack_literal(":authority", "fuzz")
    for name, value in extra:
        block += hpack_literal(name, value)
    return h2_frame(1, 0x04 | (0x01 if end else 0), sid, block)


def h2_seeds():
    """[flags][frames after the client preface]; flags as fuzz_h2.c says."""
    settings = h2_frame(4, 0, 0)
    ack = h2_frame(4, 0x01, 0)
    sub = h2_request(1, "GET", "/sub/news", [("accept", "text/event-stream")])
    pub = h2_request(1, "POST", "/pub/news", end=False) + h2_frame(0, 0x01, 1, b"hello")
    out = {
        "health": b"\x00" + settings + h2_request(1, "GET", "/health"),
        "static": b"\x00" + settings + ack + h2_request(1, "GET", "/files/a.txt")
                  + h2_request(3, "HEAD", "/files/a.txt"),
        "sub-and-publish": b"\x00" + settings + sub + b"@@CONN@@" + settings + pub,
        "sub-reset": b"\x00" + settings + sub + h2_frame(3, 0, 1, (8).to_bytes(4, "big")),
        "long-poll": b"\x00" + settings + h2_request(1, "GET", "/sub/news?transport=poll"),
        "slow-tier": b"\x00" + settings + h2_request(1, "GET", "/tier/slow") + b"@@CONN@@"
                     + settings + b"".join(h2_request(2 * i + 1, "POST", "/pub/slow", end=False)
                                           + h2_frame(0, 0x01, 2 * i + 1, b"x" * 300)
                                           for i in range(8)),
        "ping-window": b"\x00" + settings + h2_frame(6, 0, 0, b"12345678")
                       + h2_frame(8, 0, 0, (1000).to_bytes(4, "big"))
                       + h2_frame(8, 0, 1, (0).to_bytes(4, "big")),
        "continuation": b"\x00" + settings
                        + h2_frame(1, 0x01, 1, b"\x82\x86" + hpack_literal(":path", "/health"))
                        + h2_frame(9, 0x04, 1, hpack_literal(":authority", "x")),
        "body-too-large": b"\x00" + settings + h2_request(1, "POST", "/pub/big", end=False)
                          + h2_frame(0, 0, 1, b"y" * 5000) + h2_frame(0, 0x01, 1, b"z"),
        "goaway": b"\x00" + settings + sub + h2_frame(7, 0, 0, (1).to_bytes(4, "big") + bytes(4)),
        "pieces": b"\x07" + settings + sub,
        "raw-preface": b"\x40PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings + h2_request(1, "GET", "/health"),
        "raw-http1": b"\x40GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        "reset-close": b"\x80" + settings + sub,
    }
    return out


def nats_seeds():
    """fuzz_nats: an even first byte, a subject token; odd, a PubAck (JetStream's JSON)."""
    tokens = {"plain": b"news", "colon": b"room=3A42", "dot_space": b"a=2Eb=20c",
              "utf8": b"caf=C3=A9", "lower_hex": b"room=3a42", "bad_hex": b"x=G1",
              "cut_escape": b"x=3", "escaped_plain": b"=41", "nul": b"a=00b", "dot": b"a.b"}
    acks = {"ok": b'{"stream":"freshet","seq":12}',
            "ok_dup": b'{"stream":"freshet","seq":12,"duplicate":true}',
            "ok_domain": b'{"stream":"freshet","domain":"hub","seq":18446744073709551615}',
            "seq_zero": b'{"stream":"freshet","seq":0}',
            "seq_neg": b'{"stream":"freshet","seq":-1}',
            "seq_big": b'{"stream":"freshet","seq":184467440737095516160}',
            "seq_str": b'{"stream":"freshet","seq":"12"}',
            "err": b'{"error":{"code":503,"err_code":10077,"description":"maximum messages '
                   b'exceeded"}}',
            "err_escapes": b'{"error":{"code":400,"description":"a \\"quoted\\" \\u00e9 '
                           b'\\n"}}',
            "nested": b'{"x":{"seq":3,"y":[1,{"seq":4}]},"seq":5}',
            "not_json": b"+OK", "empty": b""}
    seeds = {f"token_{k}": b"\x00" + v for k, v in tokens.items()}
    seeds.update({f"puback_{k}": b"\x01" + v for k, v in acks.items()})
    return seeds


def main():
    for target, seeds in (("http", http_seeds()), ("ws", ws_seeds()), ("id", id_seeds()),
                          ("sse", sse_seeds()), ("url", url_seeds()), ("app", app_seeds()),
                          ("tls", tls_seeds()), ("tls_records", tls_records_seeds()),
                          ("http_response", response_seeds()),
                          ("h2", h2_seeds()), ("nats", nats_seeds())):
        clear(target)
        for name, data in seeds.items():
            write(target, name, data)
        print(f"{target}: {len(seeds)} seeds")
    os.makedirs(os.path.join(HERE, "dict"), exist_ok=True)
    with open(os.path.join(HERE, "dict", "http.dict"), "w") as f:
        f.write("# HTTP, SSE and WebSocket tokens for fuzz_http (written by make_seeds.py)\n")
        f.write(http_dict())
    with open(os.path.join(HERE, "dict", "http_response.dict"), "w") as f:
        f.write("# HTTP/1.1 response tokens for fuzz_http_response (written by make_seeds.py)\n")
        f.write(response_dict())


if __name__ == "__main__":
    main()
