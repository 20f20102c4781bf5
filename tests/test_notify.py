"""`notify:` end to end: the installed CLI as cron runs it, a GuardDuty fake as the source
and notification receivers on 127.0.0.1. Targets are told only what was published, each
from its own position in state, at least once, and one failing never blocks another."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.aws_env import AwsWorld
from tests.fakes.http_fake import Fault, Response, on
from tests.fakes.receiver import Receiver
from tests.world import hours_ago

SLACK_PATH = "/services/T0000/B0000/s3cr3tW3bh00kT0k3n"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as fake:
        yield fake


@pytest.fixture
def second() -> Iterator[Receiver]:
    with Receiver() as fake:
        yield fake


def webhook(receiver: Receiver, **options: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": receiver.url + "/hook", "retries": 1, **options}


def state(aws: AwsWorld) -> dict[str, Any]:
    return json.loads((aws.state / "aws.json").read_text())


def delivered(receiver: Receiver) -> Counter[tuple[str, str]]:
    """(id, raw_sha256) of each record the receiver accepted, with how often."""
    return Counter((b["id"], b["raw_sha256"]) for b in receiver.bodies())


def published(aws: AwsWorld) -> Counter[tuple[str, str]]:
    return Counter((r["id"], r["raw_sha256"]) for r in aws.records())


def touch(finding: dict[str, Any]) -> None:
    finding["service"]["count"] += 1
    finding["updatedAt"] = hours_ago(0.1).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_targets_get_exactly_the_published_lines_after_the_run(aws: AwsWorld,
                                                               receiver: Receiver) -> None:
    aws.add(6, first=0, base_time=hours_ago(0.8))
    aws.write_config(notify=[webhook(receiver, changes="all")])
    result = aws.fetch()
    assert result.returncode == 0, result.stderr
    lines = {json.loads(line)["id"]: line for p in aws.alerts.rglob("*.jsonl")
             for line in p.read_text().splitlines()}
    assert len(receiver.accepted) == 6
    for request in receiver.accepted:
        record = json.loads(request.body)
        assert request.body.decode() == lines[record["id"]]  # the line as published
        assert request.headers["idempotency-key"] == f"{record['id']}:{record['raw_sha256']}"
        assert request.headers["content-type"] == "application/json"
    assert "notify" not in state(aws)  # nothing owed any more

    assert aws.fetch().returncode == 0  # nothing new: nothing sent
    assert len(receiver.accepted) == 6
    touch(aws.findings()[2])
    assert aws.fetch().returncode == 0
    assert len(receiver.accepted) == 7 and delivered(receiver) == published(aws)


def test_changes_new_sends_an_alerts_first_version_only(aws: AwsWorld,
                                                        receiver: Receiver) -> None:
    aws.add(4, first=0, base_time=hours_ago(0.8))
    aws.write_config(notify=[webhook(receiver)])  # changes: new is the default
    assert aws.fetch().returncode == 0
    touch(aws.findings()[0])
    aws.add(1, first=10, base_time=hours_ago(0.05))
    assert aws.fetch().returncode == 0
    assert len(aws.records()) == 6  # five alerts, one of them in two versions
    assert sorted(b["native_id"] for b in receiver.bodies()) == sorted(
        f["arn"] for f in aws.findings())


def test_filters_pick_severity_status_and_source(aws: AwsWorld, receiver: Receiver,
                                                 second: Receiver) -> None:
    aws.add(10, first=0, base_time=hours_ago(0.8))
    aws.findings()[1]["service"]["archived"] = True
    aws.write_config(notify=[
        webhook(receiver, min_severity="high", statuses=["new"]),
        webhook(second, sources=["other"]),
    ], sources={"aws": {"type": "guardduty", "regions": ["us-east-1"]},
                "other": {"type": "guardduty", "regions": ["eu-west-1"]}})
    aws.fake.add_detector("eu-west-1", "ffffeeee", [])
    assert aws.fetch().returncode == 0
    records = aws.records()
    wanted = {r["id"] for r in records if r["severity"] in ("high", "critical")
              and r["status"] == "new"}
    assert wanted and len(wanted) < len(records)
    assert {b["id"] for b in receiver.bodies()} == wanted
    assert len(receiver.accepted) == len(wanted)
    assert second.accepted == []  # only source "other", which had nothing


def test_the_signature_and_secret_headers_verify_at_the_receiver(aws: AwsWorld) -> None:
    aws.add(3, first=0, base_time=hours_ago(0.8))
    with Receiver(signature_secret="hmac-key-123") as signed:
        token = aws.root.parent / f"{aws.root.name}-token"  # outside what alertpull writes
        token.write_text("bearer-s3cret\n")
        aws.write_config(notify=[webhook(signed, signature_secret="${HOOK_HMAC}",
                                         bearer_token={"file": str(token)},
                                         headers={"X-Tenant": "${HOOK_TENANT}"})])
        result = aws.fetch(HOOK_HMAC="hmac-key-123", HOOK_TENANT="acme")
        assert result.returncode == 0, result.stderr
        assert len(signed.accepted) == 3  # each signature checked by the receiver
        assert {r.headers["authorization"] for r in signed.accepted} == {"Bearer bearer-s3cret"}
        assert {r.headers["x-tenant"] for r in signed.accepted} == {"acme"}

        aws.add(1, first=9, base_time=hours_ago(0.05))
        wrong = aws.fetch(HOOK_HMAC="not-the-key", HOOK_TENANT="acme")
        assert wrong.returncode == 1
        assert "rejected the notification: 401" in wrong.stderr
        assert "configuration error" in wrong.stderr
        assert "hmac-key" not in aws.written_text() + wrong.stderr
        assert "bearer-s3cret" not in aws.written_text() + wrong.stderr
        assert len(signed.accepted) == 3
        assert aws.fetch(HOOK_HMAC="hmac-key-123", HOOK_TENANT="acme").returncode == 0
        assert len(signed.accepted) == 4  # the rejected one was kept, not skipped


@pytest.mark.parametrize("point", ["after_publish", "after_commit"])
def test_a_crash_between_publish_and_notify_is_notified_on_the_rerun(
        aws: AwsWorld, receiver: Receiver, point: str) -> None:
    aws.add(5, first=0, base_time=hours_ago(0.8))
    aws.write_config(notify=[webhook(receiver)])
    crashed = aws.fetch(ALERTPULL_FAILPOINT=point)
    assert crashed.returncode == -signal.SIGKILL
    assert receiver.accepted == [] and len(aws.records()) == 5
    aws.add(2, first=20, base_time=hours_ago(0.05))  # news between the crash and the rerun
    rerun = aws.fetch()
    assert rerun.returncode == 0, rerun.stderr
    assert delivered(receiver) == published(aws)  # the missed five and the new two, once
    assert set(delivered(receiver).values()) == {1} and len(receiver.accepted) == 7
    assert aws.fetch().returncode == 0 and len(receiver.accepted) == 7


def test_a_target_down_for_two_runs_gets_everything_when_back(
        aws: AwsWorld, receiver: Receiver, second: Receiver) -> None:
    aws.add(3, first=0, base_time=hours_ago(0.8))
    aws.write_config(notify=[webhook(receiver, name="siem", retries=0),
                             webhook(second, changes="all")])
    receiver.stop()  # connection refused
    for run in range(2):
        result = aws.fetch()
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
        assert errors == [f"{errors[0][:24]} ERROR   [aws] notify: notify target notify[0] "
                          "'siem' (webhook to 127.0.0.1) is unreachable (refused, dropped or "
                          "timed out), still after 0 retries"]
        assert "ok: 3 fetched" in result.stderr if run == 0 else True
        aws.add(2, first=10 + run * 2, base_time=hours_ago(0.3 - run * 0.1))
    # Ingestion went on and the other target was never held up.
    assert len(aws.records()) == 5
    assert delivered(second) == published(aws) and len(second.accepted) == 5
    receiver.start()
    back = aws.fetch()
    assert back.returncode == 0, back.stderr
    assert delivered(receiver) == published(aws) and len(aws.records()) == 7
    assert set(delivered(receiver).values()) == {1} and set(delivered(second).values()) == {1}


def test_a_5xx_is_retried_within_the_run(aws: AwsWorld, receiver: Receiver) -> None:
    aws.add(2, first=0, base_time=hours_ago(0.8))
    aws.write_config(notify=[webhook(receiver)])
    receiver.inject(on("POST"), Fault(response=Response(503)), times=1)
    result = aws.fetch()
    assert result.returncode == 0, result.stderr
    assert len(receiver.accepted) == 2 and len(receiver.requests) == 3


def test_a_4xx_is_a_configuration_error_and_keeps_the_position(aws: AwsWorld,
                                                               receiver: Receiver) -> None:
    aws.add(4, first=0, base_time=hours_ago(0.8))
    aws.write_config(notify=[webhook(receiver)])
    receiver.inject(on("POST"), Fault(response=Response(404, b"no_service")), times=1)
    failed = aws.fetch()
    assert failed.returncode == 1
    assert ("notify target notify[0] (webhook to 127.0.0.1) rejected the notification: "
            "404 Not Found (no_service); this is a configuration error: check notify[0] url "
            "and secrets") in failed.stderr
    assert "Traceback" not in failed.stderr
    assert receiver.accepted == [] and len(aws.records()) == 4
    assert aws.fetch().returncode == 0
    assert delivered(receiver) == published(aws)


def test_slack_messages_read_well_and_never_show_the_webhook_url(aws: AwsWorld,
                                                                 receiver: Receiver) -> None:
    aws.add(3, first=0, base_time=hours_ago(0.8))
    aws.findings()[0]["title"] = "Odd <b>title</b> & more"
    aws.findings()[1]["title"] = "&" * 5000  # Slack rejects a section over 3,000 characters
    aws.write_config(notify=[{"type": "slack", "url": "${SLACK_WEBHOOK}", "retries": 1}])
    env = {"SLACK_WEBHOOK": receiver.url + SLACK_PATH}
    assert aws.fetch(**env).returncode == 0
    assert {r.path for r in receiver.accepted} == {SLACK_PATH}
    by_title = {m["text"]: m for m in receiver.bodies()}
    records = {r["native_id"]: r for r in aws.records()}
    odd = records[aws.findings()[0]["arn"]]
    message = by_title[f"[{odd['severity'].upper()}] Odd <b>title</b> & more (aws)"]
    [block] = message["blocks"]
    assert block["type"] == "section" and block["text"]["type"] == "mrkdwn"
    assert block["text"]["text"].split("\n") == [
        f"{block['text']['text'].split(' ')[0]} *{odd['severity'].upper()}* "
        f"<{odd['link']}|Odd &lt;b&gt;title&lt;/b&gt; &amp; more>",
        f"*Source:* aws · *Tenant:* {odd['tenant']} · *Status:* new"]
    [long] = [m for m in receiver.bodies() if m["text"].startswith("[") and "&&&" in m["text"]]
    section = long["blocks"][0]["text"]["text"]
    assert len(section) <= 3000 and "&amp;" * 249 + "…" in section  # clipped, still escaped

    receiver.stop()
    aws.add(1, first=7, base_time=hours_ago(0.05))
    down = aws.fetch(**env)
    assert down.returncode == 1
    assert "notify target notify[0] (slack to 127.0.0.1) is unreachable" in down.stderr
    assert "s3cr3t" not in down.stderr + aws.written_text()
    verbose = aws.cli("-v", "fetch", "--all", **env)
    assert verbose.returncode == 1 and "s3cr3t" not in verbose.stderr


def test_slack_sends_one_summary_when_a_run_has_more_than_max_messages(
        aws: AwsWorld, receiver: Receiver) -> None:
    aws.add(12, first=0, base_time=hours_ago(0.8))
    aws.write_config(notify=[{"type": "slack", "url": receiver.url + SLACK_PATH,
                              "max_messages": 5, "retries": 1}])
    assert aws.fetch().returncode == 0
    [summary] = receiver.bodies()
    severities = Counter(r["severity"] for r in aws.records())
    text = summary["blocks"][0]["text"]["text"]
    assert text.startswith("*12 alerts* to notify in this run")
    for severity, count in severities.items():
        assert f"{count} {severity}" in text
    assert "*Sources:* aws 12." in text
    aws.add(2, first=30, base_time=hours_ago(0.05))
    assert aws.fetch().returncode == 0
    assert len(receiver.accepted) == 3  # two alerts, one message each


@pytest.mark.parametrize(("notify", "sink", "message"), [
    ([{"type": "pager"}], None, "notify[0].type: 'pager' is not one of webhook, slack"),
    ([{"type": "slack"}], None, "notify[0].url: required key is missing; add it"),
    ([{"type": "slack", "url": "hooks.slack.com/x"}], None,
     "notify[0].url: expected an http(s) URL with a host"),
    ([{"type": "webhook", "url": "http://h/x", "sources": ["nope"]}], None,
     "notify[0].sources: nope is not a configured source; configured: aws"),
    ([{"type": "webhook", "url": "http://h/x", "min_severity": "huge"}], None,
     "notify[0].min_severity: 'huge' is not one of informational, low, medium, high, critical"),
    ([{"type": "webhook", "url": "http://h/x", "changes": "some"}], None,
     "notify[0].changes: 'some' is not one of new, all"),
    ([{"type": "webhook", "url": "http://h/x"}], {"type": "stdout"},
     "notify: needs a sink it can read back (jsonl, s3 or gcs)"),
    ({"type": "webhook"}, None, "notify: expected a list of targets"),
])
def test_bad_notify_config_is_one_line_and_exit_2(aws: AwsWorld, notify: Any, sink: Any,
                                                  message: str) -> None:
    aws.write_config(notify=notify, **({"sink": sink} if sink else {}))
    result = aws.fetch()
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
