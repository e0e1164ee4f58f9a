"""GET /metrics: Prometheus text format, validated by the real parser (`promtool check
metrics`, Debian package prometheus), and its values match what the test did: events
published by priority, open streams by transport, deliveries, replays and resumes, Lua errors,
reloads, heartbeats; the standard process_* family (descriptors, memory, CPU, start time) and
freshet_build_info; no empty label values."""

import os
import re
import signal
import time

import frtest as ft

APP = """
    local freshet = require "freshet"
    local app = freshet.app {
      heartbeat = 0.2,
      replay = { events = 100, seconds = 60 },
    }
    app:stream("/sub/:topics", "routes/sub.lua")
    app:publish("/pub/:topic", "routes/pub.lua")
    app:stream("/boom", "routes/boom.lua")
    return app
"""

BOOM = """
    local route = {}
    function route.topics(req)
      error("this hook always fails")
    end
    return route
"""


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)] if name.endswith(suffix) else None
        if base and types.get(base) in ("histogram", "summary"):
            return base
    return name


def check_grouping(text):
    """The text format's rule that promtool does not enforce: all lines of one metric family
    (HELP, TYPE, samples) form one group, and TYPE comes before its samples."""
    types = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            types[m.group(1)] = m.group(2)
    runs = []
    seen_type = set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        m = re.match(r"# (HELP|TYPE) (\S+)", line)
        if m:
            fam = m.group(2)
            if m.group(1) == "TYPE":
                seen_type.add(fam)
        elif line.startswith("#"):
            continue
        else:
            fam = family_of(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0), types)
            ft.check(fam in seen_type, f"line {n}: sample of {fam} before its TYPE line", line)
        if not runs or runs[-1][0] != fam:
            runs.append((fam, n))
    starts = {}
    for fam, n in runs:
        ft.check(fam not in starts, f"metric family {fam} is split: its lines start at line "
                                    f"{starts.get(fam)} and again at line {n}, with another "
                                    f"family's lines in between",
                 "\n".join(text.splitlines()[max(0, n - 8):n + 2]))
        starts[fam] = n


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    ft.fail("no 'Max open files' in /proc/PID/limits")


# Renamed to Prometheus' conventions (docs/DEPLOY.md lists old and new names).
RENAMED = ("freshet_open_fds", "freshet_max_fds", "freshet_resident_memory_bytes",
           "freshet_uptime_seconds", "freshet_stream_queue_depth_count")


def proc_status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    ft.fail(f"no {field} in /proc/PID/status")


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run():
    app = ft.AppDir({"app.lua": APP, "routes/sub.lua": ft.SUB_ROUTE, "routes/pub.lua": ft.PUB_ROUTE,
                     "routes/boom.lua": BOOM})
    counts = {"critical": 3, "normal": 5, "telemetry": 7}
    started_at = time.time()
    with ft.Server(app) as srv:
        s = srv.stream("/sub/m")
        try:
            ids = []
            for prio, n in counts.items():
                for k in range(n):
                    ids.append(srv.publish("/pub/m", f"{prio} {k}", headers={"X-Priority": prio}))
            got = s.take(len(ids))
            ft.check_eq([e.id for e in got], ids, "the open stream's events")
            # A resume that replays the last 5, and one with an id never issued (400).
            r = srv.stream("/sub/m", last_event_id=ids[-6])
            ft.check_eq([e.id for e in r.take(5)], ids[-5:], "replayed events")
            r.close()
            bad = ft.SSEStream(srv.port, "/sub/m", last_event_id="1-0")
            ft.check(bad.status in (400, 416), "an unknown Last-Event-ID was accepted",
                     bad.response.summary())
            bad_status = bad.status
            bad.close()
            resp = srv.get("/boom")
            ft.check_eq(resp.status, 500, "GET /boom (a hook that raises)")
            mark = srv.log_size()
            srv.send_signal(signal.SIGHUP)
            srv.wait_log(r"reloaded ", start=mark)
            s.drain(0.7)  # a few heartbeats on the open stream
            srv.wait_streams(1)
            time.sleep(0.1)

            resp = srv.get("/metrics")
            text = resp.text
            with ft.subtest("GET /metrics answers Prometheus text"):
                ft.check_eq(resp.status, 200, "GET /metrics status")
                ft.check((resp.header("content-type") or "").startswith("text/plain; version=0.0.4"),
                         "Content-Type is not the Prometheus text format", resp.summary()[:400])

            with ft.subtest("promtool check metrics accepts the exposition"):
                ft.promtool_check(text)

            with ft.subtest("each metric family is one group of lines"):
                check_grouping(text)

            with ft.subtest("values match the activity"):
                m = ft.parse_metrics(text)
                for prio, n in counts.items():
                    ft.check_eq(ft.metric(m, "freshet_events_published_total", priority=prio),
                                float(n), f"events published with priority {prio}")
                ft.check_eq(ft.metric(m, "freshet_connections", route="/sub/:topics",
                                      transport="sse", state="active"), 1.0,
                            "freshet_connections of the one open stream")
                ft.check_eq(ft.metric(m, "freshet_streams_started_total"), 2.0,
                            "streams started (the open one and the resumed one)")
                ft.check(ft.metric(m, "freshet_events_delivered_total") >= 20,
                         "events delivered (15 live + 5 replayed)",
                         ft.metric(m, "freshet_events_delivered_total"))
                ft.check_eq(ft.metric(m, "freshet_events_replayed_total"), 5.0, "events replayed")
                ft.check_eq(ft.metric(m, "freshet_resumes_total", outcome="replayed"), 1.0,
                            "resumes replayed")
                outcome = "invalid_400" if bad_status == 400 else "stale_416"
                ft.check_eq(ft.metric(m, "freshet_resumes_total", outcome=outcome), 1.0,
                            f"resumes answered {bad_status}")
                ft.check_eq(ft.metric(m, "freshet_lua_errors_total"), 1.0, "Lua errors")
                ft.check_eq(ft.metric(m, "freshet_reloads_total"), 1.0, "reloads")
                ft.check(ft.metric(m, "freshet_heartbeats_total") >= 1, "no heartbeat counted")
                ft.check(ft.metric(m, "freshet_stream_bytes_written_total") >= len(s.raw),
                         f"bytes written is below the {len(s.raw)} bytes one stream received",
                         ft.metric(m, "freshet_stream_bytes_written_total"))
                ft.check_eq(ft.metric(m, "freshet_stream_queue_depth_events_count"), 1.0,
                            "queue depth histogram count (one open stream)")

            with ft.subtest("process_* metrics under their standard names, and build info"):
                ft.check_eq(ft.metric(m, "process_max_fds"), float(soft_nofile(srv.proc.pid)),
                            "process_max_fds (the soft limit in force)")
                real = srv.fd_count()
                ft.check(abs(ft.metric(m, "process_open_fds") - real) <= 4,
                         f"process_open_fds is far from the {real} descriptors open",
                         ft.metric(m, "process_open_fds"))
                rss = srv.rss_kb() * 1024
                ft.check(abs(ft.metric(m, "process_resident_memory_bytes") - rss) <= rss * 0.25,
                         f"process_resident_memory_bytes is far from VmRSS ({rss} bytes)",
                         ft.metric(m, "process_resident_memory_bytes"))
                vm = proc_status_kb(srv.proc.pid, "VmSize") * 1024
                ft.check(abs(ft.metric(m, "process_virtual_memory_bytes") - vm) <= vm * 0.25,
                         f"process_virtual_memory_bytes is far from VmSize ({vm} bytes)",
                         ft.metric(m, "process_virtual_memory_bytes"))
                cpu = proc_cpu_seconds(srv.proc.pid)
                got = ft.metric(m, "process_cpu_seconds_total")
                ft.check(0 < got <= cpu + 0.05, f"process_cpu_seconds_total {got} is not within "
                         f"(0, {cpu}] (utime + stime of /proc/PID/stat)")
                start = ft.metric(m, "process_start_time_seconds")
                ft.check(started_at - 1 <= start <= time.time(),
                         f"process_start_time_seconds {start} is not between the launch "
                         f"({started_at:.3f}) and now")
                version = ft.run_cli(["--version"]).stdout.decode().split()[1]
                ft.check_eq(ft.metric(m, "freshet_build_info", version=version), 1.0,
                            "freshet_build_info{version=<freshet --version>}")
                for old in RENAMED:
                    ft.check(not any(k[0] == old for k in m),
                             f"{old} is still exported (renamed, see docs/DEPLOY.md)")

            with ft.subtest("no label value is empty"):
                empty = [line for line in text.splitlines()
                         if not line.startswith("#") and '=""' in line]
                ft.check(not empty, "samples with an empty label value", empty)
        finally:
            s.close()

        with ft.subtest("the connections gauge drops the stream once it is gone"):
            srv.wait_streams(0)
            m = srv.metrics()
            key = ("freshet_connections", (("route", "/sub/:topics"), ("state", "active"),
                                           ("transport", "sse")))
            ft.check(m.get(key, 0.0) == 0.0, "a closed stream is still counted", m.get(key))

    with ft.subtest("freshet_connections names each stream's transport"):
        with ft.Server(ft.AppDir({"app.lua": APP.replace("heartbeat = 0.2", "heartbeat = 30"),
                                  "routes/sub.lua": ft.SUB_ROUTE, "routes/pub.lua": ft.PUB_ROUTE,
                                  "routes/boom.lua": BOOM})) as srv:
            ws = ft.ws_connect(srv.port, "/sub/a")
            s = srv.stream("/sub/b")
            try:
                srv.wait_streams(2)
                m = srv.metrics()
                for transport in ("ws", "sse"):
                    ft.check_eq(ft.metric(m, "freshet_connections", route="/sub/:topics",
                                          transport=transport, state="active"), 1.0,
                                f"freshet_connections of the {transport} stream")
            finally:
                ws.close()
                s.close()


ft.main(run, limit=60)
