"""The pure rules of the non-VM sources (activities/source_checks.py): the VHD footer, the data-disk limit,
an existing definition's fit. The VHD bytes are the ones azsim writes (azsim/storage/vhd.py, vhdblobs.py)."""

from __future__ import annotations

import pytest

from activities.source_checks import data_disk_problem, definition_problems, vhd_problems
from azsim.storage.vhd import make_footer
from azsim.storage.vhdblobs import vhd_image
from shared.contracts import DefinitionFacts, DiskFacts, VmFacts

MIB = 1024 * 1024


def _check(data: bytes, blob_type: str = "PageBlob") -> list[str]:
    return vhd_problems("vhds/x.vhd", blob_type, len(data), data[-512:])


def test_a_fixed_whole_mib_vhd_passes() -> None:
    assert _check(vhd_image(2, seed=1)) == []


def test_a_dynamic_vhd_is_refused_with_the_fix() -> None:
    (problem,) = _check(vhd_image(2, seed=1, fmt="dynamic"))
    assert "blob vhds/x.vhd is a dynamic VHD (footer disk type 3)" in problem
    assert "qemu-img convert -O vpc -o subformat=fixed,force_size" in problem


def test_a_misaligned_vhd_is_refused_naming_its_size_and_the_next_one() -> None:
    data = vhd_image(2, seed=1, fmt="misaligned")
    (problem,) = _check(data)
    assert f"holds {len(data) - 512} bytes of disk data" in problem
    assert f"the next size is {3 * MIB + 512} bytes" in problem


def test_no_footer_a_block_blob_a_short_blob_a_damaged_and_a_truncated_one() -> None:
    raw = bytes(2 * MIB)
    assert "does not end with a VHD footer (cookie 'conectix'" in _check(raw)[0]
    assert "Disk blobs can only be of type page blob" in _check(vhd_image(2, seed=1), "BlockBlob")[0]
    assert "shorter than a VHD footer" in vhd_problems("vhds/x.vhd", "PageBlob", 100, bytes(100))[0]
    damaged = bytearray(vhd_image(1, seed=2))
    damaged[-512 + 20] ^= 0xFF  # a field changed, the checksum not
    assert any("checksum does not match" in p for p in _check(bytes(damaged)))
    # A footer that describes 2 MiB of data on a blob holding 1 MiB (a truncated upload).
    truncated = bytes(MIB) + make_footer(2 * MIB, seed=3)
    assert any("its VHD footer says 2097152 bytes" in p for p in _check(truncated))


@pytest.mark.parametrize(("size", "refused"), [(1024, False), (1025, True), (4095, True)])
def test_the_seeds_data_disk_limit(size: int, refused: bool) -> None:
    problem = data_disk_problem("the managed image img", 2, size)
    assert (problem is not None) == refused
    if problem:
        assert f"LUN 2 is {size} GiB" in problem and "1 TB" in problem


def _source(generation: str = "V2", os_type: str = "Linux") -> VmFacts:
    disk = DiskFacts(key="os", name="img", id="/img", size_gb=30)
    return VmFacts(
        id="/img",
        name="managed image img",
        resource_group="",
        subscription_id="",
        location="westeurope",
        os_type=os_type,  # type: ignore[arg-type]
        hyper_v_generation=generation,  # type: ignore[arg-type]
        security_type="Standard",
        architecture="x64",
        power_state="none",
        generalized=True,
        os_disk=disk,
    )


def _definition(**over: str | None) -> DefinitionFacts:
    facts: dict[str, str | None] = {"id": "/d", "location": "westeurope", "os_type": "Linux"}
    facts |= {
        "os_state": "Generalized",
        "hyper_v_generation": "V1",
        "security_type": None,
        "architecture": "x64",
    }
    facts.update(over)
    return DefinitionFacts.model_validate(facts)


def test_a_definition_of_another_generation_state_or_os_is_refused_with_advice() -> None:
    (gen,) = definition_problems(
        "galLegacy/legacy-web", _definition(), _source(), "Generalized", "managed image img"
    )
    assert gen.startswith("managed image img is Gen2 (V2) but definition galLegacy/legacy-web is V1")
    assert "choose another definition name" in gen
    found = definition_problems(
        "g/d",
        _definition(hyper_v_generation="V2", os_state="Specialized", os_type="Windows"),
        _source(),
        "Generalized",
        "managed image img",
    )
    assert len(found) == 2 and "managed images are always generalized" in found[1], found
    vhd = definition_problems(
        "g/d", _definition(hyper_v_generation="V2"), _source(), "Specialized", "VHD vhds/a.vhd"
    )
    assert vhd and "the source is Specialized (source.osState)" in vhd[0]
    launch = definition_problems(
        "g/d",
        _definition(hyper_v_generation="V2", security_type="TrustedLaunch"),
        _source(),
        "Generalized",
        "VHD v",
    )
    assert launch and "SecurityType TrustedLaunch" in launch[0]
    assert (
        definition_problems("g/d", _definition(hyper_v_generation="V2"), _source(), "Generalized", "VHD v")
        == []
    )
