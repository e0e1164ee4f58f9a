"""The chat example as its README shows it: real curl follows a room, a POST shows up in
curl's output."""

import json
import re
import os
import select
import shutil
import signal
import subprocess
import time

import frtest as ft


class CurlReader:
    """Collects a running curl's stdout without blocking."""

    def __init__(self, proc):
        self.proc = proc
        self.out = b""
        os.set_blocking(proc.stdout.fileno(), False)

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred(self.out):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not self._read(0):
                err = self.proc.stderr.read() if self.proc.poll() is not None else b""
                ft.fail(f"curl output: {what} not seen within {timeout}s "
                        f"(curl exit {self.proc.poll()})", {"stdout": self.out[-1500:], "stderr": err})
            self._read(min(left, 0.2))

    def _read(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], max(0, timeout))
        if not r:
            return False
        data = self.proc.stdout.read()
        if data:
            self.out += data
            return True
        return False


def run():
    ft.require_file(ft.CHAT_APP, "chat example")
    curl = shutil.which("curl")
    ft.check(curl is not None, "curl is not installed")
    with ft.Server(ft.CHAT_APP) as srv:
        url = f"http://{ft.HOST}:{srv.port}/rooms/lobby/events?user=ann"
        proc = subprocess.Popen([curl, "-sS", "-N", "-H", "Accept: text/event-stream", url],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=ft._die_with_parent)
        try:
            reader = CurlReader(proc)
            with ft.subtest("curl -N receives the retry frame"):
                reader.wait_for(lambda out: b"retry:" in out, 10, "'retry:'")
                reader.wait_for(lambda out: b"\n\n" in out, 10, "the first frame")
                ft.check(re.match(rb"retry: 3000\nid: [0-9]+-[0-9]+\n\n", reader.out),
                         "curl output starts with the retry frame and the position",
                         reader.out[:200])

            with ft.subtest("a POSTed message appears in curl's output"):
                resp = srv.post("/rooms/lobby/messages", json.dumps({"user": "bob", "text": "hi"}),
                                headers={"Content-Type": "application/json"})
                ft.check_eq(resp.status, 201, f"POST status ({resp.summary()})")
                eid = resp.json().get("id")
                ft.check(isinstance(eid, str) and ft.ID_RE.match(eid), "POST body has the id",
                         resp.summary())

                def has_message(out):
                    return any(line.startswith(b"data: ") and b'"bob"' in line and b'"hi"' in line
                               for line in out.split(b"\n"))

                reader.wait_for(has_message, 10, 'a data line with "bob" and "hi"')
                text = reader.out.decode("utf-8", "replace")
                data = [ln[6:] for ln in text.split("\n") if ln.startswith("data: ") and '"bob"' in ln]
                msg = json.loads(data[0])
                ft.check(msg.get("user") == "bob" and msg.get("text") == "hi",
                         "the data is the posted message as JSON", msg)
                ft.check(f"id: {eid}\nevent: message\ndata: " in text,
                         "the event's id and name precede its data", text[-600:])
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()


ft.main(run, limit=40)
