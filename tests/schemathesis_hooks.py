"""Schemathesis hooks for tests/openapi.rs (loaded via SCHEMATHESIS_HOOKS).

The run authenticates as the user `schemathesis` and the server's bootstrap
`admin` exists too; inferred links (GET /users lists both) would otherwise
let the admin API's tests delete the caller, change its password (which
revokes its token) or take its roles, and every later request would be a
401 that tests nothing. Requests about those two users go to another name.
"""

import schemathesis

PROTECTED = {"schemathesis", "admin"}


@schemathesis.hook
def before_call(context, case, **kwargs):
    if not case.operation.path.startswith("/users/"):
        return
    if (case.path_parameters or {}).get("name") in PROTECTED:
        case.path_parameters["name"] = "someone-else"
