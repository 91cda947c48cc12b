"""Production settings and the compose file that runs them: HTTPS by default, no demo login, no default secrets.

The settings are read once per process, so each case starts `manage.py` (or Python) in a
subprocess with exactly the environment it is about.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

HTTPS_VARIABLES = [
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "USE_X_FORWARDED_PROTO",
]
ONE_YEAR = 365 * 24 * 3600


def environment(**variables: str) -> dict[str, str]:
    """This process's environment without DEBUG, SECRET_KEY, hosts or HTTPS switches, plus `variables`."""
    env = {
        name: value for name, value in os.environ.items()
        if name not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", *HTTPS_VARIABLES}
    }
    return env | variables


def production(**variables: str) -> dict[str, str]:
    """A production environment: DEBUG off, a long random SECRET_KEY, a real host name."""
    return environment(DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="desk.example.com", **variables)


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def https_settings(env: dict[str, str]) -> dict:
    """The HTTPS settings Django ends up with in a process started with `env`."""
    script = (
        "import json; from django.conf import settings; print(json.dumps({name: getattr(settings, name, None) for name in "
        "['SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', "
        "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_PROXY_SSL_HEADER']}))"
    )
    result = manage("shell", "-c", script, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_finds_no_issues_with_debug_off_and_only_a_secret_key_and_hosts_set():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_debug_off_defaults_to_https_only_with_a_year_of_hsts():
    assert https_settings(production()) == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": ONE_YEAR,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": None,
    }


def test_plain_http_switches_turn_off_the_redirect_hsts_and_secure_cookies_with_debug_off():
    switched_off = production(
        SECURE_SSL_REDIRECT="0", SECURE_HSTS_SECONDS="0", SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
        SECURE_HSTS_PRELOAD="0", SESSION_COOKIE_SECURE="0", CSRF_COOKIE_SECURE="0",
    )

    assert https_settings(switched_off) == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": None,
    }
    warned = manage("check", "--deploy", env=switched_off).stderr
    for warning in ["security.W004", "security.W008", "security.W012", "security.W016"]:
        assert warning in warned, "the switches reached Django's own checks"


def test_debug_on_leaves_https_off_so_make_run_works_on_plain_http():
    settings = https_settings(environment(DEBUG="1"))

    assert settings["SECURE_SSL_REDIRECT"] is False
    assert settings["SECURE_HSTS_SECONDS"] == 0
    assert settings["SESSION_COOKIE_SECURE"] is False
    assert settings["CSRF_COOKIE_SECURE"] is False


def test_x_forwarded_proto_is_trusted_only_when_use_x_forwarded_proto_says_the_proxy_sets_it():
    assert https_settings(production())["SECURE_PROXY_SSL_HEADER"] is None
    assert https_settings(production(USE_X_FORWARDED_PROTO="1"))["SECURE_PROXY_SSL_HEADER"] == [
        "HTTP_X_FORWARDED_PROTO", "https"
    ]


def test_debug_off_without_a_secret_key_refuses_to_start():
    result = manage("check", env=environment(DEBUG="0", ALLOWED_HOSTS="desk.example.com"))

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_a_misspelt_https_switch_refuses_to_start_instead_of_switching_it_off():
    result = manage("check", env=production(SESSION_COOKIE_SECURE="flase"))

    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE='flase' is not a flag" in result.stderr


# The production compose file. Docker cannot run here, so these read the file as Compose would.

COMPOSE_FILE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def command_text(service: dict) -> str:
    command = service.get("command") or ""
    return command if isinstance(command, str) else " ".join(command)


def with_defaults(value: str) -> str:
    """A compose value as it is when no variable is set: `${NAME:-default}` becomes `default`."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)


def test_compose_never_seeds_the_demo_login(compose):
    for name, service in compose["services"].items():
        for step in re.split(r"&&|;|\|\|", command_text(service)):
            if "seed_demo" in step:
                assert "--strategies-only" in step, f"{name} runs `{step.strip()}`, which creates the demo login"
    assert "create_admin" in command_text(compose["services"]["web"])


def test_compose_requires_a_secret_key_and_takes_the_admin_password_from_the_environment(compose):
    app_services = {name: s for name, s in compose["services"].items() if "SECRET_KEY" in s.get("environment", {})}

    assert set(app_services) == {"web", "worker", "backtests", "feed"}
    for name, service in app_services.items():
        assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]+\}", service["environment"]["SECRET_KEY"]), name
    assert compose["services"]["web"]["environment"]["ADMIN_PASSWORD"] == "${ADMIN_PASSWORD:-}"


def test_compose_file_holds_no_demo_password_or_placeholder_key():
    text = COMPOSE_FILE.read_text().lower()

    for leftover in ["demo-password", "placeholder", "insecure", "tradeweb_secret_key"]:
        assert leftover not in text


def test_compose_publishes_every_port_on_this_machine_only_by_default(compose):
    published = [
        (name, with_defaults(port)) for name, service in compose["services"].items() for port in service.get("ports", [])
    ]

    assert ("web", "127.0.0.1:8000:8000") in published
    for name, port in published:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
