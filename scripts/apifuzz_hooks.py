"""Schemathesis hooks for scripts/apifuzz.sh.

The run authenticates as the bootstrap admin (account id 1), the only admin of every tenant.
The server refuses to delete or disable that account (409), but a generated regeneration or
revocation of the token the run holds would lock the rest of the run out with 401s; so every
call that names account 1 in its path is sent to an account id that does not exist instead.
Every other id, valid or not, goes through. (Protection of account 1 is tested in
crates/server/tests/it/security.rs.)
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
