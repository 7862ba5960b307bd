#!/usr/bin/env bash
# Fuzzes both running APIs with schemathesis, as a user and as an admin.
#
#   scripts/fuzz.sh COMMAND_API_URL QUERY_API_URL
#   scripts/fuzz.sh http://127.0.0.1:8081 http://127.0.0.1:8082
#
# Called by scripts/test.sh once the system is running. Needs:
#   ECOECO_PYTHON        a Python with schemathesis installed (scripts/python-env.sh prepares it)
#   ECOECO_DATABASE_URL  the running system's database, to make the admin account (psql), or
#   ECOCTL               the path of ecoctl, used instead (`ecoctl grant-role EMAIL admin`)
# Every FUZZ_* setting below can be overridden from the environment.
#
# Fails (exit 1) when any run finds a failing check; exit 2 when it cannot set up.
# Output: a summary per run on stdout, and target/fuzz/<run>.{log,json,junit.xml}.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ]; then
  echo "usage: $0 COMMAND_API_URL QUERY_API_URL" >&2
  exit 2
fi

# The checks that fail the build. Each must hold for every generated request:
#   not_a_server_error            no 5xx
#   problem_json                  every 4xx/5xx is application/problem+json with type, title,
#                                 status (= the HTTP status) and code (scripts/fuzz/hooks.py)
#   status_code_conformance       the status is one the spec documents for the operation
#   content_type_conformance      the Content-Type is one the spec documents for that status
#   response_schema_conformance   the body matches the documented schema
#   response_headers_conformance  documented response headers are present and valid
#   unsupported_method            an undocumented method on a known path answers 405
#   allow_header_conformance      ... with an Allow header listing the documented methods
#   ignored_auth                  operations that declare security refuse missing/bad tokens
#   missing_required_header       a missing required header gets a 4xx
#   positive_data_accepted        what the spec allows is accepted (2xx, 401/403, 404, 409, 429):
#                                 the request schemas carry every rule the server enforces, save
#                                 the few no schema can state (scripts/fuzz/hooks.py lists them)
# Not enabled:
#   negative_data_rejection       schema-invalid input must be refused with 4xx (the specs are
#                                 stricter than the server in places: unknown fields, white space
#                                 around trimmed values, null for "absent")
# Also available: use_after_free, ensure_resource_availability (stateful phase) and
# object_level_authorization; `all` enables every check.
FUZZ_CHECKS_DEFAULT="not_a_server_error,problem_json"
FUZZ_CHECKS_DEFAULT+=",status_code_conformance,content_type_conformance"
FUZZ_CHECKS_DEFAULT+=",response_schema_conformance,response_headers_conformance"
FUZZ_CHECKS_DEFAULT+=",unsupported_method,allow_header_conformance,ignored_auth,missing_required_header"
FUZZ_CHECKS_DEFAULT+=",positive_data_accepted"
export FUZZ_CHECKS=${FUZZ_CHECKS:-$FUZZ_CHECKS_DEFAULT}

# Bounded and reproducible: a fixed number of cases per operation and a fixed seed (the server's
# state still differs between runs). About 70 s in all on a 2-core machine with the defaults.
# The stateful phase chains calls through links schemathesis infers (create, then update and
# delete what was created); only the admin operations have such chains, so only their run has it.
export FUZZ_PHASES=${FUZZ_PHASES:-examples,coverage,fuzzing}
export FUZZ_ADMIN_PHASES=${FUZZ_ADMIN_PHASES:-examples,coverage,fuzzing,stateful}
export FUZZ_MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-50}          # per operation and phase
export FUZZ_END_MAX_EXAMPLES=${FUZZ_END_MAX_EXAMPLES:-10}  # logout and account deletion
export FUZZ_SEED=${FUZZ_SEED:-20261122}
export FUZZ_WORKERS=${FUZZ_WORKERS:-1}                     # more hits a CPython 3.11 ast race
export FUZZ_REQUEST_TIMEOUT=${FUZZ_REQUEST_TIMEOUT:-10}    # seconds; a timeout is a failure
export FUZZ_REPORTS=${FUZZ_REPORTS:-junit}                 # plus json; vcr, har, ndjson: every request
export FUZZ_OUT=${FUZZ_OUT:-target/fuzz}
export FUZZ_PRINT_LINES=${FUZZ_PRINT_LINES:-300}           # failure details copied to stdout, per run
export FUZZ_EXTRA_ARGS=${FUZZ_EXTRA_ARGS:-}                # more `schemathesis run` options
# The problem_json check and the hostile-text generator (control characters in strings).
export FUZZ_HOOKS=$PWD/scripts/fuzz/hooks.py
# Realistic values for closed sets, and the documented 503s of unconfigured outside services.
export FUZZ_CONFIG=${FUZZ_CONFIG:-$PWD/scripts/fuzz/schemathesis.toml}

python=${ECOECO_PYTHON:-python3}
if ! "$python" -c 'import schemathesis' 2>/dev/null; then
  echo "[fuzz] error: $python has no schemathesis (set ECOECO_PYTHON; see scripts/python-env.sh)" >&2
  exit 2
fi
if [ -z "${ECOECO_DATABASE_URL:-}" ] && [ -z "${ECOCTL:-}" ]; then
  echo "[fuzz] error: set ECOECO_DATABASE_URL or ECOCTL to create the admin account" >&2
  exit 2
fi
exec "$python" scripts/fuzz/run.py "$1" "$2"
