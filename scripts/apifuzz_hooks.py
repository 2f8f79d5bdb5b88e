"""Schemathesis hooks for scripts/apifuzz.sh.

The run authenticates as the bootstrap admin (account id 1), the only admin of every tenant.
The server refuses to delete or disable that account (409), but a generated regeneration or
revocation of the token the run holds would lock the rest of the run out with 401s; so every
call that names account 1 in its path is sent to an account id that does not exist instead.
Every other id, valid or not, goes through. (Protection of account 1 is tested in
crates/server/tests/it/security.rs.)

It also serialises `ast.parse` across threads. Hypothesis parses source to describe lambdas,
and on CPython before 3.13 two threads building AST objects at once (a garbage collection in
one can switch to the other) share one recursion counter and fail with "SystemError: AST
constructor recursion depth mismatch" (python/cpython#106905). With `--workers 2` that made one
CI run report a runtime error in schemathesis itself, not in the API.
"""

import ast
import os
import re
import threading

import schemathesis

_ast_lock = threading.RLock()
_ast_parse = ast.parse


def _parse_one_at_a_time(*args, **kwargs):
    with _ast_lock:
        return _ast_parse(*args, **kwargs)


ast.parse = _parse_one_at_a_time

PROTECTED = os.environ.get("APIFUZZ_PROTECTED_ID", "1")
# How the server's i64 path extractor reads the protected id: optional '+', leading zeros.
_PROTECTED_RE = re.compile(r"\+?0*" + re.escape(PROTECTED))
MISSING_ID = 987654321


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if params and _PROTECTED_RE.fullmatch(str(params.get("id", ""))):
        params["id"] = MISSING_ID
