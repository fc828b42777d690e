"""Schemathesis hooks for tests/openapi.rs (loaded via SCHEMATHESIS_HOOKS).

The run authenticates as the user `schemathesis` and the server's bootstrap
`admin` exists too; inferred links (GET /users lists both) would otherwise
let the admin API's tests delete the caller, change its password (which
revokes its token) or take its roles, and every later request would be a
401 that tests nothing. Requests about those two users go to another name.

The provisioning API's `POST /auth/logout` revokes the token it is called
with, which would leave the rest of its run the same 401s. Given
BATON_SCHEMATHESIS_REFRESH_TOKEN, every logout is sent with a fresh access
token of its own in `X-Authentication` (which the host reads before
`Authorization`, and which logout therefore revokes).
"""

import json
import os
import urllib.request

import schemathesis

PROTECTED = {"schemathesis", "admin"}
REFRESH_TOKEN = os.environ.get("BATON_SCHEMATHESIS_REFRESH_TOKEN")


@schemathesis.hook
def before_call(context, case, **kwargs):
    if case.operation.path.startswith("/users/"):
        if (case.path_parameters or {}).get("name") in PROTECTED:
            case.path_parameters["name"] = "someone-else"
    elif case.operation.path == "/auth/logout" and REFRESH_TOKEN:
        case.headers = {**(case.headers or {}), "X-Authentication": fresh_access_token(case)}


def fresh_access_token(case):
    """A new access token of the run's user, from POST /auth/refresh."""
    request = urllib.request.Request(
        f"{case.operation.schema.get_base_url()}/auth/refresh",
        data=json.dumps({"refresh_token": REFRESH_TOKEN}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.load(reply)["data"]["access_token"]
