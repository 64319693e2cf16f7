"""`factory browse`: a Starlette app over one database. Pages: the sample list (filters,
sort, pages), a sample (everything `factory explain` knows, the labels, the label form),
the funnel and the report's histograms (each number and bar linked to the samples behind it).

Reads never hold the database: each request opens it read-only (or the running job's
snapshot, stores/snapshot.py) and closes it, under a lock (one request reads at a time) and
under `factory sql`'s copying marker, so a `factory run` that starts meanwhile waits for the
request instead of failing "in use". Only a label POST opens it read-write, for one insert.
"""
from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from dataclasses import asdict, fields, replace
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from factory.browse import charts
from factory.browse.cache import StateCache, state
from factory.browse.guard import LOOPBACK, Guard, new_token, same_origin, token_ok
from stores import browse as q
from stores.browse_summary import summary
from stores.connection import StoreError, copying_marker
from stores.labels import LabelError, checked, put_labels, read_labels
from stores.snapshot import open_for_reading

HERE = Path(__file__).parent
Filters = q.Filters
FLOATS = ("min_score", "max_score", "min_likelihood", "max_likelihood", "min_axis", "max_axis", "min_words",
          "max_words", "quality_bin", "spread_bin")
# filters the form has no field for (the funnel page's bars set them): kept as hidden fields
CHART_FILTERS = ("axis_of", "min_words", "max_words", "quality_bin", "spread_bin")
AXIS = re.compile(r"[A-Za-z0-9_]{1,64}")  # a rubric axis name: a JSON key the filter reads


class BadRequest(ValueError):
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


def filters_of(params, default_job: str | None) -> Filters:
    """The list's filters from a query string; a value outside what is offered is a 400."""
    f = {"job": params.get("job", default_job) or None}
    for key in ("verdict", "stage", "flag", "q", "axis", "axis_of"):
        f[key] = params.get(key) or None
    if f["axis"] and not AXIS.fullmatch(f["axis"]):
        raise BadRequest(f"axis must be a rubric axis name (letters, digits, _; got {f['axis']!r})")
    for key in FLOATS:
        raw = params.get(key)
        if raw not in (None, ""):
            try:
                f[key] = float(raw)
            except ValueError:
                raise BadRequest(f"{key} must be a number (got {raw!r})") from None
    f["sort"] = params.get("sort") or "seed"
    if f["sort"] not in q.SORTS:
        raise BadRequest(f"sort must be one of {', '.join(q.SORTS)}")
    if f["verdict"] and f["verdict"] not in q.VERDICTS:
        raise BadRequest(f"verdict must be one of {', '.join(q.VERDICTS)}")
    if f["flag"] and f["flag"] not in q.FLAGS:
        raise BadRequest(f"flag must be one of {', '.join(q.FLAGS)}")
    if f["axis_of"] and f["axis_of"] not in q.AXIS_OF:
        raise BadRequest(f"axis_of must be one of {', '.join(q.AXIS_OF)}")
    return Filters(**f)


def query_string(f: Filters, **extra) -> str:
    items = {k: v for k, v in asdict(f).items() if v not in (None, "") and not (k == "sort" and v == "seed")}
    items.update({k: v for k, v in extra.items() if v is not None})
    return urlencode(items)


def _int(params, key: str, default: int = 0) -> int:
    raw = params.get(key)
    try:
        return max(0, int(raw)) if raw not in (None, "") else default
    except ValueError:
        raise BadRequest(f"{key} must be a whole number (got {raw!r})") from None


FORM_BYTES = 64 * 1024  # a label is a few hundred bytes; a note of a page or two fits


async def form_of(request: Request) -> dict[str, str]:
    """A urlencoded form (what the page's form posts), parsed without python-multipart."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise BadRequest("a label is a form post (application/x-www-form-urlencoded)")
    body = await request.body()
    if len(body) > FORM_BYTES:
        raise BadRequest(f"a label form is at most {FORM_BYTES} bytes")
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def make_app(db: str | Path, job: str | None = None, port: int = 8765, labeller: str = "me",
             peers: tuple[str, ...] = LOOPBACK) -> Guard:
    db = Path(db)
    token = new_token()
    lock = threading.Lock()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.globals.update(query_string=query_string, token=token, labeller=labeller, verdicts=q.VERDICTS,
                       flags=q.FLAGS, sorts=list(q.SORTS))
    cache = StateCache()

    def cached(con, name, compute):
        return cache.get((state(db, con), name), compute)

    def narrowed(con, f: Filters):
        """(the summary, f with the database's only job filled in when f names none): the same
        rows, and the sort need not start with a constant job (stores/browse.py SORTS)."""
        known = cached(con, "summary", lambda: summary(con))
        return known, (f if f.job or not known.only_job() else replace(f, job=known.only_job()))

    @contextmanager
    def reading():
        with lock:
            marker = copying_marker(db, os.getpid())
            marker.write_text(f"{os.getpid()}\n")
            try:
                con = open_for_reading(db)
            except BaseException:
                marker.unlink(missing_ok=True)
                raise
            try:
                yield con
            finally:
                con.close()
                marker.unlink(missing_ok=True)

    def render(name: str, status: int = 200, **context) -> HTMLResponse:
        context = {"note": None, "f": Filters(job=job), **context}
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def snapshot_note(con) -> str | None:
        if con.snapshot is None:
            return None
        return (f"a running job (PID {con.snapshot.writer_pid}) holds this database: showing its snapshot of "
                f"{con.snapshot.taken_at.astimezone().strftime('%H:%M:%S')}; labels can be saved when it ends")

    def sample_list(request: Request):
        f = filters_of(request.query_params, job)
        offset = _int(request.query_params, "offset")
        after, before = request.query_params.get("after") or None, request.query_params.get("before") or None
        with reading() as con:
            known, shown = narrowed(con, f)
            try:
                rows = q.page(con, shown, labeller, 0 if after or before else offset, limit=q.PAGE, after=after,
                              before=before)
            except LookupError as e:
                raise BadRequest(str(e)) from None
            axes = q.rubric_axes(con, shown.job or (known.jobs[0]["fingerprint"] if known.jobs else ""))
            note = snapshot_note(con)
        if before and not after:  # the extra row, when there is one, comes first: a previous page exists
            prev, more, rows = len(rows) > q.PAGE, True, rows[-q.PAGE:]
        else:
            prev, more, rows = bool(after) or offset > 0, len(rows) > q.PAGE, rows[:q.PAGE]
        # "of N": exact when only the job, verdict and stage filter (the summary counts those),
        # else the bound those give ("of at most N"): no count(*) of the filtered rows per page
        others = [k.name for k in fields(f) if k.name not in ("job", "verdict", "stage", "sort")
                  and getattr(f, k.name) not in (None, "")]
        total = known.upto(shown.job, f.verdict, f.stage)
        chart_filters = [(k, getattr(f, k)) for k in CHART_FILTERS if getattr(f, k) is not None]
        return render("list.html", rows=rows, more=more, prev=prev, offset=offset, page=q.PAGE, f=f,
                      total=total, exact=not others, jobs=known.jobs, stages=known.stages, axes=axes, note=note,
                      chart_filters=chart_filters,
                      without_chart=query_string(replace(f, **{k: None for k in CHART_FILTERS})))

    def go(request: Request):
        """The sample at position pos of the list under these filters (the sample page's next / previous)."""
        f = filters_of(request.query_params, job)
        pos = _int(request.query_params, "pos")
        with reading() as con:
            rows = q.page(con, f, labeller, pos, limit=0)
        if not rows:
            return RedirectResponse(f"/?{query_string(f)}", 303)
        return RedirectResponse(f"/sample/{rows[0]['sample_id']}?{query_string(f, pos=pos)}", 303)

    def sample_page(request: Request, message: str | None = None, status: int = 200):
        from factory.explain import explain

        sid = request.path_params["sample_id"]
        f = filters_of(request.query_params, job)
        pos = request.query_params.get("pos")
        pos = _int(request.query_params, "pos") if pos not in (None, "") else None
        with reading() as con:
            try:
                story = explain(con, sid)
            except LookupError as e:
                return render("error.html", 404, message=str(e))
            labels = read_labels(con, sample_id=story["sample_id"])
            axes = q.rubric_axes(con, story["job"]["fingerprint"])
            members = q.cluster_members(con, story["sample_id"])
            note = snapshot_note(con)
        mine = next((lb for lb in labels if lb["labeller"] == labeller), None)
        return render("sample.html", status, s=story, labels=labels, mine=mine, axes=axes, calls=story["calls"],
                      members=members, f=f,
                      pos=pos,
                      message=message, note=note)

    async def label(request: Request):
        form = await form_of(request)
        host = request.headers.get("host", "")
        if not same_origin(request.headers, host):
            return render("error.html", 403, message="a label must be posted from this page (cross-origin refused)")
        if not token_ok(token, form.get("token")):
            return render("error.html", 403, message="missing or wrong form token: reload the page and label again")
        sid = request.path_params["sample_id"]
        f = filters_of(request.query_params, job)
        axes = [k[len("score_"):] for k in form if k.startswith("score_")]
        try:
            lb = checked(sid, form.get("labeller") or labeller, form.get("decision"),
                         {a: form.get("score_" + a) for a in axes}, form.get("note"), where="label")
            with lock:
                put_labels(db, [lb], source="browse")
        except LabelError as e:
            return sample_page(request, message=str(e), status=400)
        except StoreError as e:  # a run holds the database (DatabaseInUse), a full disk
            try:
                return sample_page(request, message=f"not saved: {e}", status=409)
            except StoreError:  # nothing to show either: held by a process that keeps no snapshot
                return render("error.html", 409, message=f"not saved: {e}")
        pos = request.query_params.get("pos")
        if pos not in (None, ""):
            return RedirectResponse(f"/go?{query_string(f, pos=_int(request.query_params, 'pos') + 1)}", 303)
        return RedirectResponse(f"/sample/{sid}?{query_string(f)}", 303)

    def funnel(request: Request):
        from stores.stats import UnknownJob, resolve_job

        with reading() as con:
            try:
                fingerprint = resolve_job(con, request.query_params.get("job") or job)
            except UnknownJob as e:
                return render("error.html", 404, message=str(e))
            numbers = cached(con, ("charts", fingerprint), lambda: charts.data(con, fingerprint))
            note = snapshot_note(con)
        f = Filters(job=fingerprint)
        return render("funnel.html", job=fingerprint, funnel=numbers["funnel"], f=f, note=note,
                      charts=charts.charts(numbers, lambda **kw: "/?" + query_string(f, **kw)))

    async def errors(request: Request, exc: Exception):
        return render("error.html", 400, message=str(exc))

    async def unreadable(request: Request, exc: Exception):
        return render("error.html", 503, message=str(exc))

    app = Starlette(routes=[
        Route("/", sample_list), Route("/go", go), Route("/funnel", funnel),
        Route("/sample/{sample_id}", sample_page), Route("/sample/{sample_id}/label", label, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ], exception_handlers={BadRequest: errors, StoreError: unreadable})
    return Guard(app, port, peers)


__all__ = ["make_app", "filters_of"]
