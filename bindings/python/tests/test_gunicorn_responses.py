"""test_gunicorn_responses.py - HTTP response caching under real gunicorn with 4 uvicorn workers
(tests/http_app.py), with L1 alone and with a real redis-server behind it.

What the response cache promises across processes:
  - one computation per URL for the whole host, and the same body and the same ETag from every
    worker (not a per-process hash);
  - 304 Not Modified from a worker other than the one that computed the response;
  - Vary respected: each language its own entry, served alike by every worker;
  - responses marked private or setting a cookie are never served to another request;
  - an invalidation made through one worker is seen by every worker;
  - a worker SIGKILLed while making a response (holding its lease) holds nobody up for longer
    than the lease, and the segment stays sound.

Requests go on fresh connections so that they spread over the workers (gunicorn_support).
"""
import http.client
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from gunicorn_support import cli_path, running, segment_exists

WORKERS = 4
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(params=["l1", "l1+l2"])
def server(request, tmp_path, shm_name):
    env = {}
    if request.param == "l1+l2":
        env["REDIS_URL"] = request.getfixturevalue("redis_server").url
    with running(tmp_path, shm_name, workers=WORKERS, app="http_app:app", env=env,
                 extra_pythonpath=[HERE]) as g:
        yield g
    assert not segment_exists(shm_name)


def fetch(g, path, method="GET", headers=None):
    """(status, headers with lowercase names, body bytes) of one request on a fresh connection."""
    con = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
    try:
        con.request(method, path, headers={"Connection": "close", **(headers or {})})
        resp = con.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        con.close()


def from_every_worker(g, path, headers=None, tries=2000):
    """{serving pid: (status, headers, body)}: the path fetched until every worker answered.
    Workers race to accept each new connection; on 2 busy CPUs one can lose hundreds of races
    in a row, so after the first 100 tries each waits a little, letting every worker go idle."""
    seen = {}
    for i in range(tries):
        status, h, body = fetch(g, path, headers=headers)
        seen.setdefault(int(h["x-served-by"]), (status, h, body))
        if len(seen) == WORKERS:
            return seen
        if i >= 100:
            time.sleep(0.005)
    raise AssertionError(f"only {len(seen)} of {WORKERS} workers answered {path} in {tries} "
                         "tries")


def test_every_worker_sends_the_same_response_and_etag(server):
    answers = from_every_worker(server, "/pages/1")
    bodies = {body for _, _, body in answers.values()}
    etags = {h["etag"] for _, h, _ in answers.values()}
    assert len(bodies) == 1, "a worker computed the page again"
    assert len(etags) == 1 and next(iter(etags)).startswith('"')
    computed_by = json.loads(next(iter(bodies)))["computed_by"]
    assert computed_by in answers  # one of the workers computed it, the others served it
    hits = [h["x-cache"] for pid, (_, h, _) in answers.items() if pid != computed_by]
    assert hits == ["HIT"] * (WORKERS - 1)


def test_304_from_a_worker_that_did_not_compute(server):
    status, h, body = fetch(server, "/pages/2")
    assert status == 200
    etag, computed_by = h["etag"], json.loads(body)["computed_by"]
    answers = from_every_worker(server, "/pages/2", headers={"If-None-Match": etag})
    for pid, (status, h, body) in answers.items():
        assert status == 304 and body == b"", pid
        assert h["etag"] == etag and h["cache-control"] == "max-age=300"
    assert any(pid != computed_by for pid in answers)


def test_vary_gives_each_language_its_entry_on_every_worker(server):
    expected = {"en": "hello", "fr": "bonjour", "de": "hallo"}
    bodies = {}
    for lang, text in expected.items():
        answers = from_every_worker(server, "/greeting", headers={"Accept-Language": lang})
        got = {body for _, _, body in answers.values()}
        assert len(got) == 1, f"{lang}: computed more than once"
        value = json.loads(next(iter(got)))
        assert value["text"] == text and value["lang"] == lang
        assert all(h["vary"] == "accept-language" for _, h, _ in answers.values())
        bodies[lang] = next(iter(got))
    assert len(set(bodies.values())) == 3


@pytest.mark.parametrize("path", ["/me", "/session"])
def test_private_responses_are_never_shared(server, path):
    computations = set()
    for i in range(40):
        status, h, body = fetch(server, f"{path}?user=u{i % 4}")
        value = json.loads(body)
        assert status == 200 and value["user"] == f"u{i % 4}"
        assert h["x-cache"] == "PASS"
        computations.add((value["computed_by"], value["computation"]))
    assert len(computations) == 40, "a private response was served to another request"


def test_an_invalidation_through_one_worker_reaches_every_worker(server):
    answers = from_every_worker(server, "/pages/3")
    before = {pid: (h["x-cache"], json.loads(b)) for pid, (_, h, b) in answers.items()}
    assert {v["title"] for _, v in before.values()} == {"page 3"}, before
    status, _, body = fetch(server, "/pages/3?title=renamed", method="PUT")
    assert status == 200, body
    answers = from_every_worker(server, "/pages/3")
    after = {pid: (h["x-cache"], json.loads(b)) for pid, (_, h, b) in answers.items()}
    assert {v["title"] for _, v in after.values()} == {"renamed"}, (before, after)
    # computed once again, then shared
    assert len({b for _, _, b in answers.values()}) == 1, (before, after)


def test_a_worker_killed_while_making_a_response_holds_nobody_up(server, tmp_path):
    """SIGKILL the worker that holds the lease of a URL in the middle of making it: the next
    request for the URL is made by another worker once the lease (1 s) has run out, and the
    segment checks clean."""
    marker = server.env["EXAMPLE_DB"] + ".computing"
    failed = []

    def first():
        try:
            fetch(server, "/slow/1")
        except OSError as e:  # the connection dies with its worker
            failed.append(e)

    t = threading.Thread(target=first)
    t.start()
    deadline = time.monotonic() + 10
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    with open(marker) as f:
        victim = int(f.read())
    os.kill(victim, signal.SIGKILL)
    t.join(10)
    started = time.monotonic()
    status, h, body = fetch(server, "/slow/1")
    waited = time.monotonic() - started
    assert status == 200 and json.loads(body)["computed_by"] != victim
    assert waited < 8, f"the next request waited {waited:.1f} s"
    status, h2, body2 = fetch(server, "/slow/1")
    assert body2 == body and h2["x-cache"] == "HIT"
    check = subprocess.run([cli_path(), "-n", server.segment, "check"], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
