"""The client without the app: usage errors, the request it builds, and the origin rule.

The origin rule is proven by nothing arriving: a local fake API (127.0.0.1) hands back a
``captureStatusUri`` or a redirect to another origin, a tripwire listens there, and it must see no
connection, while the fake API itself saw the key.
"""

from __future__ import annotations

import argparse
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from imagepipeline.api import ApiError, CaptureApi, UsageError, origin_of
from imagepipeline.auth import EntraAuth
from imagepipeline.cli import main, parser
from imagepipeline.models import EXIT_API, EXIT_USAGE
from imagepipeline.request_flags import build_request
from tests.client.cli_support import json_out, run_cli
from tests.support.tripwire import Listener

KEY = "test-function-key-0123456789abcdef"


class FakeApi:
    """A local stand-in of the capture API: each path answers what the test set, and every request is kept."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], Any] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                fake.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                got = fake.answers.get((self.command, self.path), (404, {}, {"error": {}}))
                if isinstance(got, list):  # answered in turn, the last one from then on
                    got = got.pop(0) if len(got) > 1 else got[0]
                status, headers, body = got
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    api = FakeApi()
    try:
        yield api
    finally:
        api.server.shutdown()
        api.server.server_close()


@pytest.fixture
def tripwire() -> Iterator[Listener]:
    listener = Listener()
    try:
        yield listener
    finally:
        listener.close()


def _started(status_uri: str) -> dict[str, Any]:
    return {
        "id": "capture-vm-x-0a1b2c3d4e",
        "runId": "capture-vm-x-0a1b2c3d4e-20260101000000",
        "captureStatusUri": status_uri,
        "cancelPostUri": f"{status_uri}/cancel",
    }


def test_a_foreign_capture_status_uri_is_refused_and_nothing_is_sent_there(
    fake: FakeApi, tripwire: Listener
) -> None:
    foreign = f"http://127.0.0.1:{tripwire.port}/api/captures/capture-vm-x-0a1b2c3d4e"
    fake.answers[("POST", "/api/captures")] = (202, {}, _started(foreign))
    proc = run_cli("capture", "--vm", "/x", "--watch", "--url", fake.url, env={"IMAGEPIPELINE_KEY": KEY})
    assert proc.returncode == EXIT_API, proc
    assert "Refusing to follow the captureStatusUri" in proc.stderr
    assert f"127.0.0.1:{tripwire.port}" in proc.stderr and fake.url in proc.stderr
    assert tripwire.connections() == 0
    # The key went to the URL the user gave, and is printed nowhere.
    assert [(m, p) for m, p, _ in fake.seen] == [("POST", "/api/captures")]
    assert fake.seen[0][2]["x-functions-key"] == KEY
    assert KEY not in proc.stdout + proc.stderr


def test_another_scheme_or_port_on_the_same_host_is_another_origin(fake: FakeApi, tripwire: Listener) -> None:
    api = CaptureApi(fake.url, lambda: {"x-functions-key": KEY})
    port = fake.url.rsplit(":", 1)[1]
    for uri in (
        f"https://127.0.0.1:{port}/api/captures/capture-a-1",
        f"http://localhost:{port}/api/captures/capture-a-1",
        f"http://127.0.0.1:{tripwire.port}/api/captures/capture-a-1",
    ):
        with pytest.raises(ApiError, match="Refusing"):
            api.status(uri)
    assert api.status(f"{fake.url}/api/captures/capture-a-1").status == 404  # the same origin is followed
    assert tripwire.connections() == 0


def test_a_redirect_is_not_followed_with_the_key(fake: FakeApi, tripwire: Listener) -> None:
    mine = f"{fake.url}/api/captures/capture-vm-x-0a1b2c3d4e"
    fake.answers[("GET", "/api/captures/capture-vm-x-0a1b2c3d4e")] = (
        302,
        {"Location": f"http://127.0.0.1:{tripwire.port}/steal"},
        {},
    )
    proc = run_cli("watch", mine, "--json", "--url", fake.url, "--key", KEY)
    assert proc.returncode == EXIT_API, proc
    assert json_out(proc)["error"]["exitCode"] == EXIT_API
    assert tripwire.connections() == 0
    assert KEY not in proc.stdout + proc.stderr


def test_entra_token_is_sent_as_bearer_only_to_the_base_url(fake: FakeApi) -> None:
    class Token:
        token, expires_on = "eyJ-test-token", 4102444800

    class Credential:
        calls = 0

        def get_token(self, scope: str) -> Token:
            Credential.calls += 1
            assert scope == "api://pipeline/.default"
            return Token()

    fake.answers[("GET", "/api/captures")] = (200, {}, {"captures": []})
    api = CaptureApi(fake.url, EntraAuth("api://pipeline/.default", Credential()))
    assert api.list().body == {"captures": []}
    assert api.list().status == 200
    assert [h.get("authorization") for _, _, h in fake.seen] == ["Bearer eyJ-test-token"] * 2
    assert Credential.calls == 1  # the token is reused until it is about to expire


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["watch"],
        ["capture", "--region", "westeurope:two", "--url", "http://127.0.0.1:9"],
        ["status", "capture-a-1", "--url", "http://app.example"],
        ["status", "capture-a-1", "--url", "ftp://127.0.0.1"],
        ["status", "capture-a-1"],
        ["status", "../../admin", "--url", "http://127.0.0.1:9"],
        ["capture", "--file", "/nonexistent.json", "--url", "http://127.0.0.1:9"],
        ["status", "capture-a-1", "--url", "https://u:p@app.example", "--json"],
        ["list", "--url", "http://127.0.0.1:9", "--key", "a", "--entra-scope", "api://x/.default"],
    ],
)
def test_usage_errors_exit_3_before_anything_is_sent(args: list[str]) -> None:
    proc = run_cli(*args)
    assert proc.returncode == EXIT_USAGE, proc
    assert proc.stderr.strip()  # says why
    if "--json" in args:
        assert json_out(proc)["error"]["exitCode"] == EXIT_USAGE


def test_origin_rule_at_intake() -> None:
    assert origin_of("https://App.azurewebsites.net/api") == ("https", "app.azurewebsites.net", 443)
    assert origin_of("http://localhost:7071") == ("http", "localhost", 7071)
    assert origin_of("http://[::1]:7071") == ("http", "::1", 7071)
    for bad in ("http://app.example:7071", "http://app.azurewebsites.net", "file:///etc/passwd", "https://"):
        with pytest.raises(UsageError):
            origin_of(bad)


def test_flags_become_the_request_over_the_file(tmp_path: Any) -> None:
    path = tmp_path / "req.json"
    path.write_text(
        json.dumps({"sourceVmId": "/old", "gallery": {"createIfMissing": True}, "tags": {"a": "1"}})
    )
    args = parser().parse_args(
        [
            "capture",
            "--file",
            str(path),
            "--vm",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
            "--gallery",
            "rg-images/galContoso",
            "--definition",
            "web",
            "--region",
            "westeurope:2:Standard_ZRS",
            "--region",
            "eastus2",
            "--prepare",
            "none",
            "--export-account",
            "https://st.blob.core.windows.net",
            "--export-container",
            "vhds",
            "--keep-snapshots",
            "--tag",
            "ci-run=42",
        ]
    )
    assert isinstance(args, argparse.Namespace)
    assert build_request(args) == {
        "sourceVmId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
        "gallery": {"createIfMissing": True, "resourceGroup": "rg-images", "name": "galContoso"},
        "imageDefinition": {"name": "web"},
        "targetRegions": [
            {"name": "westeurope", "replicaCount": 2, "storageAccountType": "Standard_ZRS"},
            {"name": "eastus2"},
        ],
        "prepare": "none",
        "vhdExport": {"accountUrl": "https://st.blob.core.windows.net", "container": "vhds"},
        "deleteSnapshots": False,
        "tags": {"a": "1", "ci-run": "42"},
    }


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_watch_on_a_terminal_draws_bars_per_region_and_disk(fake: FakeApi) -> None:
    path = "/api/captures/capture-vm-x-0a1b2c3d4e"
    fake.answers[("GET", path)] = (
        200,
        {},
        {
            "id": "capture-vm-x-0a1b2c3d4e",
            "runtimeStatus": "Completed",
            "stage": "done",
            "stages": [{"name": "publish", "state": "succeeded", "seconds": 12.0}],
            "regions": [{"region": "westeurope", "state": "Completed", "progress": 100}],
            "disks": [
                {
                    "key": "os",
                    "name": "vm-x_OsDisk",
                    "copyState": "success",
                    "bytesCopied": 2,
                    "bytesTotal": 2,
                }
            ],
            "result": {"imageVersionId": "/subscriptions/s/versions/1.0.0"},
        },
    )
    out = Terminal()
    code = main(["watch", "capture-vm-x-0a1b2c3d4e", "--url", fake.url, "--interval", "0.1"], out=out)
    assert code == 0
    text = out.getvalue()
    assert "\x1b[" in text  # a terminal gets rich's live view, not the plain lines
    for expected in ("capture-vm-x-0a1b2c3d4e", "region westeurope", "disk os", "success 100.0%", "1.0.0"):
        assert expected in text, text


def test_watch_rides_out_a_restarting_app(fake: FakeApi) -> None:
    path = "/api/captures/capture-vm-x-0a1b2c3d4e"
    done = {"id": "capture-vm-x-0a1b2c3d4e", "runtimeStatus": "Failed", "error": {"code": "PreflightFailed"}}
    fake.answers[("GET", path)] = [(503, {}, "restarting"), (502, {}, {}), (200, {}, done)]
    proc = run_cli("watch", "capture-vm-x-0a1b2c3d4e", "--url", fake.url, "--interval", "0.1")
    assert proc.returncode == 1, proc  # the outcome, read after two transient answers
    assert proc.stderr.count("trying again") == 2
    assert "Failed: PreflightFailed" in proc.stdout
    fake.answers[("GET", path)] = (401, {}, {"error": {"code": "Unauthorized", "message": "no key"}})
    proc = run_cli("watch", "capture-vm-x-0a1b2c3d4e", "--url", fake.url, "--interval", "0.1")
    assert proc.returncode == 4 and "trying again" not in proc.stderr and "--key" in proc.stderr
