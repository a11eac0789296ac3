"""REDbot (the HTTP resource linter) as a function: every note it makes about one URL, as plain data.

REDbot fetches the URL, lints the response (httplint), then makes its follow-up requests: gzip content
negotiation, a Range request, and If-None-Match / If-Modified-Since validation when the response has an
ETag / Last-Modified. Its notes are collected the way its own formatters do: those on the main response
(including those the follow-up checks add there) and, as the HTML report does, those on a follow-up
response that the main one lacks (same kind of note about the same subject counts as the same).

REDbot runs on thor's single global event loop, whose HTTP client and pool are class attributes. So each
lint runs in a child Python process: a hang or a leftover connection cannot touch the caller, and the
child is killed when it overruns. Run this file directly to lint a URL by hand (`python redbot_lint.py URL`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

# Follow-up checks in REDbot's own order; "" is the plain GET of the URL.
CHECKS = ("", "conneg", "range", "etag_validate", "lm_validate")
LEVELS = ("good", "info", "warning", "bad")


class LintError(RuntimeError):
    """REDbot got no response to lint: connection refused, timeout, not HTTP, or the child failed."""


@dataclass(frozen=True)
class Note:
    """One REDbot note, its summary filled in; `detail` is its explanation as plain text."""

    level: str  # one of LEVELS
    category: str  # "General", "Caching", "Validation", "Content Negotiation", "Partial Content", ...
    summary: str
    subject: str  # what it is about: "field-etag", "body", "status", ...
    check: str = ""  # one of CHECKS: the response the note was made on
    detail: str = ""
    parent: str = ""  # for a note that elaborates another: that note's summary

    def __str__(self) -> str:
        where = f" ({self.check})" if self.check else ""
        return f"{self.level}: [{self.category}] {self.summary}{where}"


@dataclass(frozen=True)
class Report:
    """A lint's notes and the facts REDbot shows beside them (it makes no note for, e.g., missing gzip)."""

    url: str
    status: int | None
    headers: list[tuple[str, str]]
    notes: list[Note]
    # partial (Range), inm (If-None-Match gives 304), ims (If-Modified-Since gives 304), gzip;
    # None where the check could not run (e.g. no ETag to validate).
    support: dict[str, bool | None] = field(default_factory=dict)
    gzip_savings: int = 0
    fetch_error: str | None = None  # the response started but could not be read to its end

    def at(self, *levels: str) -> list[Note]:
        return [note for note in self.notes if note.level in levels]


def lint(url: str, *, headers: list[tuple[str, str]] | None = None, timeout: float = 20.0) -> list[Note]:
    """Every note REDbot makes about `url` (GET, with `headers` added to its request)."""
    return lint_report(url, headers=headers, timeout=timeout).notes


def lint_report(url: str, *, headers: list[tuple[str, str]] | None = None, timeout: float = 20.0) -> Report:
    """Lint `url` in a child process, bounded by `timeout` seconds (plus a little for the child's start)."""
    request = json.dumps({"url": url, "headers": headers or [], "timeout": timeout})
    try:
        done = subprocess.run([sys.executable, __file__, "--json", request], capture_output=True, text=True,
                              timeout=timeout + 15, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LintError(f"REDbot did not finish {url} within {timeout + 15:.0f}s") from exc
    try:
        answer: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise LintError(f"REDbot child failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}") from None
    if "error" in answer:
        raise LintError(answer["error"])
    return Report(url=answer["url"], status=answer["status"], headers=[tuple(h) for h in answer["headers"]],
                  notes=[Note(**note) for note in answer["notes"]], support=answer["support"],
                  gzip_savings=answer["gzip_savings"], fetch_error=answer["fetch_error"])


def lint_in_process(url: str, headers: list[tuple[str, str]], timeout: float) -> Report:
    """Run REDbot on thor's global loop in this process; only for a process that does nothing else with thor."""
    import configparser
    import random

    import thor
    from httplint.note import categories
    from redbot.formatter.text import strip_tags
    from redbot.i18n import set_locale
    from redbot.resource import HttpResource

    parser = configparser.ConfigParser()
    parser.read_dict({"redbot": {"enable_local_access": "True"}})  # else it refuses non-global addresses
    random.seed(0)  # the Range check asks for a randomly chosen slice of the body
    resource = HttpResource(parser["redbot"])
    resource.set_request(url, headers=headers)
    timed_out: list[bool] = []

    def give_up() -> None:
        timed_out.append(True)
        resource.stop()
        thor.stop()

    deadline = thor.schedule(timeout, give_up)
    resource.on("check_done", thor.stop)
    resource.check()
    if not resource.check_done:  # it can finish synchronously, e.g. on a malformed URL
        thor.run()
    deadline.delete()
    if timed_out:
        raise LintError(f"REDbot did not finish {url} within {timeout}s")
    if not resource.has_response:
        error = resource.fetch_error
        raise LintError(f"no response from {url}: " + (f"{error.desc} ({error.detail})".strip() if error else "?"))

    def plain(note: Any, check: str, parent: str = "") -> Note:
        detail = " ".join(strip_tags(str(note.detail)).split())
        return Note(level=note.level.value, category=str(note.category.value), summary=str(note.summary),
                    subject=note.subject, check=check, detail=detail, parent=parent)

    with set_locale("en"):
        picked: list[tuple[Any, str]] = [(note, "") for note in resource.response.notes]
        # A follow-up response repeats most of the main one's notes, some with other numbers in them (ages).
        seen = {(type(note), note.subject) for note in resource.response.notes}
        for check, subrequest in resource.subreqs.items():
            if subrequest.fetch_started:
                picked += [(note, check) for note in subrequest.response.notes
                           if (type(note), note.subject) not in seen]
        order = {category: index for index, category in enumerate(categories)}
        picked.sort(key=lambda item: (CHECKS.index(item[1]) if item[1] in CHECKS else len(CHECKS),
                                      order.get(item[0].category, len(order)), item[0].subject, str(item[0].summary)))
        notes: list[Note] = []
        for note, check in picked:
            notes.append(plain(note, check))
            notes += [plain(sub, check, parent=str(note.summary)) for sub in note.subnotes]
    error = resource.fetch_error
    return Report(
        url=url,
        status=resource.response.status_code,
        headers=[(name, value.strip()) for name, value in resource.response.headers.text],
        notes=notes,
        support={"partial": resource.partial_support, "inm": resource.inm_support, "ims": resource.ims_support,
                 "gzip": resource.gzip_support},
        gzip_savings=resource.gzip_savings,
        fetch_error=f"{error.desc} ({error.detail})" if error and not resource.response.complete else None,
    )


def _main(argv: list[str]) -> int:
    """`--json REQUEST`: the child's side of lint_report. `URL [NAME:VALUE...]`: print the notes for a person."""
    if argv[:1] == ["--json"]:
        request = json.loads(argv[1])
        try:
            report = lint_in_process(request["url"], [tuple(h) for h in request["headers"]], request["timeout"])
        except LintError as exc:
            print(json.dumps({"error": str(exc)}))
            return 1
        print(json.dumps(asdict(report)))
        return 0
    if not argv:
        print("usage: redbot_lint.py URL [Header:value ...]", file=sys.stderr)
        return 2
    extra = [(name.strip(), value.strip()) for name, _, value in (h.partition(":") for h in argv[1:])]
    try:
        report = lint_report(argv[0], headers=extra)
    except LintError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{report.url} -> {report.status}  support={report.support}")
    for note in report.notes:
        print(f"  {'  ' if note.parent else ''}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
