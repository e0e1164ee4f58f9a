"""A small HTTP/1.1 backend for tests of freshet.http.request: an asyncio server on a free
port of 127.0.0.1, in a thread of the test process, keep-alive, many connections at once.

    with Backend(handler) as b:      # handler(req) -> Reply (may be async; may sleep)
        b.url("/session")            # "http://127.0.0.1:<port>/session"

    Backend(handler, tls=ssl_context) serves HTTPS (b.url gives https://…); b.accepted then
    counts connections whose handshake completed.

req has method, path, headers (lower-case names), body. A Reply may ask for a chunked body,
for a close without any answer, or for a close right after the answer. b.requests lists
what arrived; b.accepted counts connections."""

import asyncio
import dataclasses
import threading

import frtest as ft


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes


@dataclasses.dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple = ()
    delay: float = 0.0          # seconds before answering
    chunked: bool = False
    drop: bool = False          # close without answering
    close: bool = False         # Connection: close after this answer


REASONS = {200: "OK", 201: "Created", 204: "No Content", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}


class Backend:
    def __init__(self, handler, tls=None):
        self.handler = handler
        self.tls = tls
        self.requests = []
        self.accepted = 0
        self.port = None
        self._loop = None
        self._server = None
        self._thread = None
        self._ready = threading.Event()

    def url(self, path, host="127.0.0.1"):
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        ft.check(self._ready.wait(10), "the test backend did not start")
        ft.check(self.port is not None, "the test backend could not listen")
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        if self._loop and self._server:
            self._loop.call_soon_threadsafe(self._shutdown)
            self._thread.join(10)
            self._server = None

    def _shutdown(self):
        self._server.close()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.stop()

    def _run(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=4096, ssl=self.tls,
                                     ssl_handshake_timeout=5 if self.tls else None))
            self.port = self._server.sockets[0].getsockname()[1]
        finally:
            self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _serve(self, reader, writer):
        self.accepted += 1
        try:
            while True:
                req = await self._read(reader)
                if req is None:
                    break
                self.requests.append(req)
                reply = self.handler(req)
                if asyncio.iscoroutine(reply):
                    reply = await reply
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.drop:
                    break
                writer.write(self._encode(reply))
                await writer.drain()
                if reply.close or req.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _read(reader):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        return Request(method, path, headers, body)

    @staticmethod
    def _encode(reply):
        body = reply.body if isinstance(reply.body, bytes) else reply.body.encode()
        lines = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in reply.headers]
        if reply.close:
            lines.append("Connection: close")
        if reply.chunked:
            lines.append("Transfer-Encoding: chunked")
            out = "\r\n".join(lines).encode() + b"\r\n\r\n"
            for i in range(0, len(body), 7):
                piece = body[i:i + 7]
                out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            return out + b"0\r\n\r\n"
        lines.append(f"Content-Length: {len(body)}")
        return "\r\n".join(lines).encode() + b"\r\n\r\n" + body
