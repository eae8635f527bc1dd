#!/usr/bin/env python3
"""Checks an HTML report as headless Chromium rendered it against the JSON report of the same store.

Standard library only. Inputs: the DOM Chromium dumped (--dump-dom), the JSON report, Chromium's stderr logs of every
run that opened the report, the stderr log of a canary page (proves console messages are still detectable in this
Chromium's log format), and the screenshot. Prints every failure and exits 1, or exits 0.

What counts as a console error (see classify_log): Chromium writes page console messages to stderr as
`INFO:CONSOLE:<line>] "<message>", source: <url> (<line>)` (older builds: `INFO:CONSOLE(<line>)]`), without the
console level. The report runs no script at all, so any console message is the browser complaining about the page
(an error, a blocked load, a CSP or deprecation warning): every CONSOLE line fails the check. `ERROR:` lines fail when
they are about the page: they name the report's file, or come from the renderer, Blink, the network stack, or say a
renderer crashed. Chromium's own noise in a container without a desktop session is ignored: D-Bus (no system bus,
UPower, ScreenSaver, Bluetooth), GPU/GL/VA-API (no GPU, --disable-gpu), the sandbox (--no-sandbox), and the Debian
launcher's /dev/shm size test (`/usr/bin/chromium: 9: [: ...: unexpected operator`), and --screenshot's
`N bytes written to file` line. Other ERROR lines that are not
about the page are printed as notes, not failures.
"""

import argparse
import json
import re
import struct
import sys
import zlib
from html.parser import HTMLParser

CONSOLE = re.compile(r":CONSOLE[:(]")
# [pid:tid:date/time.micro:LEVEL:file.cc:line] message
LOG_LINE = re.compile(r"^\[[^\]]*?:(INFO|WARNING|ERROR|FATAL|VERBOSE\d*):([^\]]*)\]\s?(.*)$")
NOISE = re.compile(
    r"dbus|bluez|bluetooth|upower|screensaver|idle_linux|"  # no D-Bus session in a container
    r"gpu|/gl/|gl_|angle|vaapi|viz/|egl|vulkan|drm|"  # no GPU; --disable-gpu
    r"sandbox|zygote|"  # --no-sandbox
    r"gcm|registration_request|fontconfig|os_crypt|kwallet|libsecret|nss_util|"  # profile services, fonts, keyring
    r"^\d+ bytes written to file |"  # --screenshot's own success line
    r"^/usr/bin/chromium: \d+: \[",  # Debian launcher: /etc/chromium.d/dev-shm compares a multi-word df output
    re.IGNORECASE,
)
PAGE_COMPONENTS = re.compile(r"third_party/blink|content/renderer|/renderer/|net/|render_process|crash", re.IGNORECASE)


def classify_log(text, page_names):
    """Returns (console errors, page errors, unclassified errors) from one Chromium stderr log."""
    console, page, other = [], [], []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if CONSOLE.search(line):
            console.append(line)
            continue
        match = LOG_LINE.match(line)
        level, source, message = (match.group(1), match.group(2), match.group(3)) if match else ("", "", line)
        about_page = any(name in line for name in page_names)
        if about_page and level in ("ERROR", "FATAL", ""):
            page.append(line)
        elif level in ("ERROR", "FATAL"):
            if NOISE.search(source) or NOISE.search(message):
                continue
            if PAGE_COMPONENTS.search(source) or "crash" in message.lower():
                page.append(line)
            else:
                other.append(line)
        elif not match and not NOISE.search(line):
            # Not a Chromium log line: the launcher or a crash printed it.
            other.append(line)
    return console, page, other


class DOM(HTMLParser):
    """The few things of the rendered DOM the check needs, keeping the nesting that matters."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = None
        self._in_title = False
        self.scripts = 0
        self.external = []
        self.timeline_figure = None  # attrs of figure#diff-rate
        self.points = []  # attrs of circle.point inside it
        self.polylines = {}  # class -> points attribute inside it
        self.timeline_text = []
        self.endpoint_rows = 0
        self.articles = {}  # endpoint index -> list of latency bar attrs
        self.totals = {}
        self._stack = []  # open tags (name, attrs) for the elements we track
        self._dt = None
        self._in = {"dt": False, "dd": False}
        self._article = None
        self._in_timeline = False
        self._in_summary_body = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "title" and self.title is None and not self._stack_has("svg"):
            self._in_title = True
            self.title = ""
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if re.match(r"^(https?:)?//", value):
                self.external.append(f"<{tag} {key}={value}>")
        if tag == "section" and attrs.get("id") == "timeline":
            self._in_timeline = True
        if tag == "figure" and attrs.get("id") == "diff-rate":
            self.timeline_figure = attrs
        if tag == "circle" and "point" in classes and self.timeline_figure is not None and self._in_timeline:
            self.points.append(attrs)
        if tag == "polyline" and self._in_timeline:
            self.polylines[attrs.get("class")] = attrs.get("points", "")
        if tag == "table" and "summary" in classes:
            self._in_summary_body = True
        if tag == "tr" and self._in_summary_body and self._stack_has("tbody"):
            self.endpoint_rows += 1
        if tag == "article" and re.fullmatch(r"endpoint-\d+", attrs.get("id") or ""):
            self._article = int(attrs["id"].split("-")[1])
            self.articles[self._article] = []
        if tag == "rect" and "bar" in classes and self._article is not None:
            self.articles[self._article].append(attrs)
        if tag in ("dt", "dd") and self._stack_has("dl"):
            self._in[tag] = True
            if tag == "dt":
                self._dt = ""
            else:
                self.totals[self._dt] = ""
        if tag not in ("meta", "link", "br", "img", "input", "hr", "circle", "rect", "line", "polyline"):
            self._stack.append((tag, attrs))

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag == "section":
            self._in_timeline = False
        if tag == "table":
            self._in_summary_body = False
        if tag == "article":
            self._article = None
        if tag in ("dt", "dd"):
            self._in[tag] = False
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index][0] == tag:
                del self._stack[index:]
                break

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._in_timeline:
            self.timeline_text.append(data)
        if self._in["dt"]:
            self._dt += data
        if self._in["dd"]:
            self.totals[self._dt] += data

    def _stack_has(self, tag):
        return any(name == tag for name, _ in self._stack)


def png_check(path, width, height):
    """Fails unless `path` is a PNG of the asked size whose pixels are not all the same (a blank page)."""
    try:
        data = open(path, "rb").read()
    except OSError as error:
        return [f"screenshot {path}: {error}"]
    if len(data) == 0:
        return [f"screenshot {path} is empty"]
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return [f"screenshot {path} is not a PNG"]
    got_width, got_height = struct.unpack(">II", data[16:24])
    failures = []
    if (got_width, got_height) != (width, height):
        failures.append(f"screenshot is {got_width}x{got_height}, expected {width}x{height}")
    idat, offset = b"", 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            idat += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    try:
        pixels = zlib.decompress(idat)
    except zlib.error as error:
        return failures + [f"screenshot pixels do not decompress: {error}"]
    if len(set(pixels[: 2_000_000])) < 8:
        failures.append("screenshot looks blank (almost a single colour)")
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dom", required=True)
    parser.add_argument("--json", required=True)
    parser.add_argument("--log", action="append", default=[], help="Chromium stderr of a run on the report")
    parser.add_argument("--canary-log", required=True)
    parser.add_argument("--page", required=True, help="the report's file name, to recognise log lines about it")
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--size", default="1280x2000")
    args = parser.parse_args()

    failures, notes = [], []
    report = json.load(open(args.json, encoding="utf-8"))
    dom = DOM()
    dom.feed(open(args.dom, encoding="utf-8").read())
    dom.close()

    # 1. The page loaded.
    if not (dom.title or "").strip():
        failures.append("the rendered page has no <title>: it did not load (empty or broken --dump-dom)")
    elif dom.title.strip() != "Ficus migration report":
        failures.append(f"unexpected title {dom.title.strip()!r}")
    if dom.scripts:
        failures.append(f"the report has {dom.scripts} <script> element(s); it must run no script")
    if dom.external:
        failures.append("the report references network resources: " + ", ".join(dom.external[:5]))

    # 2. No console errors; and the canary proves this Chromium's console lines are still recognised.
    canary_console, _, _ = classify_log(open(args.canary_log, encoding="utf-8", errors="replace").read(), [])
    if not any("ficus-canary-error" in line for line in canary_console):
        failures.append(
            "console detection is broken: the canary page's console.error was not found in Chromium's log "
            f"({args.canary_log}); update CONSOLE in {__file__}"
        )
    for path in args.log:
        console, page, other = classify_log(open(path, encoding="utf-8", errors="replace").read(), [args.page])
        failures += [f"console message from the page: {line}" for line in console]
        failures += [f"Chromium error about the page: {line}" for line in page]
        notes += [f"unclassified Chromium error (not about the page, ignored): {line}" for line in other]

    # 3. The diff-rate chart: one point per JSON time bucket, same numbers, same totals.
    timeline = report["timeline"]
    totals = report["totals"]
    keys = [("start", "start"), ("compared", "compared"), ("differing", "differing"),
            ("differing-after-noise", "differingAfterNoise"), ("errors", "errors")]
    if not timeline:
        if dom.timeline_figure is not None or dom.points:
            failures.append("the JSON timeline is empty but the HTML draws a diff-rate chart")
        if "No shadowed requests" not in "".join(dom.timeline_text):
            failures.append("the JSON timeline is empty but the HTML does not say so")
    elif dom.timeline_figure is None:
        failures.append(f"no diff-rate chart (figure#diff-rate) although the JSON has {len(timeline)} buckets")
    else:
        figure = dom.timeline_figure
        if len(dom.points) != len(timeline):
            failures.append(f"diff-rate chart has {len(dom.points)} points, JSON timeline has {len(timeline)} buckets")
        for index, (point, bucket) in enumerate(zip(dom.points, timeline)):
            for attr, key in keys:
                value = point.get(f"data-{attr}")
                if value is None:
                    failures.append(f"point {index} has no data-{attr} (add it in HTMLCharts.diffRate)")
                elif value != str(bucket[key]):
                    failures.append(f"point {index} ({bucket['start']}): data-{attr}={value}, JSON {key}={bucket[key]}")
        xs = [float(point.get("cx", "nan")) for point in dom.points]
        if any(b <= a for a, b in zip(xs, xs[1:])):
            failures.append(f"diff-rate points are not drawn left to right, oldest first: cx={xs}")
        if len(timeline) > 1:
            for name in ("raw", "after"):
                count = len(dom.polylines.get(name, "").split())
                if count != len(timeline):
                    failures.append(f"polyline.{name} has {count} vertices for {len(timeline)} buckets")
        expected = {
            "data-buckets": len(timeline),
            "data-bucket-seconds": report["window"]["bucketSeconds"],
            "data-total-compared": totals["compared"],
            "data-total-differing": totals["differing"],
            "data-total-differing-after-noise": totals["differingAfterNoise"],
        }
        for attr, value in expected.items():
            if figure.get(attr) != str(value):
                failures.append(f"figure#diff-rate {attr}={figure.get(attr)}, JSON says {value}")
        sums = {key: sum(bucket[key] for bucket in timeline) for _, key in keys[1:]}
        for key, value in sums.items():
            if value != totals[key]:
                failures.append(f"JSON timeline sums {key}={value} but JSON totals.{key}={totals[key]}")

    # 4. Per-endpoint latency charts: the bars carry the JSON's percentiles of both sides.
    endpoints = report["endpoints"]
    if dom.endpoint_rows != len(endpoints):
        failures.append(f"summary table has {dom.endpoint_rows} rows, JSON has {len(endpoints)} endpoints")
    if sorted(dom.articles) != list(range(len(endpoints))):
        failures.append(f"endpoint sections {sorted(dom.articles)} do not match {len(endpoints)} JSON endpoints")
    for index, endpoint in enumerate(endpoints):
        bars = {(bar.get("data-side"), bar.get("data-percentile")): bar.get("data-microseconds")
                for bar in dom.articles.get(index, [])}
        expected = {}
        for side in ("serving", "shadow"):
            numbers = endpoint["latency"][side]
            if numbers is None:
                continue
            for name in ("p50", "p95", "p99"):
                expected[(side, name)] = str(numbers[f"{name}Microseconds"])
        if bars != expected:
            failures.append(f"latency chart of {endpoint['endpoint']}: bars {bars}, JSON {expected}")

    # 5. The header's totals.
    header = {"endpoints": "endpoints", "ready": "ready", "regressions": "regressions",
              "not enough traffic": "notEnoughTraffic", "compared": "compared", "differing": "differing",
              "after noise": "differingAfterNoise", "shadow errors": "errors"}
    for label, key in header.items():
        if dom.totals.get(label, "").strip() != str(totals[key]):
            failures.append(f"header total {label!r}={dom.totals.get(label)!r}, JSON totals.{key}={totals[key]}")

    # 6. The screenshot.
    width, height = (int(part) for part in args.size.split("x"))
    failures += png_check(args.screenshot, width, height)

    for note in notes:
        print(f"note: {note}")
    if failures:
        for failure in failures:
            print(f"FAIL: {failure}")
        return 1
    buckets = f"{len(timeline)} bucket{'' if len(timeline) == 1 else 's'}"
    print(f"report html: title ok, timeline matches JSON ({buckets}, compared {totals['compared']}, differing "
          f"{totals['differing']}, after noise {totals['differingAfterNoise']}), {len(endpoints)} latency charts "
          f"match, no console errors, screenshot {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
