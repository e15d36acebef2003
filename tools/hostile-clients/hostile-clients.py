#!/usr/bin/env python3
"""Hostile clients at scale against a release carteira-server (issue 9, item 5).

One run, on loopback:
  1. idle:    16 honest peers pay each other (SEND of 1 centavo, one request
              in flight each) for PHASE seconds; their latencies are the
              baseline.
  2. hostile: 5,000 idle connections, 200 slowloris connections that write a
              line one byte a second and never end it, and one client that
              pipelines PING without ever reading, all held open while the
              same 16 honest peers pay for PHASE seconds again.
  3. ulimit:  a second server started with `ulimit -n` lowered to 128; 300
              peers connect and PING: those past the connection cap it
              derives from the limit must be refused with ERR|unavailable
              (never an EMFILE accept loop), its CPU is read over 3 s while
              full, and once the served peers leave a new one is served; the
              server must still be running.

Prints the honest p50/p99 of both phases and their ratio, the server's
VmRSS/VmHWM (from /proc) and CPU in each phase, and the EMFILE figures;
exits 1 when honest p99 under attack is more than 2x the idle one, when the
server used more than 20% of a core while out of descriptors, or when it
crashed. Options: --server PATH (default .build/release/carteira-server),
--phase SECONDS (default 10), --idle N (default 5000), --json.
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HONEST = 16
SLOWLORIS = 200
TICKS = os.sysconf("SC_CLK_TCK")


def start_server(binary, journal, nofile=None, extra=()):
    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    log = open(journal + ".log", "w")
    process = subprocess.Popen(
        [binary, "--port", "0", "--journal", journal, "--no-console", "--key-ttl", "3600",
         "--initial-balance", "100000", "--log-level", "warning", *extra],
        stdout=subprocess.PIPE, stderr=log, preexec_fn=limit, text=True)
    line = process.stdout.readline()
    if "listening on" not in line:
        raise SystemExit(f"server did not start: {line} {open(journal + '.log').read()}")
    port = int(line.split("listening on ")[1].split(" ")[0].rsplit(":", 1)[1])
    return process, port


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return {"rss_kib": int(fields["VmRSS"].split()[0]), "hwm_kib": int(fields["VmHWM"].split()[0]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def request(reader, writer, line):
    writer.write((line + "\n").encode())
    await writer.drain()
    answer = await reader.readline()
    while answer.startswith(b"EVT|"):
        answer = await reader.readline()
    return answer.decode().rstrip("\n")


async def honest_peers(port):
    peers = []
    for index in range(HONEST):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await request(reader, writer, f"REGISTER|honest{index}-{os.getpid()}")
        if not answer.startswith("OK|"):
            raise SystemExit(f"register failed: {answer}")
        peers.append((reader, writer, answer.split("|")[3]))
    return peers


async def pay_for(peers, seconds):
    """Each peer pays the next one, one request in flight, for `seconds`."""
    latencies = []
    errors = []
    deadline = time.monotonic() + seconds

    async def run(index):
        reader, writer, _ = peers[index]
        payee_key = peers[(index + 1) % len(peers)][2]
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = await request(reader, writer, f"SEND|{payee_key}|0,01")
            latencies.append(time.perf_counter() - started)
            if not answer.startswith("OK|"):
                errors.append(answer)

    await asyncio.gather(*(run(index) for index in range(len(peers))))
    latencies.sort()
    return latencies, errors


def percentile(values, fraction):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(fraction * len(values)))]


async def open_idle(port, count):
    """`count` connected sockets, 250 connects in flight at a time (more
    overflow the listen backlog and wait for SYN retries)."""
    loop = asyncio.get_running_loop()
    sockets = []

    async def one():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        return sock

    while len(sockets) < count:
        batch = min(250, count - len(sockets))
        sockets.extend(await asyncio.gather(*(one() for _ in range(batch))))
    return sockets


async def slowloris(port, count, stop):
    """Connections that write `SEND|` one byte a second and never end the line."""
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
    line = b"SEND|0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e|1" * 100
    position = 0
    while not stop.is_set():
        for writer in writers:
            writer.write(line[position % len(line):position % len(line) + 1])
        position += 1
        try:
            await asyncio.wait_for(stop.wait(), 1)
        except asyncio.TimeoutError:
            pass
    return writers


async def pipeliner(port, stop, counters):
    """Writes PING lines as fast as the socket takes them and never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    chunk = b"PING\n" * 2000
    while not stop.is_set():
        try:
            counters["pipelined_bytes"] += sock.send(chunk)
        except BlockingIOError:
            await asyncio.sleep(0.05)
        except OSError:
            counters["pipeliner_closed"] = True
            return sock
        await asyncio.sleep(0)
    return sock


async def hostile_phase(port, pid, idle_count, seconds, peers):
    counters = {"pipelined_bytes": 0, "pipeliner_closed": False}
    before = proc_status(pid)
    idle = await open_idle(port, idle_count)
    stop = asyncio.Event()
    lorises = asyncio.create_task(slowloris(port, SLOWLORIS, stop))
    # Wait until the server holds them all.
    deadline = time.monotonic() + 30
    held = 0
    while time.monotonic() < deadline:
        held = proc_status(pid)["fds"]
        if held >= before["fds"] + idle_count + SLOWLORIS:
            break
        await asyncio.sleep(0.1)
    piper = asyncio.create_task(pipeliner(port, stop, counters))
    await asyncio.sleep(0.5)
    held = proc_status(pid)["fds"]
    cpu_start = cpu_seconds(pid)
    latencies, errors = await pay_for(peers, seconds)
    cpu = cpu_seconds(pid) - cpu_start
    during = proc_status(pid)
    stop.set()
    writers = await lorises
    sock = await piper
    for writer in writers:
        writer.close()
    sock.close()
    for item in idle:
        item.close()
    return latencies, errors, before, during, cpu, held - before["fds"], counters


async def emfile_phase(binary, directory):
    """A server under `ulimit -n 128` given 300 connections, each asking PING."""
    journal = os.path.join(directory, "journal-emfile")
    process, port = start_server(binary, journal, nofile=128)
    pid = process.pid
    held, served, refused, other = [], 0, 0, []
    for _ in range(300):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PING\n")
        await writer.drain()
        try:
            answer = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
        except asyncio.TimeoutError:
            answer = "(no answer in 5 s)"
        if answer == "OK|PONG":
            served += 1
            held.append(writer)
        else:
            if answer.startswith("ERR|unavailable|"):
                refused += 1
            else:
                other.append(answer)
            writer.close()
    fds_full = proc_status(pid)["fds"]
    cpu_start = cpu_seconds(pid)
    await asyncio.sleep(3)
    cpu = (cpu_seconds(pid) - cpu_start) / 3
    for writer in held:
        writer.close()
    # Once they are gone a new peer is served.
    late, started = "", time.monotonic()
    while time.monotonic() - started < 10:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PING\n")
        await writer.drain()
        late = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
        writer.close()
        if late == "OK|PONG":
            break
        await asyncio.sleep(0.05)
    waited = time.monotonic() - started
    alive = process.poll() is None
    process.terminate()
    status = process.wait(timeout=20)
    with open(journal + ".log") as log:
        text = log.read()
    return {"nofile": 128, "opened": 300, "served": served, "refused": refused, "other_answers": other[:3],
            "server_fds_when_full": fds_full, "cpu_while_full": round(cpu, 3),
            "capped_warning": "Serving at most" in text, "emfile_warning": "Cannot accept new connections" in text,
            "answer_after_close": late, "answered_within_s": round(waited, 2), "alive": alive,
            "exit_status": status}


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=".build/release/carteira-server")
    parser.add_argument("--phase", type=float, default=10)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    need = options.idle + SLOWLORIS + 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, 65536)), hard))
    directory = tempfile.mkdtemp(prefix="carteira-hostile-")
    try:
        process, port = start_server(options.server, os.path.join(directory, "journal"))
        pid = process.pid
        started = proc_status(pid)
        peers = await honest_peers(port)
        cpu_start = cpu_seconds(pid)
        idle_latencies, idle_errors = await pay_for(peers, options.phase)
        idle_cpu = cpu_seconds(pid) - cpu_start
        (hostile_latencies, hostile_errors, before, during, hostile_cpu, held,
         counters) = await hostile_phase(port, pid, options.idle, options.phase, peers)
        alive = process.poll() is None
        after = proc_status(pid) if alive else None
        process.terminate()
        status = process.wait(timeout=30)
        emfile = await emfile_phase(options.server, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    idle_p99 = percentile(idle_latencies, 0.99)
    hostile_p99 = percentile(hostile_latencies, 0.99)
    report = {
        "honest_peers": HONEST, "phase_seconds": options.phase,
        "idle": {"sends": len(idle_latencies), "p50_ms": round(percentile(idle_latencies, 0.5) * 1000, 3),
                 "p99_ms": round(idle_p99 * 1000, 3), "errors": len(idle_errors),
                 "server_cpu_s": round(idle_cpu, 2)},
        "hostile": {"idle_connections": options.idle, "slowloris": SLOWLORIS, "pipeliners": 1,
                    "connections_held": held,
                    "sends": len(hostile_latencies),
                    "p50_ms": round(percentile(hostile_latencies, 0.5) * 1000, 3),
                    "p99_ms": round(hostile_p99 * 1000, 3), "errors": len(hostile_errors),
                    "server_cpu_s": round(hostile_cpu, 2),
                    "pipelined_bytes_taken": counters["pipelined_bytes"],
                    "pipeliner_closed_by_server": counters["pipeliner_closed"]},
        "p99_ratio": round(hostile_p99 / idle_p99, 2) if idle_p99 > 0 else None,
        "memory_kib": {"after_start": started["rss_kib"], "before_hostile": before["rss_kib"],
                       "during_hostile": during["rss_kib"], "after_hostile": after and after["rss_kib"],
                       "peak_hwm": after and after["hwm_kib"]},
        "server_alive_after_hostile": alive, "server_exit_status": status,
        "emfile": emfile,
    }
    if options.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"honest peers: {HONEST}, {options.phase:g} s a phase")
        print(f"idle server:    {report['idle']['sends']} sends, p50 {report['idle']['p50_ms']} ms, "
              f"p99 {report['idle']['p99_ms']} ms, server CPU {report['idle']['server_cpu_s']} s")
        print(f"under attack:   {report['hostile']['sends']} sends, p50 {report['hostile']['p50_ms']} ms, "
              f"p99 {report['hostile']['p99_ms']} ms, server CPU {report['hostile']['server_cpu_s']} s "
              f"({held} hostile connections held: {options.idle} idle, {SLOWLORIS} slowloris, 1 pipeliner "
              f"that wrote {counters['pipelined_bytes']} bytes unread)")
        print(f"p99 ratio:      {report['p99_ratio']} (must be <= 2)")
        memory = report["memory_kib"]
        print(f"server memory:  VmRSS {memory['after_start']} KiB after start, {memory['during_hostile']} KiB "
              f"under attack, peak VmHWM {memory['peak_hwm']} KiB")
        print(f"ulimit -n 128: of 300 peers {emfile['served']} served, {emfile['refused']} refused with "
              f"ERR|unavailable, server at {emfile['server_fds_when_full']} descriptors, CPU while full "
              f"{emfile['cpu_while_full'] * 100:.1f}% of a core, EMFILE seen: {emfile['emfile_warning']}, "
              f"after they left: {emfile['answer_after_close']} within {emfile['answered_within_s']} s, "
              f"alive: {emfile['alive']}")
    failed = []
    if report["p99_ratio"] is None or report["p99_ratio"] > 2:
        failed.append("honest p99 under attack is more than 2x the idle one")
    if idle_errors or hostile_errors:
        failed.append(f"honest sends failed: {(idle_errors + hostile_errors)[:3]}")
    if not alive or not emfile["alive"]:
        failed.append("the server died")
    if emfile["cpu_while_full"] > 0.2:
        failed.append("the server spins while out of file descriptors")
    if emfile["answer_after_close"] != "OK|PONG":
        failed.append("no new peer was served after descriptors freed up")
    if emfile["other_answers"] or emfile["emfile_warning"]:
        failed.append(f"under the low limit: {emfile['other_answers']}, EMFILE seen: {emfile['emfile_warning']}")
    for reason in failed:
        print("FAIL:", reason, file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    asyncio.run(main())
