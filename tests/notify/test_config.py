"""The `notifications:` section: valid channels and routes, and each bad one left out with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import model_from
from vigil.cli.app import app
from vigil.incidents.models import Impact
from vigil.model.loader import load_model
from vigil.notify.config import AppriseChannel, SmtpChannel, WebhookChannel, notifications_of

MODEL = """\
components:
  - {id: db, kind: database, owner: dba}
  - {id: web, kind: service, owner: web-team}
notifications:
  channels:
    - id: hook
      type: webhook
      url: http://127.0.0.1:9/hook
      secret: 0123456789abcdef0123
    - id: mail
      type: smtp
      host: 127.0.0.1
      port: 2525
      from: vigil@example.org
      to: [ops@example.org]
    - id: chat
      type: apprise
      url: notaservice://x
    - id: json
      type: apprise
      url: json://127.0.0.1:9/x
  routes:
    - {channels: [hook, chat], owners: [dba], min_impact: major}
    - {channels: [mail], components: [web]}
"""


def test_valid_channels_and_routes_are_kept_and_a_url_apprise_refuses_is_an_issue_with_its_line() -> None:
    config = notifications_of(model_from(MODEL))
    assert sorted(config.channels) == ["hook", "json", "mail"]
    assert isinstance(config.channels["hook"], WebhookChannel)
    mail = config.channels["mail"]
    assert isinstance(mail, SmtpChannel) and mail.sender == "vigil@example.org" and mail.port == 2525
    issues = [str(i) for i in config.issues]
    assert issues == [
        "test.yaml:18: notifications.channels[2].url: Apprise does not accept this URL (scheme 'notaservice')",
        "test.yaml:23: notifications.routes[0].channels[1]: unknown or invalid channel 'chat'",
    ]
    # The route keeps its valid channel.
    assert [r.channels for r in config.routes] == [["hook"], ["mail"]]
    assert config.routes[0].min_impact is Impact.MAJOR and config.routes[0].owners == ["dba"]


def test_schema_errors_duplicates_and_unknown_keys_are_issues_and_the_rest_works() -> None:
    text = """\
components: [{id: db, kind: database}]
notifications:
  channels:
    - {id: a, type: webhook, url: ftp://x, secret: 0123456789abcdef0123}
    - {id: b, type: pager}
    - {id: c, type: smtp, host: h, from: v@x.org, to: [o@x.org], bogus: 1}
    - {id: d, type: smtp, host: h, from: v@x.org, to: [o@x.org]}
    - {id: d, type: smtp, host: h2, from: v@x.org, to: [o@x.org]}
  routes:
    - {channels: [d], min_impact: huge}
    - {channels: [d]}
  extra: 1
"""
    config = notifications_of(model_from(text))
    assert list(config.channels) == ["d"]
    assert config.channels["d"].host == "h"  # type: ignore[union-attr]
    places = [(i.line, i.path) for i in config.issues]
    assert places == [
        (12, "notifications.extra"),
        (4, "notifications.channels[0].url"),
        (5, "notifications.channels[1].type"),
        (6, "notifications.channels[2].bogus"),
        (8, "notifications.channels[4].id"),
        (10, "notifications.routes[0].min_impact"),
    ]
    assert len(config.routes) == 1


def test_a_model_without_the_section_has_no_channels() -> None:
    config = notifications_of(model_from("components: [{id: db, kind: database}]\n"))
    assert config.channels == {} and config.routes == [] and config.issues == []


def test_vigil_validate_reports_a_bad_apprise_url_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(MODEL, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:18: notifications.channels[2].url: Apprise does not accept this URL" in result.output
    good = MODEL.replace("notaservice://x", "json://127.0.0.1:9/chat")
    path.write_text(good, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "4 notification channels" in result.output


SECRETS = """\
components: [{id: db, kind: database}]
notifications:
  channels:
    - {id: hook, type: webhook, url: 'http://127.0.0.1:9/h', secret_file: secrets/hook}
    - {id: mail, type: smtp, host: 127.0.0.1, from: v@example.org, to: [o@example.org], username: u,
       password_env: VIGIL_TEST_SMTP_PASSWORD}
    - {id: chat, type: apprise, url_env: VIGIL_TEST_APPRISE_URL}
    - {id: gone, type: webhook, url: 'http://127.0.0.1:9/g', secret_file: /nonexistent/vigil-secret}
    - {id: unset, type: webhook, url: 'http://127.0.0.1:9/u', secret_env: VIGIL_TEST_UNSET_SECRET}
    - {id: both, type: webhook, url: 'http://127.0.0.1:9/b', secret: 0123456789abcdef0123, secret_env: X}
  routes:
    - {channels: [hook, mail, chat]}
"""


def test_secrets_come_from_files_and_the_environment_and_a_missing_one_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hook").write_text("file-secret-0123456789\n", encoding="utf-8")  # `echo`'s newline
    monkeypatch.setenv("VIGIL_TEST_SMTP_PASSWORD", "env-password")
    monkeypatch.setenv("VIGIL_TEST_APPRISE_URL", "json://127.0.0.1:9/x")
    monkeypatch.delenv("VIGIL_TEST_UNSET_SECRET", raising=False)
    path = tmp_path / "model.yaml"
    path.write_text(SECRETS, encoding="utf-8")
    config = notifications_of(load_model([path]))
    assert sorted(config.channels) == ["chat", "hook", "mail"]
    hook, mail, chat = config.channels["hook"], config.channels["mail"], config.channels["chat"]
    assert isinstance(hook, WebhookChannel) and hook.secret == "file-secret-0123456789"  # relative to the file
    assert isinstance(mail, SmtpChannel) and mail.password == "env-password"
    assert isinstance(chat, AppriseChannel) and chat.url == "json://127.0.0.1:9/x"
    issues = [str(i).replace(str(path), "model.yaml") for i in config.issues]
    assert issues == [
        "model.yaml:8: notifications.channels[3].secret_file: cannot read /nonexistent/vigil-secret: "
        "No such file or directory",
        "model.yaml:9: notifications.channels[4].secret_env: environment variable VIGIL_TEST_UNSET_SECRET is not "
        "set (or empty)",
        "model.yaml:10: notifications.channels[5].secret_env: give one of secret, secret_env, not several",
    ]
    # A secret read from a file is still checked like one written in place: too short is refused.
    (tmp_path / "secrets" / "hook").write_text("short\n", encoding="utf-8")
    config = notifications_of(load_model([path]))
    assert "hook" not in config.channels
    assert any("channels[0].secret" in str(i) and "16 characters" in str(i) for i in config.issues)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\n  \n", "is empty"),
        (b"\xff\xfe not utf-8", "is not UTF-8 text"),
        (b"x" * (64 * 1024 + 1), "is larger than 64 KiB: not a secret"),
    ],
)
def test_a_secret_file_that_cannot_be_a_secret_is_an_issue_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "hook.secret").write_bytes(content)
    path = tmp_path / "model.yaml"
    path.write_text(
        "components: [{id: db, kind: database}]\nnotifications:\n  channels:\n"
        "    - {id: hook, type: webhook, url: 'http://127.0.0.1:9/h', secret_file: hook.secret}\n  routes: []\n",
        encoding="utf-8",
    )
    config = notifications_of(load_model([path]))
    assert config.channels == {}
    (issue,) = config.issues
    assert issue.line == 4 and issue.path == "notifications.channels[0].secret_file"
    assert issue.message == f"{tmp_path / 'hook.secret'} {message}"
