"""infra/ offline: every Bicep file parses (pycep-parser) and checkov finds no failed check, each skip
with its reason in the Bicep. No Bicep compiler and no Azure: nothing here proves a deployment works."""

import shutil
from pathlib import Path

from tests.infra.infra_support import INFRA, bicep_files, checkov_scan, parse_bicep

EXPECTED_FILES = {
    "main.bicep",
    "app/core.bicep",
    "app/events.bicep",
    "app/group-roles.bicep",
    "app/account-roles.bicep",
    "app/network.bicep",
}


def test_every_bicep_file_parses() -> None:
    files = bicep_files()
    assert {str(p.relative_to(INFRA)) for p in files} >= EXPECTED_FILES
    parsed = parse_bicep(files)
    errors = {str(p): r["error"] for p, r in parsed.items() if "error" in r}
    assert not errors
    main = parsed[INFRA / "main.bicep"]["tree"]
    assert main["globals"]["scope"]["value"] == "subscription"
    assert {"core", "sourceRoles", "deallocationEvents"} <= set(main["modules"])


def test_a_broken_bicep_file_is_reported(tmp_path: Path) -> None:
    good = (INFRA / "app" / "group-roles.bicep").read_text(encoding="utf-8")
    broken = tmp_path / "broken.bicep"
    broken.write_text(good.replace("properties: {", "properties: {{", 1), encoding="utf-8")
    parsed = parse_bicep([broken])
    assert "error" in parsed[broken]


def test_checkov_finds_no_failed_check_and_every_skip_has_a_reason() -> None:
    report = checkov_scan(INFRA)
    summary = report["summary"]
    assert summary["parsing_errors"] == 0 and summary["resource_count"] >= 20, summary
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and summary["failed"] == 0
    assert summary["passed"] >= 20
    for check in report["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason.strip()) >= 20, (
            f"{check['check_id']} on {check['resource']} is skipped without a reason"
        )


def test_checkov_fails_when_a_justified_skip_is_removed(tmp_path: Path) -> None:
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy)
    core = copy / "app" / "core.bicep"
    lines = core.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if "checkov:skip=CKV_AZURE_35:" not in line]
    assert len(kept) == len(lines) - 1
    core.write_text("".join(kept), encoding="utf-8")
    report = checkov_scan(copy)
    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert failed == {"CKV_AZURE_35"}
