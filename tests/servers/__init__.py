"""Real servers the tests start privately, on free 127.0.0.1 ports under temp directories, each
killed with its process group at the end (dovecot.py, radicale.py, smtp.py), and what the
tests put in front of them (imap_proxy.py). A module with a session fixture is used as a
pytest plugin (`pytest_plugins = ("tests.servers.dovecot",)`) so the server starts once.
"""
