"""`python -m bench.scrape URL COUNT [gzip] [step]`: time COUNT sequential GETs of URL, as a scraper
does.

Runs in its own process so that the scraper's work is not counted against the server's event
loop. Prints the durations in seconds as JSON. Keeps one HTTP connection, like Prometheus.
``step``: before each GET, wait for a line on standard input (the driver changes the exporter
in between, untimed) and answer each GET's end with a line on standard error.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from urllib.parse import urlsplit


def main(argv: list[str]) -> int:
    url, count = argv[0], int(argv[1])
    gzipped = "gzip" in argv[2:]
    stepped = "step" in argv[2:]
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Accept-Encoding": "gzip"} if gzipped else {}
    durations, size = [], 0
    for _ in range(count):
        if stepped and not sys.stdin.readline():
            break  # the driver is gone
        began = time.perf_counter()
        connection.request("GET", parts.path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        durations.append(time.perf_counter() - began)
        if response.status != 200:
            print(f"GET {url}: HTTP {response.status}", file=sys.stderr)
            return 1
        size = len(body)
        if stepped:
            print(file=sys.stderr, flush=True)
            continue
        time.sleep(0.02)  # let the server's other work (polls landing) run between scrapes
    connection.close()
    print(json.dumps({"durations": durations, "bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
