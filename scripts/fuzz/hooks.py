"""Schemathesis hooks for EcoEco, loaded through SCHEMATHESIS_HOOKS by scripts/fuzz.sh.

1. `problem_json`, a check: every error response (status >= 400) must be RFC 9457
   application/problem+json with the fields EcoEco promises: a JSON object with non-empty string
   `type`, `title` and `code`, and an integer `status` equal to the HTTP status. Each kind of
   violation is raised from its own line, so schemathesis reports them as distinct failures.

2. Hostile text: in about one generated case out of four (fuzzing phase), one string value of
   the body, the query or the path gets a control character (NUL first of all) inserted, keeping
   the rest of the value as generated. Plain generation almost never puts a NUL into a field the
   server stores, so this is what reaches "NUL in item_name gives 500"-class defects. The server
   may refuse such a value (4xx problem+json) but must never answer 5xx. Hypothesis draws the
   choice, so the run stays reproducible from the seed and failures shrink.
"""

import json

import schemathesis
from hypothesis import strategies as st

PROBLEM_MEDIA_TYPE = "application/problem+json"

# NUL (which PostgreSQL refuses in text and jsonb), then other C0 and C1 controls and DEL.
HOSTILE = ["\u0000", "\u0001", "\u001b", "\u007f", "\u009f"]


@schemathesis.check
def problem_json(ctx, response, case):
    """Error responses are application/problem+json with type, title, status and code."""
    status = response.status_code
    if status < 400:
        return None
    values = response.headers.get("content-type") or []
    content_type = values[0] if values else ""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not content_type:
        raise AssertionError(f"{status} error response has no Content-Type (expected {PROBLEM_MEDIA_TYPE})")
    if media_type != PROBLEM_MEDIA_TYPE:
        raise AssertionError(
            f"{status} error response has Content-Type `{content_type}`, expected {PROBLEM_MEDIA_TYPE}"
        )
    if not response.content:
        raise AssertionError(f"{status} error response has an empty body")
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{status} error response body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise AssertionError(f"{status} error response body is not a JSON object")
    missing = [name for name in ("type", "title", "code") if not isinstance(body.get(name), str) or not body[name]]
    if missing:
        raise AssertionError(f"{status} problem lacks a non-empty string {', '.join(missing)}")
    if body.get("status") != status:
        raise AssertionError(f"problem `status` is {body.get('status')!r} but the HTTP status is {status}")
    return None


def _string_paths(value, prefix=()):
    """Paths (tuples of keys and indexes) of every string inside `value`."""
    if isinstance(value, str):
        yield prefix
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_paths(item, (*prefix, index))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _get(value, path):
    for step in path:
        value = value[step]
    return value


def _with_hostile_text(value):
    """A strategy: `value` unchanged (3 times in 4), or with a control character in one string."""
    paths = list(_string_paths(value))
    if not paths:
        return st.just(value)

    def inject(choice):
        path, char, where = choice
        text = _get(value, path)
        at = min(where, len(text))
        return _replace(value, path, text[:at] + char + text[at:])

    hostile = st.tuples(st.sampled_from(paths), st.sampled_from(HOSTILE), st.integers(0, 8)).map(inject)
    return st.integers(0, 3).flatmap(lambda n: hostile if n == 3 else st.just(value))


@schemathesis.hook
def flatmap_body(ctx, body):
    return _with_hostile_text(body)


@schemathesis.hook
def flatmap_query(ctx, query):
    return _with_hostile_text(query)


@schemathesis.hook
def flatmap_path_parameters(ctx, path_parameters):
    return _with_hostile_text(path_parameters)
