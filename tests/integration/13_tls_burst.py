"""Memory after a burst of TLS handshakes: 1,500 clients connect at once over TLS (h2load), each
opening an event stream. While the handshakes run, each holds tens of KB (OpenSSL's handshake
and record buffers); once they are done the streams stay open and idle, and the worker gives the
heap's freed memory back to the system: the server's resident memory a few seconds after the
burst is well below its peak, close to what the idle streams hold.

Under AddressSanitizer the heap is the sanitizer's (glibc's trim does not reach it, and freed
memory waits in its quarantine): there the burst runs and every stream must open and stay, but
resident memory is not compared."""

import os
import shutil
import subprocess
import time

import frtest as ft

CLIENTS = 1500


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run():
    h2load = shutil.which("h2load")
    ft.check(h2load is not None, "h2load is missing (scripts/setup.sh installs nghttp2-client)")
    ft.raise_nofile()
    app = ft.pubsub_app('heartbeat = 30, limits = { streams_at = 0.99 }, '
                        'tls = { cert = "cert.pem", key = "key.pem" },')
    cert, key = ft.make_cert(app.path)
    os.replace(cert, app.file("cert.pem"))
    os.replace(key, app.file("key.pem"))
    srv = ft.Server(app, tls=True).start()
    try:
        base = rss_kb(srv.proc.pid)
        client = subprocess.Popen(
            [h2load, "-n", str(CLIENTS), "-c", str(CLIENTS), "-m", "1", "-t", "1", "--h1",
             f"https://{ft.HOST}:{srv.port}/sub/burst"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=ft._die_with_parent)
        try:
            # Every client's stream open: the burst is over.
            deadline = time.monotonic() + 60
            peak, streams = base, 0
            while time.monotonic() < deadline:
                peak = max(peak, rss_kb(srv.proc.pid))
                streams = srv.health().get("streams", 0)
                if streams >= CLIENTS:
                    break
                time.sleep(0.1)
            ft.check_eq(streams, CLIENTS, "streams open after the burst")
            peak = max(peak, rss_kb(srv.proc.pid))
            if ft.SANITIZED:
                ft.check_eq(srv.health().get("streams", 0), CLIENTS, "streams still open")
                return
            # The worker looks once a second; give it a few.
            after = peak
            for _ in range(50):
                time.sleep(0.1)
                after = rss_kb(srv.proc.pid)
                if after - base < (peak - base) / 2:
                    break
            grown, kept = (peak - base) / CLIENTS, (after - base) / CLIENTS
            ft.check(after - base < (peak - base) / 2,
                     f"resident memory after the burst still {kept:.1f} KB per stream against "
                     f"{grown:.1f} KB at its peak (base {base} KB, peak {peak} KB, after "
                     f"{after} KB)", srv.log_tail())
            ft.check_eq(srv.health().get("streams", 0), CLIENTS, "streams still open")
            print(f"burst of {CLIENTS} TLS clients: {grown:.1f} KB per stream at the peak, "
                  f"{kept:.1f} KB after", flush=True)
        finally:
            client.kill()
            client.wait()
    finally:
        srv.stop()


ft.main(run, limit=120)
