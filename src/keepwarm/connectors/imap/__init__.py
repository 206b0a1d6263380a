"""IMAP: any mail server, header fields only, incremental by UID, push by IDLE.

`connector.py` is the `kind = "imap"` connector; `client.py` the connection, `folders.py`
which folders, `cursor.py` where each folder was left, `fetch.py` the header fetch, `idle.py`
push, `tokens.py` XOAUTH2 access tokens. Importing the package registers the connector.
"""

from keepwarm.connectors.imap.connector import ImapConnector as ImapConnector
from keepwarm.connectors.imap.tokens import token_source as token_source
