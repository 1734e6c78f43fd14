"""The Marketplace hand-off's pure rules: the VHD file rules, the request part, the settings (no stack)."""

from __future__ import annotations

from typing import Any

import pytest

from azsim.storage.vhd import FOOTER_SIZE, MIB
from azsim.storage.vhdblobs import vhd_image
from shared.marketplace_spec import SAS_DEFAULT_DAYS, MarketplaceSpec, marketplace_errors
from shared.request_rules import INTAKE
from shared.settings import MarketplaceSettings
from shared.vhd_rules import footer_problems, size_problems
from tests.support.leaks import known_secrets_in, sas_values, secrets_in


def _rules(image: bytes, blob_type: str = "PageBlob") -> tuple[int | None, list[str]]:
    return footer_problems(blob_type, len(image), image[-FOOTER_SIZE:])


def test_a_fixed_aligned_page_blob_passes() -> None:
    assert _rules(vhd_image(2, seed=1)) == (2 * MIB, [])


def test_each_broken_rule_names_itself_and_its_fix() -> None:
    size, problems = _rules(vhd_image(1, seed=2, fmt="misaligned"))
    assert size == MIB + 4096
    assert (
        len(problems) == 1
        and problems[0].startswith("1 MiB alignment:")
        and "resize the image to 2 MiB" in problems[0]
    )
    _, problems = _rules(vhd_image(1, seed=3, fmt="dynamic"))
    assert [p.split(":")[0] for p in problems] == ["fixed VHD"] and "Convert-VHD -VHDType Fixed" in problems[
        0
    ]
    _, problems = _rules(vhd_image(1, seed=4), blob_type="BlockBlob")
    assert problems[0].startswith("page blob: it is a BlockBlob")
    raw = bytearray(vhd_image(1, seed=5))
    raw[-FOOTER_SIZE] ^= 0xFF  # the cookie
    size, problems = _rules(bytes(raw))
    assert size is None and len(problems) == 1 and "no VHD footer" in problems[0]
    raw = bytearray(vhd_image(1, seed=6))
    raw[-FOOTER_SIZE + 100] ^= 0x01  # a reserved byte: only the checksum notices
    assert _rules(bytes(raw))[1] == ["VHD footer: its checksum does not match; export the disk again"]


@pytest.mark.parametrize(
    ("os_disk", "os_type", "size_gb", "broken"),
    [
        (True, "Linux", 30, False),
        (True, "Linux", 1023, False),
        (True, "Linux", 29, True),
        (True, "Linux", 1024, True),
        (True, "Windows", 250, False),
        (True, "Windows", 251, True),
        (False, None, 1023, False),
        (False, None, 1024, True),
    ],
)
def test_the_size_range(os_disk: bool, os_type: str | None, size_gb: int, broken: bool) -> None:
    assert bool(size_problems(os_disk, os_type, size_gb)) is broken


def _spec(data: dict[str, Any]) -> MarketplaceSpec:
    return MarketplaceSpec.model_validate(data, context=INTAKE)


def test_the_request_part() -> None:
    spec = _spec({"route": "gallery", "partnerCenterPrincipals": ["0B3AB7A8-7A3C-4F62-9C3E-5D1A6E0F5C11"]})
    assert spec.partner_center_principals == ["0b3ab7a8-7a3c-4f62-9c3e-5d1a6e0f5c11"]
    assert _spec({"route": "vhd"}).days == SAS_DEFAULT_DAYS
    for bad in ({"route": "vhd", "sasValidDays": 8}, {"route": "vhd", "sasValidDays": "7"}, {"route": "x"}):
        with pytest.raises(ValueError):
            _spec(bad)
    twice = ["0b3ab7a8-7a3c-4f62-9c3e-5d1a6e0f5c11"] * 2
    with pytest.raises(ValueError, match="once"):
        _spec({"route": "gallery", "partnerCenterPrincipals": twice})
    # Between fields: the vhd route needs the export; gallery-only and vhd-only fields stay on their route.
    assert [e.field for e in marketplace_errors({"marketplace": {"route": "vhd"}})] == ["marketplace.route"]
    assert marketplace_errors({"marketplace": {"route": "vhd"}, "vhdExport": {"container": "c"}}) == []
    fields = {"route": "vhd", "publisherTenantId": "x"}
    assert [e.field for e in marketplace_errors({"marketplace": fields, "vhdExport": {}})][-1].endswith(
        "publisherTenantId"
    )


def test_the_settings() -> None:
    s = MarketplaceSettings.from_env(
        {
            "MARKETPLACE_PUBLISHER_TENANT_ID": "A6A0EE7D-3927-5A58-9445-353D52BA4CA1",
            "MARKETPLACE_PARTNER_CENTER_PRINCIPALS": "0b3ab7a8-7a3c-4f62-9c3e-5d1a6e0f5c11, "
            "5e2c1d07-4b8f-4a0e-8f57-2b6a7b1c9d22,0b3ab7a8-7a3c-4f62-9c3e-5d1a6e0f5c11",
        }
    )
    assert s.publisher_tenant_id == "a6a0ee7d-3927-5a58-9445-353d52ba4ca1"
    assert len(s.partner_center_principals) == 2
    assert MarketplaceSettings.from_env({}) == MarketplaceSettings()
    with pytest.raises(ValueError, match="MARKETPLACE_PARTNER_CENTER_PRINCIPALS"):
        MarketplaceSettings.from_env({"MARKETPLACE_PARTNER_CENTER_PRINCIPALS": "Compute Image Registry"})


def test_sas_values_finds_the_signature_raw_and_encoded() -> None:
    signature = "ab" * 10 + "+/="
    values = sas_values(f"https://a/c?sv=1&sr=c&sig={signature.replace('+', '%2B').replace('/', '%2F')}")
    assert signature in values and "%2B" in values[1]


def test_the_secret_scan_finds_an_issued_signature_verbatim(tmp_path: Any) -> None:
    signature = "Zm9vYmFyYmF6cXV4" + "%2B" + "c2Fz"
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "history.json").write_text(f'{{"note": "{signature}"}}')
    (tmp_path / "clean.log").write_text("nothing here")
    assert secrets_in(tmp_path, [], [signature]) == [str(tmp_path / "store" / "history.json")]
    assert secrets_in(tmp_path, [f"status {signature}"], []) == []  # not SAS-shaped without ?sig=
    assert secrets_in(tmp_path, [f"status {signature}"], [signature])[-1].startswith("status")
    assert known_secrets_in(tmp_path, [signature]) == [str(tmp_path / "store" / "history.json")]
