#!/usr/bin/env python3
"""Write akv-exporter's rule files from their sources: `make rules` runs it.

- config/prometheus/alerts.yml: config/prometheus/rules/alerts.yml.j2 rendered with Jinja2
  (delimiters << >>, <% %> and <# #>, so that Prometheus' {{ }} templates pass untouched),
  every runbook_url on the base in config/prometheus/rules/runbook-base;
- config/prometheus/alerts-fast.yml: alerts.yml with the shorter waits of FAST, nothing else;
- deploy/kubernetes/base/prometheusrule.yaml: alerts.yml as a PrometheusRule (through
  deploy/kubernetes/generate.py, which owns that manifest);
- akv_exporter/web/static/runbooks.html: docs/runbooks.md as the page the exporter serves at
  /docs/runbooks, where every runbook_url points by default (anchors as GitHub makes them).

    python config/prometheus/generate.py                  write whatever is stale
    python config/prometheus/generate.py --check          only say what is stale (exit 1)
    python config/prometheus/generate.py --runbook-base URL   a new base, then write

tests/test_alert_rules.py runs --check, so a hand edit of a generated file fails the tests.
"""

from __future__ import annotations

import html
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import jinja2
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SOURCES = HERE / "rules"
RUNBOOK_BASE = SOURCES / "runbook-base"
RULES = HERE / "alerts.yml"
FAST_RULES = HERE / "alerts-fast.yml"
RUNBOOKS = REPO / "docs/runbooks.md"
# The runbooks of the other key managers: generated from providers.yml, served with RUNBOOKS.
KEY_MANAGER_RUNBOOKS = REPO / "docs/runbooks-key-managers.md"
RUNBOOKS_PAGE = REPO / "akv_exporter/web/static/runbooks.html"

# The fast profile: each wait of alerts.yml and its shorter one. A `for:` of another length,
# or an escalation (`>= N * 60`, minutes) not listed, is an error: decide its fast value here.
FAST_FOR = {"5m": "2m", "10m": "5m", "15m": "5m"}
FAST_ESCALATION = {30: 20}
FOR_LINE = re.compile(r"^(\s+for: )(\S+)\s*$", re.MULTILINE)
ESCALATION = re.compile(r">= (\d+) \* 60\b")
ALERT_LINE = re.compile(r"^\s+- alert: (\S+)\s*$")
SEVERITY_LINE = re.compile(r"^\s+severity: (\S+)\s*$")


def _module(path: Path, name: str) -> ModuleType:
    """Return the script at ``path`` (deploy/kubernetes/generate.py) imported as ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runbook_base() -> str:
    """Return the runbook base every runbook_url starts with."""
    return RUNBOOK_BASE.read_text().strip()


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(SOURCES),
        variable_start_string="<<",
        variable_end_string=">>",
        block_start_string="<%",
        block_end_string="%>",
        comment_start_string="<#",
        comment_end_string="#>",
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # YAML and Markdown; the runbook page's body is escaped by runbooks_html
    )
    environment.filters["anchor"] = anchor
    return environment


def providers() -> list[dict]:
    """Return the declaration of the cloud key managers other than AKV (rules/providers.yml)."""
    return yaml.safe_load((SOURCES / "providers.yml").read_text())


def key_manager_runbooks() -> str:
    """Return docs/runbooks-key-managers.md."""
    template = _environment().get_template("runbooks-key-managers.md.j2")
    return template.render(providers=providers())


# `runbook_url: BASE#anchor`, the value plain or quoted, in rule files and promtool suites alike.
RUNBOOK_URL = re.compile(r"^(\s*runbook_url:\s*)(.+?)\s*$", re.MULTILINE)


def rebase(text: str, base: str) -> str:
    """Return ``text`` with the base of every runbook_url replaced by ``base`` (quoted for YAML
    where it needs to be: the default base is a Prometheus template)."""

    def replace(match: re.Match[str]) -> str:
        url = yaml.safe_load(match[2])
        anchor = url.rpartition("#")[2]
        quoted = yaml.safe_dump(f"{base}#{anchor}", width=1 << 16, default_style=None)
        return match[1] + quoted.removesuffix("\n...\n").strip()

    return RUNBOOK_URL.sub(replace, text)


def render_rules(base: str | None = None) -> str:
    """Return alerts.yml: the template rendered on the runbook base."""
    template = _environment().get_template("alerts.yml.j2")
    rules = template.render(runbook_base="BASE", providers=providers())
    return rebase(rules, base if base is not None else runbook_base())


# --- docs/runbooks.md as HTML: the subset of Markdown it uses ------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$")
_ITEM = re.compile(r"^(\s*)(?:[-*]|\d+\.)\s+(.*)$")
_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """Return the anchor GitHub gives a Markdown heading (lower case, punctuation dropped)."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _inline(text: str) -> str:
    """Return one line of Markdown text as escaped HTML: `code`, **bold**, [links](target)."""
    out, position = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[position : match.start()]))
        code, bold, label, target = match.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{_inline(bold)}</strong>")
        elif target.startswith("#"):
            out.append(f'<a href="{html.escape(target)}">{_inline(label)}</a>')
        else:  # another page of docs/: named, not linked (the exporter serves only this one)
            out.append(f"{_inline(label)} (docs/{html.escape(target)})")
        position = match.end()
    out.append(html.escape(text[position:]))
    return "".join(out)


def runbooks_html(markdown: str) -> str:
    """Return the HTML body of docs/runbooks.md: headings with GitHub's anchors, paragraphs,
    lists, tables and code blocks, everything escaped."""
    blocks: list[str] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip() or line.startswith("<!--"):
            index += 1
        elif line.startswith("```"):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            code = "\n".join(lines[index + 1 : end])
            blocks.append(f"<pre><code>{html.escape(code)}</code></pre>")
            index = end + 1
        elif match := _HEADING.match(line):
            level, text = len(match[1]), match[2]
            blocks.append(f'<h{level} id="{anchor(text)}">{_inline(text)}</h{level}>')
            index += 1
        elif line.startswith("|"):
            rows = []
            while index < len(lines) and lines[index].startswith("|"):
                cells = [cell.strip() for cell in lines[index].strip().strip("|").split("|")]
                if not all(set(cell) <= set("-: ") for cell in cells):
                    tag = "th" if not rows else "td"
                    rows.append("".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells))
                index += 1
            blocks.append("<table>" + "".join(f"<tr>{row}</tr>" for row in rows) + "</table>")
        elif _ITEM.match(line):
            ordered = line.lstrip()[0].isdigit()
            items: list[str] = []
            while index < len(lines) and lines[index].strip():
                if match := _ITEM.match(lines[index]):
                    items.append(match[2])
                else:
                    items[-1] += " " + lines[index].strip()
                index += 1
            tag = "ol" if ordered else "ul"
            blocks.append(
                f"<{tag}>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + f"</{tag}>"
            )
        else:
            paragraph, index = [line.strip()], index + 1
            while index < len(lines) and lines[index].strip():
                if lines[index].startswith(("```", "|", "#")) or _ITEM.match(lines[index]):
                    break
                paragraph.append(lines[index].strip())
                index += 1
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return "\n".join(blocks) + "\n"


def runbooks_page(key_managers: str) -> str:
    """Return akv_exporter/web/static/runbooks.html: runbooks.md, then the other key managers'."""
    body = runbooks_html(RUNBOOKS.read_text()) + runbooks_html(key_managers)
    return _environment().get_template("runbooks.html.j2").render(body=body)


def _waits(rules: str) -> list[tuple[str, str, str, str]]:
    """Return (alert, severity, alerts.yml wait, alerts-fast.yml wait) for every wait."""
    waits, alert, severity = [], "", ""
    for line in rules.splitlines():
        if match := ALERT_LINE.match(line):
            alert, severity = match[1], ""
        elif match := SEVERITY_LINE.match(line):
            severity = match[1]
        elif match := FOR_LINE.match(line):
            waits.append([alert, "", f"for {match[2]}", f"for {FAST_FOR[match[2]]}"])
        for minutes in ESCALATION.findall(line):
            fast = FAST_ESCALATION[int(minutes)]
            waits.append([alert, "", f"{minutes} minutes", f"{fast} minutes"])
        if severity:
            for wait in waits:
                wait[1] = wait[1] or severity
    return [tuple(wait) for wait in waits]


def fast_rules(rules: str) -> str:
    """Return alerts-fast.yml: ``rules`` with every wait of FAST, a header saying which."""
    body = FOR_LINE.sub(lambda m: f"{m[1]}{FAST_FOR[m[2]]}", rules)
    body = ESCALATION.sub(lambda m: f">= {FAST_ESCALATION[int(m[1])]} * 60", body)
    rows = sorted(set(_waits(rules)), key=lambda row: _waits(rules).index(row))
    width = max(len(f"{alert} ({severity})") for alert, severity, _, _ in rows)
    table = "\n".join(
        f"#   {f'{alert} ({severity})':<{width}}  {slow:<12} {fast}"
        for alert, severity, slow, fast in rows
    )
    header = (
        "# The fast profile of akv-exporter's rules: alerts.yml with shorter waits, for teams\n"
        "# that want to hear sooner and accept more alerts about blips. Load this file instead\n"
        "# of alerts.yml, never both (the alert names are the same).\n"
        "# Generated by `make rules` (config/prometheus/generate.py) from alerts.yml: edit\n"
        "# config/prometheus/rules/, not this file. The only differences:\n"
        "#\n"
        f"#   {'alert (severity)':<{width}}  {'alerts.yml':<12} this file\n"
        f"{table}\n"
        "#\n"
    )
    return header + body


def outputs(base: str | None = None) -> dict[Path, str]:
    """Return every generated file with the text it must have."""
    rules = render_rules(base)
    key_managers = key_manager_runbooks()
    kubernetes = _module(REPO / "deploy/kubernetes/generate.py", "kubernetes_generate")
    return {
        RULES: rules,
        FAST_RULES: fast_rules(rules),
        kubernetes.HERE / "base/prometheusrule.yaml": kubernetes.prometheus_rule(rules),
        KEY_MANAGER_RUNBOOKS: key_managers,
        RUNBOOKS_PAGE: runbooks_page(key_managers),
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    if "--runbook-base" in argv:
        index = argv.index("--runbook-base")
        base = argv[index + 1].rstrip("#") if index + 1 < len(argv) else ""
        if not base:
            print("--runbook-base needs a URL", file=sys.stderr)
            return 2
        RUNBOOK_BASE.write_text(base + "\n")
    stale = []
    for path, text in outputs().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(str(path.relative_to(REPO)))
        if not check:
            path.write_text(text)
    if check and stale:
        print(f"out of date (run make rules): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
