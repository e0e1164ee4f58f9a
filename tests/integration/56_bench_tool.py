"""freshet-bench against a real freshet: every published event reaches every subscriber once and
in order, over SSE and over WebSocket, in cleartext and over TLS (--tls, --cacert), with one
publishing connection or several (--pub-conns, on the memory broker and across two nodes on
Redis), the JSON report is complete and consistent, and hosts outside 127.0.0.0/8 are
refused."""

import json
import os
import subprocess

import frtest as ft

BENCH = os.environ.get("FRESHET_BENCH_BIN") or os.path.join(os.path.dirname(ft.BIN),
                                                             "freshet-bench")


def bench(port, *args, timeout=60):
    """Runs freshet-bench to completion; returns (exit code, parsed JSON or None, stderr)."""
    ft.check(os.path.isfile(BENCH) and os.access(BENCH, os.X_OK),
             f"freshet-bench not found at {BENCH} (set FRESHET_BENCH_BIN)")
    cmd = [BENCH, "-h", ft.HOST, "-p", str(port), "--json", "-q", *map(str, args)]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        ft.fail(f"freshet-bench did not finish within {timeout}s: {' '.join(cmd)}",
                {"stdout": exc.stdout, "stderr": exc.stderr})
    report = None
    if proc.stdout.strip():
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            ft.fail("freshet-bench --json printed something that is not JSON", proc.stdout)
    return proc.returncode, report, proc.stderr


def check_clean(r, what):
    for field in ("gaps", "duplicates", "out_of_order", "errors", "missing"):
        ft.check_eq(r[field], 0, f"{what}: {field}")
    ft.check(r["first_error"] is None, f"{what}: an error was recorded", r["first_error"])


def check_pub_conns(r, conns, what):
    """A --pub-conns run: every publish answered 2xx and counted once, every event delivered."""
    ft.check_eq(r["pub_conns"], conns, f"{what}: pub_conns")
    sent = r["published"] + r["warmup_published"]
    ft.check(r["published"] > 0, f"{what}: something was published", r)
    ft.check_eq(r["publish_ok"], sent, f"{what}: answers counted = publishes sent")
    ft.check_eq(r["publish_errors"], 0, f"{what}: publish errors")
    ft.check_eq(r["delivered"], r["expected"], f"{what}: delivered = expected")
    check_clean(r, what)
    ft.check_eq(r["other_events"], 0, f"{what}: events the checker could not place")


def pub_conns_cases(srv):
    with ft.subtest("--pub-conns 4 flat out on the memory broker: n x k in flight, every event "
                    "once and in order per connection, every answer counted"):
        code, r, err = bench(srv.port, "-c", 60, "-t", 3, "-r", 0, "-d", 2, "--warmup", 0.5,
                             "--pub-conns", 4, "--pipeline", 4, "--procs", 2, "--prefix", "pc")
        ft.check_eq(code, 0, f"exit code (stderr: {err})")
        check_pub_conns(r, 4, "memory, flat out")
        ft.check_eq(r["pipeline"], 4, "pipeline")
        # Event g goes to topic g % 3; 20 subscribers read each topic.
        g0, g1 = r["warmup_published"], r["warmup_published"] + r["published"]
        per_topic = [sum(1 for g in range(g0, g1) if g % 3 == k) for k in range(3)]
        ft.check_eq(r["expected"], 20 * sum(per_topic), "expected over the topics")

    with ft.subtest("--pub-conns 4 at a rate: -r is the total, and a --storm resume is exact"):
        code, r, err = bench(srv.port, "--ws", "-c", 40, "-t", 2, "-r", 200, "-d", 2,
                             "--warmup", 0.5, "--pub-conns", 4, "--prefix", "pcs", "--storm")
        ft.check_eq(code, 0, f"exit code (stderr: {err})")
        check_pub_conns(r, 4, "memory, 200/s")
        ft.check(395 <= r["published"] <= 401, "200/s for 2 s in total", r["published"])
        ft.check_eq((r["storm"]["live"], r["storm"]["caught_up"]), (40, 40),
                    "streams live again and caught up after the storm")

    with ft.subtest("--pub-conns: a count out of range is a usage error; a body too small for "
                    "the connection field is raised to the minimum"):
        for bad in ("0", "1025", "x"):
            proc = subprocess.run([BENCH, "-p", str(srv.port), "-d", "1", "--pub-conns", bad],
                                  capture_output=True, text=True, timeout=10)
            ft.check_eq(proc.returncode, 2, f"exit code for --pub-conns {bad}")
            ft.check("--pub-conns" in proc.stderr, f"error for --pub-conns {bad}", proc.stderr)
        code, r, err = bench(srv.port, "-c", 5, "-r", 50, "-d", 0.5, "--warmup", 0,
                             "--pub-conns", 2, "-s", 90, "--prefix", "pcsmall")
        ft.check_eq(code, 0, f"exit code (stderr: {err})")
        ft.check_eq(r["payload_bytes"], 120, "payload raised to the minimum with --pub-conns")
        ft.check("using 120" in err, "the raise is announced", err)
        check_pub_conns(r, 2, "small body")


def redis_case():
    redis = ft.RedisServer().start()
    try:
        a, b = ft.redis_node(redis), ft.redis_node(redis)
        try:
            with ft.subtest("--pub-conns 4 across two nodes on Redis: publishes on node A, "
                            "subscribers on node B, every event once and in order per "
                            "connection"):
                code, r, err = bench(b.port, "--pub-port", a.port, "-c", 50, "-t", 2, "-r", 0,
                                     "-d", 2, "--warmup", 0.5, "--pub-conns", 4, "--pipeline", 2,
                                     "--prefix", "pcr", "--server-pid", f"{a.proc.pid},{b.proc.pid}")
                ft.check_eq(code, 0, f"exit code (stderr: {err})")
                check_pub_conns(r, 4, "redis, flat out")
                ft.check(r["published"] >= 100, "Redis took publishes from 4 connections",
                         r["published"])
        finally:
            a.stop()
            b.stop()
    finally:
        redis.stop()


def run():
    with ft.Server(ft.BENCH_APP, ["--log-level", "warn"]) as srv:
        pid = srv.proc.pid

        with ft.subtest("200 subscribers, 50 msg/s for 3 s: every event delivered once, in order"):
            code, r, err = bench(srv.port, "-c", 200, "-t", 1, "-r", 50, "-d", 3, "--warmup", 1,
                                 "-s", 200, "--server-pid", pid)
            ft.check_eq(code, 0, f"exit code (stderr: {err})")
            ft.check(r is not None, "no JSON report", err)
            ft.check_eq(r["subscribers"], 200, "subscribers")
            ft.check_eq(r["connected"], 200, "connected")
            # 50/s for 3 s on a fixed timetable: 150 measured events, give or take the one the
            # timer's edge decides.
            ft.check(148 <= r["published"] <= 151, "published", r["published"])
            ft.check_eq(r["expected"], 200 * r["published"], "expected = subscribers x published")
            ft.check_eq(r["delivered"], 200 * r["published"], "delivered = subscribers x published")
            check_clean(r, "run")
            lat = r["latency_ms"]
            for q in ("p50", "p90", "p99", "p999", "max"):
                ft.check(isinstance(lat.get(q), (int, float)) and lat[q] > 0,
                         f"latency {q} present and positive", lat)
            ft.check(lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"],
                     "latency percentiles are ordered", lat)
            for q in ("p50", "p99", "max"):
                ft.check(r["connect_ms"][q] > 0, f"connect_ms {q}", r["connect_ms"])
            ft.check(r["deliveries_per_s"] > 0.8 * 200 * 50, "deliveries_per_s near 10,000/s",
                     r["deliveries_per_s"])
            s = r["server"]
            ft.check(s is not None and s["pid"] == pid, "server figures for --server-pid", s)
            ft.check(s["rss_kb_start"] > 0 and s["rss_kb_end"] > 0, "server RSS", s)
            ft.check(s["cpu_pct"] >= 0, "server CPU %", s)

        with ft.subtest("2 processes, 4 topics, pipelined: counts add up across processes"):
            code, r, err = bench(srv.port, "-c", 120, "-t", 4, "-r", 200, "-d", 2, "--warmup",
                                 0.5, "--procs", 2, "--pipeline", 4, "--prefix", "bt",
                                 "--sources", "127.0.0.1-127.0.0.3")
            ft.check_eq(code, 0, f"exit code (stderr: {err})")
            ft.check_eq(r["procs"], 2, "procs")
            ft.check_eq(r["connected"], 120, "connected")
            # Event g goes to topic g % 4; 30 subscribers read each topic.
            g0, g1 = r["warmup_published"], r["warmup_published"] + r["published"]
            per_topic = [sum(1 for g in range(g0, g1) if g % 4 == k) for k in range(4)]
            ft.check_eq(r["expected"], 30 * sum(per_topic), "expected over the topics")
            ft.check_eq(r["delivered"], r["expected"], "delivered")
            check_clean(r, "run")

        with ft.subtest("--ws: WebSocket subscribers get every event once, in order, and resume "
                        "with ?lastEventId= after a storm"):
            code, r, err = bench(srv.port, "--ws", "-c", 100, "-t", 2, "-r", 40, "-d", 2,
                                 "--warmup", 1, "--prefix", "wst", "--storm")
            ft.check_eq(code, 0, f"exit code (stderr: {err})")
            ft.check(r is not None, "no JSON report", err)
            ft.check_eq(r["transport"], "ws", "transport")
            ft.check_eq(r["connected"], 100, "connected")
            # Event g goes to topic g % 2; 50 subscribers read each topic.
            g0, g1 = r["warmup_published"], r["warmup_published"] + r["published"]
            ft.check(r["published"] >= 78, "published", r["published"])
            ft.check_eq(r["expected"], 50 * (g1 - g0), "expected over the topics")
            ft.check_eq(r["delivered"], r["expected"], "delivered = expected")
            ft.check_eq(r["gaps"], 0, "gaps")
            ft.check_eq(r["duplicates"], 0, "duplicates")
            check_clean(r, "run")
            s = r["storm"]
            ft.check(s is not None, "a storm entry for --storm", r)
            ft.check_eq(s["dropped"], 100, "streams dropped by the storm")
            ft.check_eq(s["without_id"], 0, "streams without an id to resume from")
            ft.check_eq(s["live"], 100, "streams live again")
            ft.check_eq(s["caught_up"], 100, "streams caught up")

        with ft.subtest("a --server-pid that is not a list of PIDs is a usage error"):
            for bad in ("12,abc", ",", "0", "-5", ",".join(["7"] * 65)):
                proc = subprocess.run([BENCH, "-p", str(srv.port), "-d", "1", "--server-pid", bad],
                                      capture_output=True, text=True, timeout=10)
                ft.check_eq(proc.returncode, 2, f"exit code for --server-pid {bad[:20]}")
                ft.check("--server-pid wants a PID" in proc.stderr,
                         f"error for --server-pid {bad[:20]}", proc.stderr)
                ft.check_eq(proc.stdout, "", f"no report for --server-pid {bad[:20]}")

        with ft.subtest("hosts outside 127.0.0.0/8 are refused before any connection"):
            for host in ("10.0.0.1", "example.com"):
                proc = subprocess.run([BENCH, "-h", host, "-p", str(srv.port), "-d", "1"],
                                      capture_output=True, text=True, timeout=10)
                ft.check_eq(proc.returncode, 2, f"exit code for -h {host}")
                ft.check("127.0.0.0/8" in proc.stderr, f"error names the allowed range ({host})",
                         proc.stderr)
                ft.check_eq(proc.stdout, "", f"no report for -h {host}")

        pub_conns_cases(srv)

    redis_case()
    tls_cases()


def tls_cases():
    cert, key = ft.make_cert()
    env = dict(os.environ, FRESHET_TLS_CERT=cert, FRESHET_TLS_KEY=key)
    with ft.Server(ft.BENCH_APP, ["--log-level", "warn"], env=env, tls=True) as srv:
        with ft.subtest("--tls: every event once, in order, and the storm resumes over TLS"):
            code, r, err = bench(srv.port, "--tls", "-c", 100, "-t", 1, "-r", 40, "-d", 2,
                                 "--warmup", 1, "--prefix", "tls", "--storm")
            ft.check_eq(code, 0, f"exit code (stderr: {err})")
            ft.check(r is not None, "no JSON report", err)
            ft.check_eq(r["tls"], True, "tls in the report")
            ft.check_eq(r["connected"], 100, "connected")
            ft.check_eq(r["delivered"], r["expected"], "delivered = expected")
            check_clean(r, "run")
            ft.check_eq(r["storm"]["live"], 100, "streams live again after the storm")
            ft.check_eq(r["storm"]["caught_up"], 100, "streams caught up after the storm")

        with ft.subtest("--cacert: WebSockets over TLS with the certificate checked, "
                        "publishing over 3 TLS connections"):
            code, r, err = bench(srv.port, "--cacert", cert, "--ws", "-c", 50, "-r", 60, "-d", 1,
                                 "--warmup", 0.5, "--prefix", "wss", "--pub-conns", 3)
            ft.check_eq(code, 0, f"exit code (stderr: {err})")
            ft.check_eq((r["tls"], r["transport"], r["connected"]), (True, "ws", 50),
                        "tls, transport, connected")
            check_pub_conns(r, 3, "TLS")

        with ft.subtest("--cacert with another certificate: every connect fails, and says why"):
            other, _ = ft.make_cert(cn="someone else", name="other")
            code, r, err = bench(srv.port, "--cacert", other, "-c", 5, "-r", 5, "-d", 0.5,
                                 "--warmup", 0, "--tail", 0)
            ft.check(code != 0, "the run succeeded with the wrong certificate", err)
            ft.check(r is None or r["connected"] == 0, "streams connected", r)
            ft.check("certificate verify failed" in err + json.dumps(r), "the reason", err)


ft.main(run, limit=115)
