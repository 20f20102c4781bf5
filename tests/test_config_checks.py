"""What a user can fix in the config or the environment is found while the config loads:
`alertpull check` and `fetch` exit 2 with one line naming the key and the fix, before any
call to a vendor and before anything is written. Run as cron runs the CLI: YAML + env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import clean_env, run_cli

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens: a call would fail with exit 1, not 2
KEY = {"type": "service_account", "project_id": "p", "private_key_id": "k",
       "client_email": "sa@p.iam.gserviceaccount.com", "token_uri": "https://oauth2.example/t"}


def write_config(root: Path, sources: dict[str, Any], **top: Any) -> Path:
    path = root / "alertpull.yaml"
    path.write_text(yaml.safe_dump({"state": {"backend": "local", "path": "state"},
                                    "sink": {"type": "jsonl", "path": "alerts"},
                                    "sources": sources, **top}))
    return path


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run failed on the config: exit 2, one line, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("alertpull: error: ")
    return lines[0].removeprefix("alertpull: error: ")


def scc(credentials_file: str, **more: Any) -> dict[str, Any]:
    return {"gcp-org": {"type": "scc", "parent": "organizations/123",
                        "credentials_file": credentials_file, "api_endpoint": UNREACHABLE,
                        **more}}


def key_path(root: Path, kind: str) -> str:
    """A credentials_file that is not a usable service-account key, one way or another."""
    path = root / "key.json"
    if kind == "directory":
        path.mkdir()
    elif kind == "not-json":
        path.write_text("-----BEGIN PRIVATE KEY-----\n")
    elif kind == "user-credentials":  # `gcloud auth application-default login` writes these
        path.write_text(json.dumps({"type": "authorized_user", "client_id": "c"}))
    elif kind == "unreadable":
        path.write_text(json.dumps(KEY))
        path.chmod(0)
    return str(path)


FIX = ("point it at the service account's JSON key (for workload identity federation, remove "
       "it and set GOOGLE_APPLICATION_CREDENTIALS)")


@pytest.mark.parametrize(("kind", "problem"), [
    ("missing", "{path} does not exist; " + FIX),
    ("directory", "{path} is a directory; " + FIX),
    ("not-json", "{path} is not JSON; " + FIX),
    ("user-credentials",
     "{path} is not a service_account key (its type is 'authorized_user'); " + FIX),
    pytest.param("unreadable", "cannot read {path}: Permission denied; fix the path or its "
                 "permissions", marks=pytest.mark.skipif(
                     os.geteuid() == 0, reason="root reads a file whatever its mode")),
])
@pytest.mark.parametrize("command", ["check", "fetch"])
def test_an_unusable_scc_key_file_is_named_before_any_call(tmp_path: Path, kind: str,
                                                           problem: str, command: str) -> None:
    path = key_path(tmp_path, kind)
    config = write_config(tmp_path, scc(path))
    result = run_cli("-c", str(config), command, *(["--all"] if command == "fetch" else []))
    line = one_error_line(result)
    assert line.startswith("sources.gcp-org.credentials_file: ")
    assert line.removeprefix("sources.gcp-org.credentials_file: ") == problem.format(path=path)
    assert not (tmp_path / "alerts").exists() and not (tmp_path / "state").exists()


def test_a_workspace_key_file_that_is_not_a_service_account_key_is_named(tmp_path: Path) -> None:
    path = key_path(tmp_path, "user-credentials")
    config = write_config(tmp_path, {"ws": {
        "type": "workspace_alertcenter", "credentials_file": path, "subject": "admin@example.com",
        "api_endpoint": UNREACHABLE}})
    assert one_error_line(run_cli("-c", str(config), "check")) == (
        f"sources.ws.credentials_file: {path} is not a service_account key (its type is "
        "'authorized_user'); point it at the JSON key of a service account with domain-wide "
        "delegation (Alert Center accepts no other credentials: user OAuth cannot be granted "
        "https://www.googleapis.com/auth/apps.alerts)")


def test_a_usable_key_file_passes_the_load_and_fails_only_at_the_unreachable_vendor(
        tmp_path: Path) -> None:
    """The checks do not reject what works: a real-shaped key reaches the network (exit 1)."""
    key = tmp_path / "key.json"
    key.write_text(json.dumps({**KEY, "private_key": "not-a-real-key"}))
    result = run_cli("-c", str(write_config(tmp_path, scc(str(key)))), "check")
    assert result.returncode == 1, result.stderr
    assert "gcp-org: FAILED" in result.stdout


GRAPH = {"type": "entra_id", "tenant_id": "t", "client_id": "c", "client_secret": "s"}


@pytest.mark.parametrize(("source", "line"), [
    ({"type": "kandji", "base_url": "https://acme.api.kandji.io?x=1", "api_token": "t"},
     "sources.bad.base_url: 'https://acme.api.kandji.io?x=1' is not a Kandji API URL (it has a "
     "query or fragment); use https://SUBDOMAIN.api.kandji.io (EU: "
     "https://SUBDOMAIN.api.eu.kandji.io), as Settings > Access shows it"),
    ({"type": "guardduty", "endpoint_url": "localhost:4566"},
     "sources.bad.endpoint_url: 'localhost:4566' is not an endpoint URL (it has no http:// or "
     "https://); use http(s)://host[:port] of the service's endpoint"),
    ({"type": "securityhub", "endpoint_url": "https://securityhub.example:99999"},
     "sources.bad.endpoint_url: 'https://securityhub.example:99999' is not an endpoint URL (it "
     "has a port that is not a number from 1 to 65535); use http(s)://host[:port] of the "
     "service's endpoint"),
    ({"type": "scc", "parent": "organizations/1", "api_endpoint": "https://scc.example/v2"},
     "sources.bad.api_endpoint: 'https://scc.example/v2' is not an SCC endpoint (it has a "
     "path); use host[:port] or https://host[:port], e.g. securitycenter.googleapis.com"),
    ({**GRAPH, "graph_endpoint": "https://user:pw@graph.example"},
     "sources.bad.graph_endpoint: 'https://user:pw@graph.example' is not a Graph or sign-in "
     "host URL (it has user:password@ in it); use https://host[:port], without a path"),
    ({"type": "suricata", "s3_uri": "s3://b/p/", "endpoint_url": "minio"},
     "sources.bad.endpoint_url: 'minio' is not an endpoint URL (it has no http:// or "
     "https://); use http(s)://host[:port] of an S3-compatible endpoint"),
    # Contradictory keys: one would be silently ignored.
    ({"type": "guardduty", "external_id": "x"},
     "sources.bad.external_id: used only to assume role_arn; set role_arn or remove "
     "external_id"),
    ({"type": "scc", "parent": "organizations/1", "iam_endpoint": "https://iam.example"},
     "sources.bad.iam_endpoint: used only with impersonate_service_account; set that or "
     "remove it"),
    ({**GRAPH, "certificate_thumbprint": "A" * 40},
     "sources.bad.certificate_thumbprint: used only with certificate_file; remove it, or set "
     "certificate_file instead of client_secret"),
    ({"type": "suricata", "path": "/var/log/suricata/eve.json", "region": "us-east-1"},
     "sources.bad.region: used only with s3_uri; remove it when reading files from path"),
    ({"type": "securityhub", "api": "cspm", "organization_units": ["ou-ab12-cd345678"]},
     "sources.bad.organization_units: only api v2 scopes a pull to an organization; with api "
     "cspm an administrator account pulls all it sees. Remove it or set api: v2"),
    ({"type": "scc", "parent": "org/1"},
     "sources.bad.parent: parent 'org/1' is not organizations/ID, folders/ID or projects/ID; "
     "fix 'parent'"),
], ids=["kandji-query", "aws-no-scheme", "aws-port", "scc-path", "graph-userinfo",
        "suricata-endpoint", "external-id-alone", "iam-endpoint-alone", "thumbprint-with-secret",
        "suricata-region-with-path", "cspm-organization-units", "scc-parent"])
def test_config_errors_are_one_line_at_load_time(tmp_path: Path, source: dict[str, Any],
                                                 line: str) -> None:
    config = write_config(tmp_path, {"bad": source})
    assert one_error_line(run_cli("-c", str(config), "check")) == line
    assert one_error_line(run_cli("-c", str(config), "fetch", "--all")) == line


# -- optional SDKs -----------------------------------------------------------------------------

# Runs the CLI as installed, in a Python where `module` cannot be imported: sys.modules[name]
# = None is what the import system itself treats as "not importable" (find_spec says None,
# import raises ModuleNotFoundError), as in an install without the extra.
WITHOUT = ("import sys\nfor name in sys.argv.pop(1).split(','): sys.modules[name] = None\n"
           "sys.argv[0] = 'alertpull'\nfrom alertpull.cli import main\nmain()\n")


def run_without(modules: str, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT, modules, *args],
                          env=env or clean_env(), capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize(("modules", "sources", "top", "line"), [
    ("boto3", {"aws-prod": {"type": "guardduty", "endpoint_url": UNREACHABLE}}, {},
     "source aws-prod (guardduty) needs boto3: pip install 'alertpull[aws]'"),
    ("boto3", {"hub": {"type": "securityhub"}}, {},
     "source hub (securityhub) needs boto3: pip install 'alertpull[aws]'"),
    ("msal", {"entra": GRAPH}, {},
     "source entra (entra_id) needs msal: pip install 'alertpull[microsoft]'"),
    ("msal", {"mdm": {**GRAPH, "type": "intune"}}, {},
     "source mdm (intune) needs msal: pip install 'alertpull[microsoft]'"),
    ("google.api_core", {"gcp-org": {"type": "scc", "parent": "organizations/1"}}, {},
     "source gcp-org (scc) needs google.api_core: pip install 'alertpull[gcp]'"),
    ("googleapiclient", {"ws": {"type": "workspace_alertcenter", "credentials_file": "k.json",
                                "subject": "admin@example.com"}}, {},
     "source ws (workspace_alertcenter) needs googleapiclient: pip install "
     "'alertpull[workspace]'"),
    ("boto3", {"sensors": {"type": "suricata", "s3_uri": "s3://b/p/"}}, {},
     "sources.sensors.s3_uri needs boto3: pip install 'alertpull[aws]'"),
    ("boto3,botocore", {"k": {"type": "kandji", "base_url": "https://a.api.kandji.io",
                              "api_token": "t"}}, {"sink": {"type": "s3", "bucket": "b"}},
     "sink (s3) needs boto3: pip install 'alertpull[aws]'"),
    ("boto3", {"k": {"type": "kandji", "base_url": "https://a.api.kandji.io",
                     "api_token": "t"}}, {"state": {"backend": "s3", "bucket": "b"}},
     "state (s3) needs boto3: pip install 'alertpull[aws]'"),
], ids=["guardduty", "securityhub", "entra_id", "intune", "scc", "workspace", "suricata-s3",
        "s3-sink", "s3-state"])
def test_a_missing_optional_sdk_names_the_extra_to_install(
        tmp_path: Path, modules: str, sources: dict[str, Any], top: dict[str, Any],
        line: str) -> None:
    config = write_config(tmp_path, sources, **top)
    for command in (["check"], ["fetch", "--all"]):
        result = run_without(modules, "-c", str(config), *command)
        assert one_error_line(result) == line
        assert "ModuleNotFoundError" not in result.stderr


def test_a_source_whose_sdk_is_installed_is_not_held_up_by_another_types_missing_sdk(
        tmp_path: Path) -> None:
    """Only the SDKs of the configured types are needed: no boto3 is fine for Kandji."""
    config = write_config(tmp_path, {"k": {"type": "kandji", "base_url": UNREACHABLE,
                                           "api_token": "t", "max_retries": 0}})
    result = run_without("boto3,botocore,msal", "-c", str(config), "check")
    assert result.returncode == 1, result.stderr  # it got as far as the (unreachable) vendor
    assert "k: FAILED" in result.stdout


# -- CA bundles --------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE",
                                      "SSL_CERT_FILE"])
def test_a_ca_bundle_variable_naming_no_file_is_named_at_start(tmp_path: Path,
                                                               variable: str) -> None:
    config = write_config(tmp_path, {"k": {"type": "kandji", "base_url": UNREACHABLE,
                                           "api_token": "t"}})
    missing = str(tmp_path / "corp-ca.pem")
    for command in (["check"], ["fetch", "--all"]):
        result = run_cli("-c", str(config), *command, env=clean_env(**{variable: missing}))
        assert one_error_line(result) == (
            f"environment variable {variable} names {missing}, which does not exist; point it "
            "at a PEM CA bundle or unset it")
    assert not (tmp_path / "alerts").exists()


# -- Application Default Credentials -----------------------------------------------------------


def test_adc_naming_a_missing_file_is_named_at_load_time(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"gcp-org": {"type": "scc", "parent": "organizations/1",
                                                 "api_endpoint": UNREACHABLE}})
    missing = str(tmp_path / "wif.json")
    result = run_cli("-c", str(config), "check",
                     env=clean_env(GOOGLE_APPLICATION_CREDENTIALS=missing))
    assert one_error_line(result) == (
        f"sources.gcp-org: GOOGLE_APPLICATION_CREDENTIALS: {missing} does not exist; point it "
        "at a service-account key or a workload identity federation (external_account) "
        "config, or unset it")


def test_adc_accepts_a_workload_identity_federation_config(tmp_path: Path) -> None:
    """An external_account config is what ADC takes for WIF: it passes the load."""
    wif = tmp_path / "wif.json"
    wif.write_text(json.dumps({
        "type": "external_account", "audience": "//iam.googleapis.com/projects/1/locations/"
        "global/workloadIdentityPools/p/providers/q", "subject_token_type":
        "urn:ietf:params:oauth:token-type:jwt", "token_url": f"{UNREACHABLE}/token",
        "credential_source": {"file": str(tmp_path / "token")}}))
    config = write_config(tmp_path, {"gcp-org": {"type": "scc", "parent": "organizations/1",
                                                 "api_endpoint": UNREACHABLE}})
    result = run_cli("-c", str(config), "check",
                     env=clean_env(GOOGLE_APPLICATION_CREDENTIALS=str(wif)))
    assert result.returncode == 1, result.stderr  # loaded; the token exchange is unreachable
    assert "gcp-org: FAILED" in result.stdout


def test_loading_a_config_of_every_source_type_imports_no_vendor_sdk(tmp_path: Path) -> None:
    """The SDK checks look for the modules without importing them (nor `google` itself)."""
    key = tmp_path / "key.json"
    key.write_text(json.dumps(KEY))
    config = write_config(tmp_path, {
        "aws": {"type": "guardduty"}, "hub": {"type": "securityhub"},
        "gcp": {"type": "scc", "parent": "organizations/1", "credentials_file": str(key)},
        "ws": {"type": "workspace_alertcenter", "credentials_file": str(key),
               "subject": "admin@example.com"},
        "entra": GRAPH, "mdm": {**GRAPH, "type": "intune"},
        "k": {"type": "kandji", "base_url": "https://a.api.kandji.io", "api_token": "t"},
        "sensors": {"type": "suricata", "s3_uri": "s3://b/p/"},
    }, sink={"type": "s3", "bucket": "b"})
    probe = ("import sys\nfrom alertpull.cli import main\n"
             f"sys.argv = ['alertpull', '-c', {str(config)!r}, 'sources']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('SDK', sorted({m.split('.')[0] for m in sys.modules} & {'boto3', "
             "'botocore', 'google', 'msal', 'googleapiclient', 'httplib2'}))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=clean_env(), check=True)
    assert "scc" in result.stdout  # the config loaded
    assert result.stdout.strip().splitlines()[-1] == "SDK []"
