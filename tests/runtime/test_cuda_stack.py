"""The CUDA stack check: its rules on hand-built fact sets, its probes and CLI on this machine.

The rules are a pure function of the facts, so the fact sets below are the ones real machines
have (a CUDA 12 driver with the CUDA 13 TensorRT that an unpinned install picks, ...). The
probes and the command run for real; this project's CPU machines have no NVIDIA driver, which
they must report instead of crashing.
"""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from sketchsearch.runtime.cuda_probe import (
    ContextFacts,
    DriverFacts,
    probe_distributions,
    probe_driver,
    tensorrt_install,
)
from sketchsearch.runtime.cuda_stack import (
    CHECKS,
    PAIRS,
    Problem,
    StackFacts,
    create_context,
    diagnose,
    explain_import_failure,
    import_failure_message,
    stack_checks,
    usable,
)
from sketchsearch.runtime.engines.protocol import BackendUnavailableError

REPO = Path(__file__).resolve().parents[2]
DRIVER_535 = DriverFacts("535.104.05", (12, 2))  # a CUDA 12 driver
DRIVER_580 = DriverFacts("580.65.06", (13, 0))  # runs CUDA 13 and, as every newer driver, 12
NO_DRIVER = DriverFacts(None, None, "libcuda.so.1: cannot open shared object file")
H200 = ContextFacts("NVIDIA H200 (compute capability 9.0)")


def installed(cuda: int, tensorrt: str = "10.13.3.9", cuda_python: str | None = None) -> dict:
    """The distributions `pip install tensorrt-cuXX==... cuda-python==...` leaves behind."""
    cuda_python = cuda_python or {12: "12.9.0", 13: "13.0.1"}[cuda]
    base = f"tensorrt-cu{cuda}"
    return {
        base: tensorrt,
        f"{base}-libs": tensorrt,
        f"{base}-bindings": tensorrt,
        "cuda-python": cuda_python,
        "cuda-bindings": cuda_python,
    }


def problems(driver: DriverFacts, distributions: dict, context: ContextFacts | None = H200):
    return diagnose(StackFacts(driver, distributions, context))


# --- the pins ---


def test_the_pins_are_the_extras_of_setup_cfg() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    extras = config["options.extras_require"]
    for pair in PAIRS:
        assert tuple(extras[pair.extra].split()) == pair.requirements
    assert [(p.extra, p.cuda_major) for p in PAIRS] == [("tensorrt", 12), ("tensorrt-cu13", 13)]
    assert {p.tensorrt_version for p in PAIRS} == {"10.13.3.9"}  # what tensorrt-stubs 10.13 cover


# --- the decision ---


def test_a_cuda_13_tensorrt_on_a_cuda_12_driver_is_a_mismatch_naming_both() -> None:
    found = problems(DRIVER_535, installed(13, cuda_python="13.0.1"), None)
    assert found == [
        Problem(
            "cuda-major",
            "mismatch",
            "driver/CUDA mismatch: NVIDIA driver 535.104.05 supports CUDA 12.2, but "
            "tensorrt-cu13 10.13.3.9 and cuda-python 13.0.1 need CUDA 13 (driver >= 580.65.06): "
            "pip install 'sketchsearch[tensorrt]' for CUDA 12, or upgrade the driver",
        )
    ]
    assert not usable(found)
    # The same install on a CUDA 13 driver is fine: the rule looks at the driver, not the names.
    assert problems(DRIVER_580, installed(13)) == []


def test_a_cuda_13_tensorrt_beside_cuda_python_12_is_two_mismatches() -> None:
    found = problems(DRIVER_535, installed(13, cuda_python="12.9.0"), None)
    assert [(p.check, p.status) for p in found] == [("cuda-major", "mismatch")] * 2
    assert "but tensorrt-cu13 10.13.3.9 needs CUDA 13 (driver >= 580.65.06)" in found[0].message
    assert found[1].message.startswith(
        "tensorrt-cu13 10.13.3.9 is built for CUDA 13, but cuda-python 12.9.0 is for CUDA 12"
    )


def _cu13_trt() -> dict:
    return {k: v for k, v in installed(13).items() if k.startswith("tensorrt")}


def test_matched_pairs_have_no_problem() -> None:
    assert problems(DRIVER_535, installed(12)) == []
    assert problems(DRIVER_580, installed(13)) == []
    assert problems(DRIVER_580, installed(12)) == []  # a newer driver runs the CUDA 12 pair
    assert problems(DRIVER_580, installed(12, cuda_python="12.6.2.post1")) == []


def test_tensorrt_and_cuda_python_for_different_cuda_majors() -> None:
    (found,) = problems(DRIVER_580, installed(12, cuda_python="13.0.1"))
    assert found.check == "cuda-major" and found.status == "mismatch"
    assert found.message.startswith(
        "tensorrt-cu12 10.13.3.9 is built for CUDA 12, but cuda-python 13.0.1 is for CUDA 13: "
        "pip install 'sketchsearch[tensorrt]' --extra-index-url https://pypi.nvidia.com"
    )
    assert found.message.endswith("(cuda-python>=12.6.1,<13)")


def test_tensorrt_11_is_refused_with_the_pinned_version_and_why() -> None:
    (found,) = problems(DRIVER_580, installed(13, tensorrt="11.4.0.106"))
    assert found.check == "tensorrt" and found.status == "mismatch"
    assert "TensorRT 11.4.0.106 (tensorrt-cu13) is not supported" in found.message
    assert "pins TensorRT 10.13" in found.message and "tensorrt-stubs 10.13" in found.message
    assert "sketchsearch[tensorrt-cu13]" in found.message


def test_another_tensorrt_10_is_a_warning_only() -> None:
    found = problems(DRIVER_535, installed(12, tensorrt="10.14.1.48"))
    assert [(p.check, p.status) for p in found] == [("tensorrt", "warn")]
    assert "untested pair: tensorrt-cu12 10.14.1.48, pinned tensorrt-cu12==10.13.3.9" in (
        found[0].message
    )
    assert usable(found)
    assert problems(DRIVER_535, installed(12, tensorrt="10.13.3.9.post1")) == []


def test_no_driver_is_missing_and_says_which_driver_to_install() -> None:
    found = problems(NO_DRIVER, installed(12), None)
    assert [(p.check, p.status) for p in found] == [("driver", "missing")]
    assert found[0].message == (
        "no NVIDIA driver (libcuda.so.1: cannot open shared object file): install one "
        "(>= 525.60.13 for CUDA 12, >= 580.65.06 for CUDA 13, Linux)"
    )
    lines = stack_checks(StackFacts(NO_DRIVER, installed(12)), found)
    assert [(c.name, c.status) for c in lines] == [
        ("driver", "missing"),
        ("cuda-major", "missing"),
        ("tensorrt", "ok"),
        ("cuda-python", "ok"),
        ("context", "missing"),
    ]
    assert lines[4].detail == "not checked: no NVIDIA driver"


def test_nothing_installed_suggests_the_pair_of_the_drivers_cuda() -> None:
    found = problems(DRIVER_580, {}, None)
    assert [(p.check, p.status) for p in found] == [
        ("tensorrt", "missing"),
        ("cuda-python", "missing"),
    ]
    assert found[0].message == (
        "TensorRT is not installed: pip install 'sketchsearch[tensorrt-cu13]' "
        "--extra-index-url https://pypi.nvidia.com"
    )


@pytest.mark.parametrize(
    ("distributions", "status", "words"),
    [
        (installed(12) | _cu13_trt(), "mismatch", "tensorrt-cu12 and tensorrt-cu13 are both"),
        (
            {"tensorrt-cu13": "10.13.3.9", "cuda-python": "13.0.1"},
            "missing",
            "without tensorrt-cu13-libs and tensorrt-cu13-bindings (from NVIDIA's index)",
        ),
        ({"tensorrt": "10.13.3.9", "cuda-python": "12.9.0"}, "warn", "names no CUDA major"),
        (installed(12) | {"tensorrt_cu12": "8.6.1"}, "mismatch", "8.6.1 is too old"),
    ],
)
def test_broken_or_unknown_tensorrt_installs(distributions: dict, status: str, words: str) -> None:
    found = [p for p in problems(DRIVER_580, distributions) if p.check == "tensorrt"]
    assert [p.status for p in found] == [status]
    assert words in found[0].message


def test_cuda_python_outside_the_pinned_range() -> None:
    (found,) = problems(DRIVER_535, installed(12, cuda_python="12.5.0"))
    assert (found.check, found.status) == ("cuda-python", "mismatch")
    assert found.message.startswith("cuda-python 12.5.0 is outside the pinned cuda-python>=12.6.1")
    found_all = problems(DRIVER_535, {"cuda-bindings": "11.8.0"} | _cu12_trt())
    assert [p.check for p in found_all] == ["cuda-major", "cuda-python"]  # and CUDA 11 ≠ 12
    assert "cuda-bindings 11.8.0 is for neither pinned range" in found_all[1].message


def _cu12_trt() -> dict:
    return {k: v for k, v in installed(12).items() if k.startswith("tensorrt")}


def test_without_tensorrt_a_mismatched_cuda_python_is_advice_only() -> None:
    # torch brings cuda-bindings for its own CUDA; nothing of TensorRT's uses it yet.
    found = problems(DRIVER_535, {"cuda-bindings": "13.0.1"}, None)
    assert [(p.check, p.status) for p in found] == [
        ("cuda-major", "warn"),
        ("tensorrt", "missing"),
    ]
    assert "cuda-bindings 13.0.1 needs CUDA 13" in found[0].message


def test_a_context_that_cannot_be_created_is_reported() -> None:
    old = ContextFacts(None, "cuInit failed: CUDA_ERROR_SYSTEM_DRIVER_MISMATCH")
    (found,) = problems(DRIVER_580, installed(13), old)
    assert (found.check, found.status) == ("context", "mismatch")
    none = ContextFacts(None, "cuInit failed: CUDA_ERROR_NO_DEVICE")
    assert [p.status for p in problems(DRIVER_580, installed(13), none)] == ["missing"]


def test_tensorrt_install_reads_the_cuda_major_from_the_names() -> None:
    found = tensorrt_install(
        {"tensorrt_cu13_libs": "10.13.3.9", "tensorrt_cu13_bindings": "10.13.3.9"}
    )
    assert found is not None and found.cuda_major == 13
    assert found.distribution == "tensorrt-cu13-bindings" and found.missing_parts == ()
    assert tensorrt_install({"cuda-python": "12.9.0"}) is None


# --- what an import failure says ---

LIBCUDART_13 = OSError("libcudart.so.13: cannot open shared object file: No such file or directory")


def test_a_tensorrt_that_cannot_load_names_the_mismatch() -> None:
    facts = StackFacts(DRIVER_535, installed(13))
    message = import_failure_message("tensorrt", LIBCUDART_13, facts)
    assert message == (
        "TensorRT cannot be loaded (libcudart.so.13: cannot open shared object file: No such "
        "file or directory): driver/CUDA mismatch: NVIDIA driver 535.104.05 supports CUDA 12.2, "
        "but tensorrt-cu13 10.13.3.9 and cuda-python 13.0.1 need CUDA 13 (driver >= "
        "580.65.06): pip install 'sketchsearch[tensorrt]' for CUDA 12, or upgrade the driver"
    )


def test_a_matched_stack_that_cannot_load_says_reinstall() -> None:
    message = import_failure_message(
        "tensorrt", LIBCUDART_13, StackFacts(DRIVER_580, installed(13))
    )
    assert message is not None and message.endswith(
        "tensorrt-cu13 10.13.3.9 is installed: reinstall it: pip install "
        "'sketchsearch[tensorrt-cu13]' --extra-index-url https://pypi.nvidia.com"
    )


def test_nothing_installed_leaves_the_not_installed_message_to_the_caller() -> None:
    missing = ModuleNotFoundError("No module named 'tensorrt'", name="tensorrt")
    assert import_failure_message("tensorrt", missing, StackFacts(DRIVER_535, {})) is None
    # A module that is not there at all is "not installed", whatever metadata is left behind.
    assert (
        import_failure_message("tensorrt", missing, StackFacts(DRIVER_535, installed(12))) is None
    )
    part = ModuleNotFoundError("No module named 'tensorrt_bindings'", name="tensorrt_bindings")
    damaged = {"tensorrt-cu12": "10.13.3.9", "tensorrt-cu12-libs": "10.13.3.9"}
    message = import_failure_message("tensorrt", part, StackFacts(DRIVER_535, damaged))
    assert message is not None and "without tensorrt-cu12-bindings" in message
    broken = import_failure_message("tensorrt", LIBCUDART_13, StackFacts(DRIVER_535, {}))
    assert broken is not None and "pip lists no distribution of it" in broken


def test_cuda_runtime_reports_the_installed_cuda_python_it_cannot_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sketchsearch.runtime.engines.tensorrt_engine import cuda_runtime

    if "cuda-bindings" not in probe_distributions():
        pytest.skip("cuda-bindings is not installed here")
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)  # its import fails
    with pytest.raises(BackendUnavailableError) as raised:
        cuda_runtime()
    assert raised.value.exit_code == 2
    assert str(raised.value).startswith("cuda-python (cuda.bindings) cannot be loaded (")
    assert f"cuda-bindings {metadata.version('cuda-bindings')}" in str(raised.value)


# --- the probes, the import failure and the command, for real on this machine ---

needs_no_driver = pytest.mark.skipif(
    probe_driver().cuda is not None, reason="this machine has an NVIDIA driver"
)


@needs_no_driver
def test_the_driver_probe_says_there_is_none() -> None:
    driver = probe_driver()
    assert driver.cuda is None and "libcuda.so.1" in str(driver.problem)
    with pytest.raises(BackendUnavailableError) as raised:
        create_context()
    assert "\n" not in str(raised.value) and str(raised.value)


def test_the_distribution_probe_reads_metadata_without_importing() -> None:
    found = probe_distributions()
    for name, version in found.items():
        assert metadata.version(name) == version
    try:
        assert found.get("cuda-bindings") == metadata.version("cuda-bindings")
    except metadata.PackageNotFoundError:
        assert "cuda-bindings" not in found
    code = (
        "import sys; from sketchsearch.runtime import cuda_stack; cuda_stack.probe()\n"
        "print(sorted(m for m in ('tensorrt', 'torch', 'cuda') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_import_failure_is_explained_only_when_something_is_installed() -> None:
    if tensorrt_install(probe_distributions()) is None:
        assert explain_import_failure("tensorrt", ModuleNotFoundError("no tensorrt")) is None
    if "cuda-bindings" in probe_distributions():
        error = ImportError("libcudart.so.13: cannot open shared object file")
        message = explain_import_failure("cuda.bindings", error)
        assert message is not None and "\n" not in message
        assert message.startswith(
            "cuda-python (cuda.bindings) cannot be loaded (libcudart.so.13: cannot open shared "
            f"object file): cuda-bindings {metadata.version('cuda-bindings')}"
        )


@needs_no_driver
def test_the_command_prints_one_line_per_check_and_exits_2() -> None:
    command = [sys.executable, "-m", "sketchsearch.runtime.cuda_stack"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(CHECKS)
    statuses = {line.split()[0]: line.split()[1] for line in lines}
    assert statuses["driver"] == "missing" and statuses["context"] == "missing"
    assert lines[0].startswith("driver       missing   no NVIDIA driver (libcuda.so.1")
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, check=False)
    payload = json.loads(done.stdout)
    assert done.returncode == 2 and payload["usable"] is False
    assert [c["name"] for c in payload["checks"]] == list(CHECKS)
    assert payload["facts"]["driver"]["cuda"] is None


@pytest.mark.gpu
def test_a_context_is_created_on_the_gpu() -> None:
    if probe_driver().cuda is None:
        pytest.skip("needs an NVIDIA driver and GPU")
    pytest.importorskip("cuda.bindings", reason="needs cuda-python")
    assert create_context()  # "NVIDIA H200 (compute capability 9.0)"
