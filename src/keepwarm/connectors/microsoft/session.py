"""The one HTTP session msal and the Graph client share: a CA file that the environment cannot
override, and a timeout on every request.

requests lets `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE` replace a session's `verify` (see
`Session.merge_environment_settings`), so a `ca_file` set on the session alone would be silently
ignored on machines that export those variables. `_PinnedSession` puts the configured bundle back
after the environment has been merged, and keeps everything else the environment says (proxies,
`NO_PROXY`), which `trust_env = False` would throw away.
"""

from __future__ import annotations

import os
from typing import Any

import requests

from keepwarm.config.schema import AccountConfig
from keepwarm.connectors.base import SourceProblem

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0  # a page of 1,000 messages from a busy mailbox can take a while
USER_AGENT = "keepwarm/0.1"


class _PinnedSession(requests.Session):
    """A session whose `verify` wins over REQUESTS_CA_BUNDLE and that never waits forever."""

    def __init__(self, ca_file: str | None) -> None:
        super().__init__()
        self._ca_file = ca_file
        if ca_file is not None:
            self.verify = ca_file
        self.headers["User-Agent"] = USER_AGENT

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self._ca_file is not None:
            merged["verify"] = self._ca_file
        return merged

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", (CONNECT_TIMEOUT, READ_TIMEOUT))
        return super().request(method, url, *args, **kwargs)


def http_session(account: AccountConfig) -> requests.Session:
    """A session for this account: TLS verified against `ca_file` when set, else the system's."""
    ca_file = account.ca_file
    if ca_file is not None:
        ca_file = os.path.expanduser(ca_file)
        if not os.path.isfile(ca_file) or not os.access(ca_file, os.R_OK):
            raise SourceProblem(
                f"ca_file {ca_file} of account {account.name!r} is not a readable file",
                "point accounts.ca_file at a PEM bundle of the CA that signed the server",
            )
    return _PinnedSession(ca_file)
