"""Outlook / Microsoft 365 mail and calendar over Microsoft Graph, signed in with msal.

`auth` (msal: device code flow, token cache, client credentials), `session` (the HTTP session
with an explicit CA file), `graph` (paging, throttling, errors), `messages` / `mail` (kind
"outlook"), `events` / `calendar` (kind "outlook_calendar"). See docs/microsoft.md.
"""

# Importing the connector modules registers their kinds (the connectors package imports this one).
from keepwarm.connectors.microsoft import calendar as calendar
from keepwarm.connectors.microsoft import mail as mail
