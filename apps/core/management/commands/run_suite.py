"""Runs the whole suite on this machine: ASGI server, Celery worker and beat.

``python manage.py run_suite`` migrates, loads the demo data, starts the three processes,
prints the URL and the demo logins, and stops all of them cleanly on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from apps.accounts.services import DEMO_PASSWORD, demo_users_refusal


class Command(BaseCommand):
    help = "Starts the ASGI server, a Celery worker and Celery beat (Ctrl-C stops all)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("TRELLIS_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("TRELLIS_PORT", "8000")))
        parser.add_argument("--no-demo", action="store_true", help="skip loading demo data")
        parser.add_argument("--no-beat", action="store_true")

    def handle(self, *args, host: str, port: int, no_demo: bool, no_beat: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        demo_users = False
        if not no_demo:
            demo_refusal = demo_users_refusal(host)
            for command in settings.TRELLIS_DEMO_COMMANDS:
                if command[0] == "chat_demo":  # the demo widget route allows the suite's own URL
                    call_command(*command, url=f"http://{host}:{port}")
                elif command[0] != "create_demo_users":
                    call_command(*command)
                elif demo_refusal:
                    self.stdout.write(self.style.WARNING(f"  demo users skipped: {demo_refusal}"))
                else:
                    call_command(*command, host=host)
                    demo_users = True
        cores = os.cpu_count() or 1
        # Server and worker share the cores: each takes half, so neither starves the other.
        env = {**os.environ, "TRELLIS_TORCH_THREADS": os.environ.get("TRELLIS_TORCH_THREADS", str(max(1, cores // 2))),
               "PYTHONUNBUFFERED": "1"}
        web_env = {**env, "TRELLIS_CHAT_WARM": os.environ.get("TRELLIS_CHAT_WARM", "1")}  # first reply not cold
        var = Path(settings.VAR_DIR)
        python = sys.executable
        commands = {
            # --ws-max-size: uvicorn refuses bigger frames (close 1009) before buffering them (its
            # default is 16 MiB). --no-proxy-headers: with no proxy in front, X-Forwarded-* from a
            # local client must not rewrite the scheme or the client address.
            "web": [python, "-m", "uvicorn", "config.asgi:application", "--host", host, "--port", str(port),
                    "--ws", "websockets", "--ws-max-size", str(settings.WEBSOCKET_MAX_FRAME_BYTES),
                    *([] if settings.TRELLIS_NUM_PROXIES else ["--no-proxy-headers"]),
                    "--lifespan", "off", "--no-access-log"],
            "worker": [python, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO",
                       "--concurrency", "1", "--queues", f"default,{settings.CELERY_GPU_QUEUE or 'default'}",
                       "--hostname", "trellis@%h"],
        }
        if not no_beat:
            commands["beat"] = [python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                                "--schedule", str(var / "celerybeat-schedule")]
        # Fixed argv (this interpreter, fixed modules, settings values), no shell.
        procs = {name: subprocess.Popen(cmd, env=web_env if name == "web" else env,  # noqa: S603
                                        cwd=settings.BASE_DIR, start_new_session=True)
                 for name, cmd in commands.items()}
        self.stdout.write(self.style.SUCCESS(f"\nTrellis is starting on http://{host}:{port}/"))
        self.stdout.write(f"  database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
                          f"broker: {settings.CELERY_BROKER_URL.split('://')[0]}, "
                          f"channel layer: {settings.CHANNEL_LAYERS['default']['BACKEND'].rsplit('.', 1)[-1]}")
        if demo_users:
            self.stdout.write(f"  demo logins: admin, agent, analyst, merchandiser / {DEMO_PASSWORD}"
                              " (unless a password was changed)")
        self.stdout.write("  Ctrl-C stops everything.\n")
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    self.stderr.write(f"{name} exited with code {proc.returncode}; stopping the suite")
                    stopping, exit_code = True, 1
                    break
            time.sleep(0.5)
        self._shutdown(procs)
        if exit_code:
            sys.exit(exit_code)

    def _shutdown(self, procs: dict[str, subprocess.Popen]) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15  # seconds for a warm shutdown (a task checkpoints)
        for name, proc in procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in time; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.stdout.write("Trellis stopped.")
