"""`make venv-gpu`'s default TensorRT extra fits the torch that the Makefile pins.

torch's CUDA builds require cuda-bindings of their CUDA major, and each TensorRT extra of
setup.cfg pins cuda-python (which pulls cuda-bindings of the same version line) to one CUDA
major. An extra whose cuda-python range misses torch's cuda-bindings range cannot be installed
beside that torch: pip either fails or replaces the pinned torch.
"""

from __future__ import annotations

import configparser
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
EXTRAS = ("tensorrt", "tensorrt-cu13")


def extra_requirement(extra: str, name: str) -> Requirement:
    """The requirement on ``name`` in setup.cfg's ``extra``."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options.extras_require"][extra].splitlines()
    found = [Requirement(line) for line in lines if line.strip()]
    (requirement,) = [r for r in found if r.name == name]
    return requirement


def makefile_default(variable: str) -> str:
    text = (REPO / "Makefile").read_text()
    match = re.search(rf"^{variable} \?= *(\S+)$", text, re.MULTILINE)
    assert match, f"Makefile: no `{variable} ?= ...` line"
    return match.group(1)


def pinned_version(name: str) -> Version | None:
    """The ``name==VERSION`` pin in the Makefile's default constraints file, if any."""
    constraints = REPO / makefile_default("CONSTRAINTS")
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            if requirement.name == name:
                (spec,) = requirement.specifier
                return Version(spec.version)
    return None


def torch_cuda_bindings() -> SpecifierSet | None:
    """The installed torch's cuda-bindings requirement on this platform, or None."""
    for line in metadata.requires("torch") or []:
        requirement = Requirement(line)
        if requirement.name != "cuda-bindings":
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            return requirement.specifier
    return None


def overlaps(a: SpecifierSet, b: SpecifierSet) -> bool:
    """Whether one version satisfies both sets: for ranges, one of the lower bounds (or a
    release just above an exclusive one, 12.9 -> 12.9.0.0.0.0.1) does whenever they overlap."""
    candidates = [Version("0")]
    for spec in [*a, *b]:
        version = Version(spec.version.removesuffix(".*"))
        candidates += [version, Version(f"{version.public}.0.0.0.0.1")]
    return any(
        a.contains(v, prereleases=True) and b.contains(v, prereleases=True) for v in candidates
    )


def test_overlaps_tells_ranges_apart() -> None:
    assert overlaps(SpecifierSet(">=13.0,<14"), SpecifierSet(">=13.0.3,<14"))
    assert not overlaps(SpecifierSet(">=12.6.1,<13"), SpecifierSet(">=13.0.3,<14"))
    assert overlaps(SpecifierSet(">12.9"), SpecifierSet("<12.9.1"))
    assert not overlaps(SpecifierSet("==12.9.*"), SpecifierSet(">=13"))


def test_the_default_tensorrt_extra_fits_the_pinned_torch() -> None:
    try:
        installed = Version(metadata.version("torch"))
    except metadata.PackageNotFoundError:
        pytest.skip("torch is not installed")
    pinned = pinned_version("torch")
    if pinned is None or Version(installed.public) != pinned:
        pytest.skip(f"torch {installed} is not the pinned {pinned}: the default is for that one")
    wanted = torch_cuda_bindings()
    if wanted is None:
        pytest.skip(f"torch {installed} declares no cuda-bindings requirement on this platform")
    fits = {
        extra: overlaps(extra_requirement(extra, "cuda-python").specifier, wanted)
        for extra in EXTRAS
    }
    default = makefile_default("TRT_EXTRA")
    # The default fits and the other pair does not: the check tells the two apart.
    assert {extra for extra, ok in fits.items() if ok} == {default}, (
        f"torch {installed} requires cuda-bindings{wanted}; cuda-python of each extra fits: "
        f"{fits}; Makefile TRT_EXTRA ?= {default}"
    )


def test_venv_gpu_installs_under_the_constraints() -> None:
    text = (REPO / "Makefile").read_text()
    recipe = text.split("\nvenv-gpu:", 1)[1].split("\n\n", 1)[0]
    assert "$(if $(CONSTRAINTS),-c $(CONSTRAINTS))" in recipe
    assert ".[gpu,$(TRT_EXTRA)]" in recipe
