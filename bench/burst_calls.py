#!/usr/bin/env python3
"""bench/burst.sh's calls and report (not run on its own).

  burst_calls.py PORT TOKEN LABEL KIND MB COUNT   one case: prints TSV rows (label, kind, mb,
                                                  shape, seconds) and a takes row
  burst_calls.py --report FILE                    the table of p50/p99 and the ratios
"""
import http.client
import json
import os
import sys
import threading
import time

import prom


def request(port, method, path, token=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def metrics(port, token):
    return prom.scrape(port, token)


def at_rest(port, token):
    """Waits (at most 30 s) until no pre-warmed sandbox is starting."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        m = metrics(port, token)
        starting = sum(v for k, v in m.items() if k.startswith("fnbox_warm_sandboxes{") and 'state="starting"' in k)
        if starting == 0:
            break
        time.sleep(0.05)
    time.sleep(0.3)


def takes(port, token, kind, mb):
    m = metrics(port, token)
    label = "" if kind == "v2" else f',sandbox="{kind}"'
    return {
        r: m.get(f'fnbox_warm_takes_total{{runtime="python3",memory_mb="{mb}"{label},result="{r}"}}', 0)
        for r in ("hit", "pending", "miss")
    }


def busy_ms():
    """CPU time spent by the whole machine so far (every core, all but idle and iowait), ms:
    what a shape costs, whichever process (gateway, launcher, sandbox) spends it."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) * 1000 / os.sysconf("SC_CLK_TCK")


def throttling(label):
    """Per cgroup below the serve's --cgroup-parent (bench/burst.sh: fnbox/bench-burst-LABEL),
    its CPU quota's throttled periods and time (ms), from cpu.stat (cgroup v1's cpu hierarchy,
    or v2's): parents do not add up their children's on v1, so each sandbox's own is read."""
    out = {}
    for root in (f"/sys/fs/cgroup/cpu/fnbox/bench-burst-{label}", f"/sys/fs/cgroup/fnbox/bench-burst-{label}"):
        for d, _, files in os.walk(root):
            if "cpu.stat" not in files:
                continue
            try:
                stat = dict(line.split() for line in open(os.path.join(d, "cpu.stat")) if len(line.split()) == 2)
            except OSError:
                continue  # a sandbox that ended meanwhile
            ms = int(stat.get("throttled_time", 0)) / 1e6 + int(stat.get("throttled_usec", 0)) / 1e3
            out[d] = (int(stat.get("nr_throttled", 0)), ms)
    return out


def throttled_since(before, label):
    """Throttled periods and ms since `before` (a `throttling` snapshot), every sandbox's."""
    periods, ms = 0, 0.0
    for d, (n, t) in throttling(label).items():
        n0, t0 = before.get(d, (0, 0.0))
        periods, ms = periods + max(0, n - n0), ms + max(0.0, t - t0)
    return periods, ms


def call(port, name, out, i):
    t = time.perf_counter()
    status, body = request(port, "GET", f"/fn/{name}/")
    out[i] = time.perf_counter() - t
    if status != 200:
        raise SystemExit(f"burst_calls.py: {name} answered {status}: {body[:300]!r}")


def case(port, token, label, kind, mb, count):
    names = [f"b-{kind}-{mb}-{i}" for i in range(1, count + 1)]
    rows = []
    before = takes(port, token, kind, mb)
    at_rest(port, token)
    times = [0.0] * count
    cpu, thr = {}, {}
    c0, t0 = busy_ms(), throttling(label)
    for i, n in enumerate(names):
        call(port, n, times, i)
    cpu["back-to-back"] = busy_ms() - c0
    thr["back-to-back"] = throttled_since(t0, label)
    rows += [(label, kind, mb, "back-to-back", t) for t in times]
    mid = takes(port, token, kind, mb)
    for n in names:
        status, body = request(port, "DELETE", f"/api/v1/functions/{n}/instances", token)
        assert status == 200, body
    at_rest(port, token)
    times = [0.0] * count
    threads = [threading.Thread(target=call, args=(port, n, times, i)) for i, n in enumerate(names)]
    c0, t0 = busy_ms(), throttling(label)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu["at-once"] = busy_ms() - c0
    thr["at-once"] = throttled_since(t0, label)
    rows += [(label, kind, mb, "at-once", t) for t in times]
    after = takes(port, token, kind, mb)
    for r in rows:
        print("\t".join(map(str, r)))
    for shape, a, b in (("back-to-back", before, mid), ("at-once", mid, after)):
        d = {k: int(b[k] - a[k]) for k in a}
        d["cpu_ms"] = round(cpu[shape] / count, 2)
        d["throttled"], d["throttled_ms"] = thr[shape][0], round(thr[shape][1], 1)
        print(f"takes\t{label}\t{kind}\t{mb}\t{shape}\t{json.dumps(d)}")
    sys.stdout.flush()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]


def report(path):
    data, tk = {}, {}
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if f[0] == "takes":
            tk[tuple(f[1:5])] = json.loads(f[5])
        elif len(f) == 5:
            data.setdefault(tuple(f[:4]), []).append(float(f[4]))
    labels = sorted({k[0] for k in data}, key=lambda l: l != "before")
    cases = sorted({k[1:] for k in data}, key=lambda c: (c[0], int(c[1]), c[2] != "back-to-back"))
    head = f"{'kind':4} {'MiB':>5} {'shape':13}"
    for lab in labels:
        head += f" {lab + ' p50':>11} {lab + ' p99':>11} {'takes h/p/m':>12} {'cpu/call':>8} {'throttled':>14}"
    if len(labels) == 2:
        head += f" {'p50 ratio':>9} {'p99 ratio':>9}"
    print("\ncall latency, ms (client side); takes: warm pool hit / pending / miss")
    print(head)
    for kind, mb, shape in cases:
        row = f"{kind:4} {mb:>5} {shape:13}"
        stats = []
        for lab in labels:
            xs = data.get((lab, kind, mb, shape), [])
            if not xs:
                row += f" {'-':>11} {'-':>11} {'-':>12} {'-':>8} {'-':>14}"
                stats.append(None)
                continue
            p50, p99 = pct(xs, 50) * 1e3, pct(xs, 99) * 1e3
            t = tk.get((lab, kind, mb, shape), {})
            row += f" {p50:11.1f} {p99:11.1f} {t.get('hit', 0):>4}/{t.get('pending', 0)}/{t.get('miss', 0):<3}"
            row += f" {t.get('cpu_ms', float('nan')):8.1f}"
            row += f" {str(t.get('throttled', '-')) + ' / ' + str(t.get('throttled_ms', '-')):>14}"
            stats.append((p50, p99))
        if len(labels) == 2 and all(stats):
            row += f" {stats[1][0] / stats[0][0]:9.3f} {stats[1][1] / stats[0][1]:9.3f}"
        print(row)
    cores = os.cpu_count()
    print(f"\ncpu/call: the machine's busy CPU time during the shape / calls, ms (run it quiet). 20 calls"
          f" at once on {cores} cores cannot all end before 20 x cpu/call / {cores}: half of them not"
          f" before about 10 x cpu/call / {cores}, the floor of the at-once p50.")
    print("throttled: CFS periods in which a sandbox ran out of its tier's CPU quota during the shape /"
          " the time they spent waiting for the next period, ms, summed over the sandboxes (a period"
          " is 100 ms: one throttled period can add up to that to a call).")
    print("targets (issue 15): v2 p50 <= 10 ms and p99 <= 100 ms at every tier; v1 p50 <= 100 ms at 256 MiB")


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(sys.argv[2])
    else:
        port, token, label, kind, mb, count = sys.argv[1:7]
        case(int(port), token, label, kind, mb, int(count))
