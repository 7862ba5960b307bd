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

3. `positive_data_accepted`, a check: schemathesis' `positive_data_acceptance` ("the spec allows
   this request, the server refuses it"), minus what no request schema can say. It skips cases
   that carry a control character injected by (2), which the specs forbid but the generator
   still marks as valid, and refusals that depend on the server's state or clock rather than on
   the request's shape (`STATE_DEPENDENT_CODES`, `UNEXPRESSIBLE_FIELD_ERRORS`, each with its
   reason).
   Everything else the server refuses must be refused by the spec first.
"""

import json
import unicodedata
import urllib.parse

import schemathesis
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

PROBLEM_MEDIA_TYPE = "application/problem+json"

# NUL (which PostgreSQL refuses in text and jsonb), then other C0 and C1 controls and DEL.
HOSTILE = ["\u0000", "\u0001", "\u001b", "\u007f", "\u009f"]

# Problem codes that refuse a well-formed request because of what the server holds: the spec can
# give a value's shape, never which values the server issued or still honours.
STATE_DEPENDENT_CODES = {
    "invalid_consistency_token": "a token is one a command returned; its shape alone proves nothing",
    "invalid_cursor": "a cursor is one a list returned, unchanged",
    "invalid_or_expired_token": "a mailed link's token must exist, be unused and unexpired",
}
# 422 field errors (field, message) for rules no request schema can state: they depend on the
# server's state or clock, or compare fields with each other or with a key inside a list.
UNEXPRESSIBLE_FIELD_ERRORS = {
    ("invite_code", "is not a known invite code"): "the code must belong to an existing account",
    ("scanned_at", "must not be in the future"): "relative to now (documented on the field)",
    ("scanned_at", "must be within the last 7 days"): "relative to now (documented on the field)",
    ("password", "must not be your username or e-mail address"): "compares two fields",
    ("new_password", "must not be your username or e-mail address"): "compares with the account",
    ("rules", "each category at most once"): "uniqueness by a key inside the items",
}


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


def _has_control_character(value):
    """Whether `value` holds a control character other than tab and line breaks (strings of the
    path arrive percent-encoded)."""
    if isinstance(value, str):
        text = urllib.parse.unquote(value) if "%" in value else value
        return any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in text)
    if isinstance(value, dict):
        return any(_has_control_character(k) or _has_control_character(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_control_character(item) for item in value)
    return False


def _state_dependent(response):
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    if body.get("code") in STATE_DEPENDENT_CODES:
        return True
    errors = body.get("errors")
    if body.get("code") != "validation_failed" or not isinstance(errors, list) or not errors:
        return False
    return all(
        isinstance(e, dict) and (e.get("field"), e.get("message")) in UNEXPRESSIBLE_FIELD_ERRORS for e in errors
    )


@schemathesis.check
def positive_data_accepted(ctx, response, case):
    """A request the spec allows is accepted, unless only the server's state can refuse it."""
    if any(_has_control_character(part) for part in (case.body, case.query, case.path_parameters, case.headers)):
        return None
    if response.status_code in (400, 422) and _state_dependent(response):
        return None
    return positive_data_acceptance(ctx, response, case)


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

