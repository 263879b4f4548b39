"""Prometheus text as fnbox serve's /metrics gives it, read once for every bench script
(burst_calls.py, coldstart.sh, egress.sh, package.sh): {'name{labels}': value}.

  import prom
  m = prom.scrape(port, admin_token)
  m.get('fnbox_warm_takes_total{runtime="python3",memory_mb="256",result="hit"}', 0)
"""
import http.client


def parse(text):
    """The samples of a Prometheus text exposition; comments and values that are not numbers
    are skipped."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def scrape(port, token, timeout=120):
    """GET /metrics of the server on 127.0.0.1:port with the admin token, parsed."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    body = c.getresponse().read()
    c.close()
    return parse(body.decode())
