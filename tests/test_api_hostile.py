"""Hostile values in every field of every route: no response is a 5xx, and the service is
still healthy afterwards.

Every rule of the app's URL map with each of its methods (HEAD and OPTIONS included) is one
operation. Hypothesis draws its requests from strategies built per field from the
declaration its view carries (``@declares``: a request dataclass of ``config/requests.py``
or a config sections' schema function), rendered by the same ``body_schema`` and
``query_parameters`` the views' OpenAPI document comes from: the type, ``option()``'s
``min``/``max`` (minimum, maximum), ``choices`` (enum), ``max_chars`` (maxLength) and name
``check`` (pattern). Each field gets values valid by its declaration, values just outside
it, or what a careless or hostile client sends (unpaired surrogates, NULs, integers of
hundreds of digits, 5,000-deep nesting, lists and objects for scalars, 100,000-character
strings, path escapes). Path parameters get the ids of things that exist or hostile text;
bodies also come as a list, as bytes that are no JSON, as a multipart upload with a hostile
file name, under other content types.

The server requires a token, so ``/api/login`` and ``/api/logout`` are in the map too;
requests carry the token (and a browser's session cookie, which the pages need), only the
cookie, a wrong token or nothing. Both job capacities are zero: submissions only queue.
Generation is derandomized and keeps no example database: the same requests on every run.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse

import hypothesis
import pytest
from conftest import run_cli
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from support.server import TOKEN, Client, running

from deepsynth.config.requests import body_schema, query_parameters
from deepsynth.config.server import ServerConfig
from deepsynth.config.spec import MAX_INT

MIN_REQUESTS = 3000
# Requests per rule and method that a client uses: a base, and more for each field (path
# parameter, query parameter, body property) so that every field gets hostile values.
EXAMPLES, EXAMPLES_PER_FIELD = 30, 8
EXAMPLES_AUTOMATIC = 8  # HEAD and OPTIONS, which Flask answers for every rule by itself
SETTINGS = hypothesis.settings(
    derandomize=True, database=None, deadline=None, phases=[Phase.generate],
    suppress_health_check=list(HealthCheck), print_blob=False)
DEEP_MARK = "@@deep-nesting@@"  # stands for DEEP in a value: json.dumps cannot nest 5,000 deep
DEEP = "[" * 5000 + "]" * 5000
HOSTILE = ["\ud800", "a\udfffb", "x\x00y", "\x00", 10**400, -(10**400), 2**64, 1e308,
           -1, 0, True, None, [], {}, ["a"], {"a": 1}, [[[[[[[[[[1]]]]]]]]]], "",
           "a" * 100_000, "../../etc/passwd", "/etc/passwd", "hf:/etc", "HF::../x",
           "uploads/../../x", "%2e%2e/x", "\\\\server\\share", "\u202e\u0645", "NaN", 1.5,
           DEEP_MARK]
# Text with every code point, unpaired surrogates and NULs included.
HOSTILE_TEXT = st.text(st.characters(exclude_categories=()), max_size=20)
HOSTILE_VALUE = st.one_of(st.sampled_from(HOSTILE), HOSTILE_TEXT, st.integers(), st.floats())
# A well-formed Hub source would reach for the network (hostile ones such as hf:/etc are
# refused first); Hypothesis mixes in string constants of the code, such as "hf:".
HUB_SOURCE = re.compile(rb'"(?:hf:|HF::|preset:)\w')
AUTH = (("valid", 12), ("session", 1), ("wrong", 1), ("none", 1))
JSON, MULTIPART = "application/json", "multipart/form-data; boundary=b"
OTHER_TYPES = ("text/plain", None, "application/json; charset=latin-1", MULTIPART)
CSRF = "X-DeepSynth-CSRF"


def send(base: str, method: str, path: str, raw: bytes | None,
         headers: dict[str, str]) -> tuple[int, http.client.HTTPMessage]:
    """One request on its own connection; redirects are not followed."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=raw, headers=headers)
        response = connection.getresponse()
        response.read()  # event streams end at once here (EVENT_STREAM_SECONDS)
        return response.status, response.headers
    finally:
        connection.close()


def in_url(value, limit: int) -> str:
    """A value as a URL part: surrogates pass as the invalid UTF-8 a client can send."""
    return urllib.parse.quote(str(value)[:limit].encode("utf-8", "surrogatepass"), safe="")


def weighted(*choices: tuple[object, int]) -> st.SearchStrategy:
    """One of ``choices`` (a value or a strategy, with its weight): the hostile shapes of a
    request are rarer than well-formed ones, so that valid bodies get past them."""
    return st.one_of(*[choice if isinstance(choice, st.SearchStrategy) else st.just(choice)
                       for choice, weight in choices for _ in range(weight)])


def to_json(value) -> bytes:
    return json.dumps(value).replace(json.dumps(DEEP_MARK), DEEP).encode()  # surrogates: \ud800


# Values of one declared field.
def valid_values(prop: dict, known: list) -> st.SearchStrategy:
    """What the declaration allows (and the things that exist, for names and ids)."""
    kinds = prop.get("type") if isinstance(prop.get("type"), list) else [prop.get("type")]
    found = [st.sampled_from(known)] if known else []
    if "default" in prop:
        found.append(st.just(prop["default"]))
    if "null" in kinds:
        found.append(st.none())
    if "enum" in prop:
        return st.one_of(st.sampled_from(prop["enum"]), *found)
    low, high = prop.get("minimum"), prop.get("maximum")
    for kind in kinds:
        if kind == "integer":
            found.append(st.integers(low if low is not None else -MAX_INT,
                                     high if high is not None else MAX_INT))
        elif kind == "number":
            found.append(st.floats(low, high, allow_nan=False, allow_infinity=False))
        elif kind == "boolean":
            found.append(st.booleans())
        elif kind == "array":
            found.append(st.lists(valid_values(prop.get("items", {}), []), max_size=3))
        elif kind == "string" and "pattern" in prop:
            found.append(st.from_regex(prop["pattern"], fullmatch=True))
        elif kind == "string":
            found.append(st.text(max_size=12))
    return st.one_of(*found) if found else st.text(max_size=10)


def outside(prop: dict) -> list:
    """The values just outside the declaration: past its bounds, length, choices."""
    found = []
    if prop.get("minimum") is not None:
        found.append(prop["minimum"] - 1)
    if prop.get("maximum") is not None:
        found.append(prop["maximum"] + 1)
    if prop.get("maxLength"):
        found.append("a" * (prop["maxLength"] + 1))
    found += [str(choice).upper() + "x" for choice in prop.get("enum", [])[:2]]
    return found


def hostile_values(prop: dict, known: list) -> st.SearchStrategy:
    """What the declaration refuses: a valid value in a list, hostile values, the edges."""
    valid, edge = valid_values(prop, known), outside(prop)
    return weighted((valid.map(lambda v: [v]), 2), (valid.map(lambda v: {"value": v}), 1),
                    (HOSTILE_VALUE, 2), *([(st.sampled_from(edge), 1)] if edge else []))


def field_values(prop: dict, known: list) -> st.SearchStrategy:
    return weighted((valid_values(prop, known), 1), (hostile_values(prop, known), 1))


# The parts of a request.
class Operation:
    """One rule and method, with strategies for its path, query and body."""

    def __init__(self, rule, method: str, view, known: dict[str, list]):
        self.rule, self.method = rule, method
        self.body = self._body_schema(view)
        query = getattr(view, "request_query", None)
        declared = {p["name"]: field_values(p["schema"], known.get(p["name"], []))
                    for p in (query_parameters(query) if query else [])}
        fields = len(rule.arguments) + len(declared) + len((self.body or {}).get("properties", ()))
        self.examples = EXAMPLES_AUTOMATIC if method in ("HEAD", "OPTIONS") else \
            EXAMPLES + EXAMPLES_PER_FIELD * fields
        path_args = {arg: weighted((st.sampled_from(known.get(arg) or [""]), 3),
                                   (HOSTILE_VALUE, 1), (st.sampled_from(HOSTILE), 1))
                     for arg in sorted(rule.arguments)}
        self.strategy = st.tuples(
            st.fixed_dictionaries(path_args),
            st.fixed_dictionaries({}, optional={**declared, "x": HOSTILE_VALUE}),
            self._body_strategy(known), weighted(*AUTH),
            weighted((False, 9), (True, 1)))  # a body where the method takes none

    @staticmethod
    def _body_schema(view) -> dict | None:
        declared = getattr(view, "request_body", None)
        if declared is None:
            return None
        return body_schema(declared) if isinstance(declared, type) else declared()

    def _body_strategy(self, known: dict[str, list]) -> st.SearchStrategy:
        if self.body is None:
            fields = st.dictionaries(st.sampled_from(["token", "file", "x"]) | HOSTILE_TEXT,
                                     HOSTILE_VALUE | st.just(TOKEN), max_size=3)
        else:
            props = self.body["properties"]
            required = [name for name in self.body.get("required", []) if name in props]
            fields = declared_body(
                {name: valid_values(prop, known.get(name, [])) for name, prop in props.items()},
                {name: hostile_values(prop, known.get(name, [])) for name, prop in props.items()},
                required)
        upload = st.tuples(HOSTILE_TEXT | st.sampled_from(["news.jsonl", "a.csv"]),
                           st.binary(max_size=64)).map(multipart)
        as_json = fields.map(to_json)
        broken = [DEEP, '{"a": ' + DEEP + "}", "{", "null"]
        return weighted(  # (raw body, content type): a JSON object most of the time
            (as_json.map(lambda raw: (raw, JSON)), 20),
            (st.tuples(as_json, st.sampled_from(OTHER_TYPES)), 3),
            (fields.map(lambda body: (to_json([body]), JSON)), 1),
            (st.sampled_from(broken).map(lambda text: (text.encode(), JSON)), 1),
            (st.binary(max_size=64).map(lambda raw: (raw, JSON)), 1),
            (upload.map(lambda raw: (raw, MULTIPART)), 6 if self.body is None else 1))

    def request(self, drawn, cookie: str) -> tuple[str, bytes | None, dict[str, str]]:
        path_args, query, (raw, content_type), auth, body_anyway = drawn
        path = re.sub(r"<(?:[^:<>]+:)?(\w+)>", lambda m: in_url(path_args[m.group(1)], 1000),
                      self.rule.rule)
        pairs = [(name, item) for name, value in query.items() if value is not None
                 for item in (value if isinstance(value, list) else [value])]
        if pairs:
            path += "?" + "&".join(f"{in_url(n, 100)}={in_url(v, 5000)}" for n, v in pairs)
        headers = {"Content-Type": content_type} if content_type else {}
        if auth in ("valid", "session") and self.rule.rule != "/api/logout":
            headers.update({"Cookie": cookie, CSRF: "1"})
        if auth == "valid":
            headers["Authorization"] = f"Bearer {TOKEN}"
        elif auth == "wrong":
            headers.update({"Authorization": "Bearer x" + TOKEN,
                            "Cookie": cookie.split("=")[0] + "=x"})
        takes_body = self.method not in ("GET", "HEAD", "DELETE", "OPTIONS")
        return path, raw if takes_body or body_anyway else None, headers


def declared_body(valid: dict, hostile: dict, required: list[str]) -> st.SearchStrategy:
    """An object of declared fields, valid (the required ones and up to three more), with
    one to three of them made hostile in two bodies out of three: a view stops at the first
    bad field, so few per body reach their checks."""
    names = sorted(valid)

    @st.composite
    def draw_body(draw):
        chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=3))
        body = {name: draw(valid[name]) for name in dict.fromkeys(required + chosen)}
        focus = draw(weighted((st.just([]), 1), (st.lists(
            st.sampled_from(names), min_size=1, max_size=3, unique=True), 2)))
        body.update({name: draw(hostile[name]) for name in focus})
        return body
    return draw_body()


def multipart(drawn) -> bytes:
    filename, content = drawn
    name = filename.encode("utf-8", "surrogatepass")
    return (b'--b\r\nContent-Disposition: form-data; name="file"; filename="' + name +
            b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + content + b"\r\n--b--\r\n")


@pytest.fixture
def server(tmp_path):
    """A token-guarded server over one small dataset, one upload and one queued job, with
    event streams that end at once; the session cookie of a logged-in browser."""
    root = tmp_path / "data"
    (root / "uploads").mkdir(parents=True)
    (root / "uploads" / "news.jsonl").write_text('{"article": "a", "highlights": "b"}\n')
    made = run_cli("generate", "--source", "builtin:scitldr", "--out",
                   str(root / "datasets" / "demo"), "--max-samples", "4", "--page-size",
                   "256x256", "--font-size", "12", "--margin", "8", "--workers", "1")
    assert made.returncode == 0, made.stderr
    set_hypothesis_home_dir(tmp_path / "hypothesis")  # its caches, never the checkout
    config = ServerConfig(data_root=str(root), generate_capacity=0, accelerator_capacity=0,
                          threads=16, api_token=TOKEN)
    with running(config) as (app, base):
        app.config["EVENT_STREAM_SECONDS"] = 0.0
        client = Client(base, token=TOKEN)
        status, job = client.call("POST", "/api/dataset/generate", {
            "source": "uploads/news.jsonl", "name": "queued", "text_field": "article",
            "summary_field": "highlights"})
        assert status == 202, job
        status, answer = send(base, "POST", "/api/login", json.dumps({"token": TOKEN}).encode(),
                              {"Content-Type": "application/json"})
        assert status == 200
        cookie = answer["Set-Cookie"].split(";")[0]  # NAME=VALUE
        known = {"job_id": [job["job_id"]], "name": ["demo", "queued"], "dataset": ["demo"],
                 "source": ["uploads/news.jsonl", "builtin:scitldr"], "index": [0, 1],
                 "page": [0], "preset": ["cpu_demo", "quick_test"], "split": ["train"],
                 "text_field": ["article"], "summary_field": ["highlights"],
                 "action": ["pause", "resume", "cancel"],
                 "filename": ["css/app.css", "js/api.js"]}
        try:
            yield app, client, base, cookie, known
        finally:
            set_hypothesis_home_dir(None)


def all_operations(app, known: dict) -> list[Operation]:
    """Every rule of the URL map with each of its methods; deletions last."""
    found = [Operation(rule, method, app.view_functions[rule.endpoint], known)
             for rule in app.url_map.iter_rules() for method in sorted(rule.methods)]
    return sorted(found, key=lambda op: op.method == "DELETE")


def test_hostile_values_in_every_field_are_never_a_server_error(server):
    app, client, base, cookie, known = server
    operations = all_operations(app, known)
    assert {r.rule for r in app.url_map.iter_rules()} >= {"/api/login", "/api/logout"}
    assert len(operations) >= 80
    failures, statuses = [], {}

    def fuzz(operation: Operation) -> None:
        @hypothesis.settings(SETTINGS, max_examples=operation.examples)
        @hypothesis.given(drawn=operation.strategy)
        def check(drawn):
            path, raw, headers = operation.request(drawn, cookie)
            if HUB_SOURCE.search((raw or b"")[:20_000]):
                return
            try:
                status = send(base, operation.method, path, raw, headers)[0]
            except (OSError, http.client.HTTPException) as exc:  # no answer at all
                status = f"no answer: {exc!r}"
            statuses[status] = statuses.get(status, 0) + 1
            if not isinstance(status, int) or status >= 500:
                failures.append((status, operation.method, path[:200], (raw or b"")[:200]))
        check()

    for operation in operations:
        fuzz(operation)
    sent = sum(statuses.values())
    print(f"{sent} hostile requests over {len(operations)} operations (rules x methods): "
          f"{dict(sorted(statuses.items(), key=str))}")
    assert not failures, failures[:5]
    assert sent >= MIN_REQUESTS
    assert client.call("GET", "/api/health")[0] == 200
    assert client.call("GET", "/api/jobs")[0] == 200
    assert client.call("GET", "/api/datasets")[0] == 200
