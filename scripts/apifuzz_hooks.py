"""Schemathesis hooks for scripts/apifuzz.sh.

The run authenticates as the bootstrap admin (account id 1), the only admin of every tenant.
A generated DELETE or PATCH (disabled: true) of that account, or a regeneration of its token,
would lock the rest of the run out with 401s; so every call that names account 1 in its path is
sent to an account id that does not exist instead. Every other id, valid or not, goes through.
"""

import os
import re

import schemathesis

PROTECTED = os.environ.get("APIFUZZ_PROTECTED_ID", "1")
# How the server's i64 path extractor reads the protected id: optional '+', leading zeros.
_PROTECTED_RE = re.compile(r"\+?0*" + re.escape(PROTECTED))
MISSING_ID = 987654321


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if params and _PROTECTED_RE.fullmatch(str(params.get("id", ""))):
        params["id"] = MISSING_ID
