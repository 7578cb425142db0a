"""What the browser tests that drive a real uvicorn share: the server, on the test database,
and a script that reports Content-Security-Policy violations to the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.servers.conftest import Server, child_env, free_port, shared_database_url, uvicorn_argv, wait_for_healthz

# context.add_init_script(WATCH_VIOLATIONS) after context.expose_function("reportViolation", ...)
WATCH_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.reportViolation([e.violatedDirective, e.blockedURI, e.sourceFile + ":" + e.lineNumber].join(" "));
});
"""


def children_database_url() -> str:
    """The test database, as a URL a child process can open (SQLite file or PostgreSQL)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    return shared_database_url()


def uvicorn_server(start_process: Any, tmp_path: Path, **env: str) -> Server:
    """A uvicorn on a free port serving the test database; stopped by ``start_process``."""
    port = free_port()
    env = child_env(tmp_path / "var", DATABASE_URL=children_database_url(), **env)
    server = start_process("uvicorn", uvicorn_argv(port), env, port=port)
    wait_for_healthz(server)
    return server
