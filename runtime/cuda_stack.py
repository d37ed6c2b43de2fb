"""Whether this machine's NVIDIA driver, TensorRT and cuda-python fit together, and if not, why.

TensorRT is published once per CUDA major (``tensorrt-cu12``, ``tensorrt-cu13``), and an
unpinned ``pip install tensorrt`` takes the newest, built for the newest CUDA. On an older
driver that breaks inside ``import tensorrt`` ("libcudart.so.13: cannot open shared object
file") or at the first CUDA call, far from the cause. So this module owns the two tested pairs
(the ``[tensorrt]`` and ``[tensorrt-cu13]`` extras of setup.cfg; a test keeps them equal) and
turns the facts ``cuda_probe`` reads into one-line problems that name the versions found and
the fix. ``diagnose`` is a pure function of those facts, so every rule is tested on a CPU
machine; only ``create_context`` needs a GPU.

    python -m sketchsearch.runtime.cuda_stack [--json]

prints one line per check (driver, cuda-major, tensorrt, cuda-python, context): the check, its
status (ok, warn, missing, mismatch) and what was found. Exit code 0 when the TensorRT stack is
usable (warnings included), 2 when something is missing or mismatched.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

from sketchsearch.data.errors import ExitCode
from sketchsearch.data.strict_json import dumps
from sketchsearch.runtime.cuda_probe import (
    ContextFacts,
    CudaPythonInstall,
    DriverFacts,
    TensorRTInstall,
    create_context,
    cuda_python_install,
    probe_distributions,
    probe_driver,
    release,
    tensorrt_install,
    try_context,
)

__all__ = [
    "create_context",
    "diagnose",
    "diagnose_briefly",
    "explain_import_failure",
    "probe",
    "usable",
]

NVIDIA_INDEX = "https://pypi.nvidia.com"
CHECKS = ("driver", "cuda-major", "tensorrt", "cuda-python", "context")
# CUresult names that say the driver is older than the CUDA the libraries were built with.
DRIVER_TOO_OLD = ("INSUFFICIENT_DRIVER", "SYSTEM_DRIVER_MISMATCH", "COMPAT_NOT_SUPPORTED")


@dataclass(frozen=True)
class CudaPair:
    """One tested TensorRT + cuda-python pair for one CUDA major: one extra of setup.cfg."""

    extra: str
    cuda_major: int
    tensorrt_distribution: str
    tensorrt_version: str  # pinned with ==
    cuda_python_min: str  # cuda-python >= this ...
    cuda_python_below: str  # ... and < this
    min_driver_linux: str  # the oldest Linux driver that runs this CUDA major

    @property
    def requirements(self) -> tuple[str, str]:
        """The extra's two lines in setup.cfg."""
        return (
            f"{self.tensorrt_distribution}=={self.tensorrt_version}",
            f"cuda-python>={self.cuda_python_min},<{self.cuda_python_below}",
        )

    def install(self) -> str:
        return f"pip install 'sketchsearch[{self.extra}]' --extra-index-url {NVIDIA_INDEX}"


# Both pairs are TensorRT 10.13 (10.13.2 added CUDA 13), so the tensorrt-stubs 10.13 that mypy
# checks the TensorRT modules against cover either. Drivers: NVIDIA's minor-version
# compatibility table (CUDA 12.x from 525.60.13, CUDA 13.x from 580.65.06; newer drivers run
# older CUDA majors too).
PAIRS = (
    CudaPair("tensorrt", 12, "tensorrt-cu12", "10.13.3.9", "12.6.1", "13", "525.60.13"),
    CudaPair("tensorrt-cu13", 13, "tensorrt-cu13", "10.13.3.9", "13.0", "14", "580.65.06"),
)
DEFAULT_PAIR = PAIRS[0]
PINNED_TENSORRT = "10.13"


def pair_for(cuda_major: int | None) -> CudaPair | None:
    return next((p for p in PAIRS if p.cuda_major == cuda_major), None)


@dataclass(frozen=True)
class StackFacts:
    """What the probes found; ``diagnose`` decides from these alone."""

    driver: DriverFacts
    distributions: Mapping[str, str]  # normalized name → version; TensorRT and cuda-python
    context: ContextFacts | None = None  # None: not tried


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the stack, on one line: the versions found and the fix."""

    check: str  # one of CHECKS
    status: str  # "missing", "mismatch", or "warn" (usable, but untested or unused)
    message: str


def diagnose(facts: StackFacts) -> list[Problem]:
    """Every problem the facts show, in CHECKS order."""
    trt = tensorrt_install(facts.distributions)
    cuda_python = cuda_python_install(facts.distributions)
    pieces = [(p.describe(), p.cuda_major) for p in (trt, cuda_python) if p and p.cuda_major]
    found = (
        _driver_problem(facts.driver),
        _driver_mismatch(facts.driver, pieces),
        _major_mismatch(trt, cuda_python, facts.driver),
        _tensorrt_install_problem(trt, facts.driver),
        _tensorrt_version_problem(trt, facts.driver) if trt else None,
        _cuda_python_problem(cuda_python, trt, facts.driver),
        _context_problem(facts.context),
    )
    problems = [problem for problem in found if problem is not None]
    if trt is None:  # no TensorRT uses this cuda-python (torch may have brought it): advice only
        return [_advice(p) if p.check in ("cuda-major", "cuda-python") else p for p in problems]
    return problems


def _advice(problem: Problem) -> Problem:
    return replace(problem, status="warn") if problem.status == "mismatch" else problem


def usable(problems: Sequence[Problem]) -> bool:
    """Warnings (a matching but untested pair) do not stop anything."""
    return all(p.status == "warn" for p in problems)


def _suggested(driver: DriverFacts) -> CudaPair:
    """The pair for the CUDA major this driver runs, else the default (CUDA 12) one."""
    return pair_for(driver.cuda[0] if driver.cuda else None) or DEFAULT_PAIR


def _driver_problem(driver: DriverFacts) -> Problem | None:
    if driver.cuda is not None:
        return None
    needs = ", ".join(f">= {p.min_driver_linux} for CUDA {p.cuda_major}" for p in PAIRS)
    message = f"no NVIDIA driver ({driver.problem}): install one ({needs}, Linux)"
    return Problem("driver", "missing", message)


def _driver_mismatch(driver: DriverFacts, pieces: list[tuple[str, int]]) -> Problem | None:
    """Libraries built for a newer CUDA major than the driver runs."""
    if driver.cuda is None:
        return None
    runs, minor = driver.cuda
    too_new = [(what, major) for what, major in pieces if major > runs]
    if not too_new:
        return None
    need = max(major for _, major in too_new)
    needed = pair_for(need)
    floor = f" (driver >= {needed.min_driver_linux})" if needed else ""
    fitting = pair_for(runs)
    fix = f"pip install 'sketchsearch[{fitting.extra}]' for CUDA {runs}, or " if fitting else ""
    names = " and ".join(what for what, _ in too_new)
    return Problem(
        "cuda-major",
        "mismatch",
        f"driver/CUDA mismatch: NVIDIA driver {driver.version or '(version unknown)'} supports "
        f"CUDA {runs}.{minor}, but {names} {'needs' if len(too_new) == 1 else 'need'} CUDA "
        f"{need}{floor}: {fix}upgrade the driver",
    )


def _major_mismatch(
    trt: TensorRTInstall | None, cuda_python: CudaPythonInstall | None, driver: DriverFacts
) -> Problem | None:
    """TensorRT and cuda-python built for different CUDA majors."""
    if not (trt and cuda_python and trt.cuda_major) or cuda_python.cuda_major == trt.cuda_major:
        return None
    pair = pair_for(trt.cuda_major) or _suggested(driver)
    return Problem(
        "cuda-major",
        "mismatch",
        f"{trt.describe()} is built for CUDA {trt.cuda_major}, but {cuda_python.describe()} is "
        f"for CUDA {cuda_python.cuda_major}: {pair.install()} ({pair.requirements[1]})",
    )


def _tensorrt_install_problem(trt: TensorRTInstall | None, driver: DriverFacts) -> Problem | None:
    """Not installed, installed for two CUDA majors at once, or without its libs or bindings."""
    pair = pair_for(trt.cuda_major if trt else None) or _suggested(driver)
    if trt is None:
        return Problem("tensorrt", "missing", f"TensorRT is not installed: {pair.install()}")
    if len(trt.cuda_majors) > 1:
        names = " and ".join(f"tensorrt-cu{m}" for m in trt.cuda_majors)
        message = f"{names} are both installed and share the `tensorrt` module: pip uninstall "
        return Problem("tensorrt", "mismatch", f"{message}all but one, then {pair.install()}")
    if trt.missing_parts:
        parts = " and ".join(trt.missing_parts)
        message = f"{trt.describe()} is installed without {parts} (from NVIDIA's index)"
        return Problem("tensorrt", "missing", f"{message}: {pair.install()}")
    return None


def _tensorrt_version_problem(trt: TensorRTInstall, driver: DriverFacts) -> Problem | None:
    """TensorRT 11 or older than 10 (mismatch); a 10.x other than the pinned one (a warning)."""
    pair = pair_for(trt.cuda_major)
    fix = (pair or _suggested(driver)).install()
    major = (release(trt.version) or (0,))[0]
    if major >= 11:
        message = (
            f"TensorRT {trt.version} ({trt.distribution}) is not supported: sketchsearch pins "
            f"TensorRT {PINNED_TENSORRT}, the API its engine builder is type-checked against "
            f"(tensorrt-stubs {PINNED_TENSORRT}); {major}.x is untested: {fix}"
        )
        return Problem("tensorrt", "mismatch", message)
    if major < 10:
        message = f"TensorRT {trt.version} is too old: sketchsearch pins {PINNED_TENSORRT}"
        return Problem("tensorrt", "mismatch", f"{message}: {fix}")
    if trt.cuda_major is None:
        message = f"{trt.describe()} names no CUDA major (no tensorrt-cuXX distribution)"
        return Problem("tensorrt", "warn", f"{message}, so the driver check cannot see it: {fix}")
    if pair is None:
        pinned = " and ".join(str(p.cuda_major) for p in PAIRS)
        message = f"{trt.describe()} is built for CUDA {trt.cuda_major}, the pins for {pinned}"
        return Problem("tensorrt", "mismatch", f"{message}: {fix}")
    if release(trt.version)[:4] != release(pair.tensorrt_version):
        message = f"untested pair: {trt.describe()}, pinned {pair.requirements[0]}: {fix}"
        return Problem("tensorrt", "warn", message)
    return None


def _cuda_python_problem(
    cuda_python: CudaPythonInstall | None, trt: TensorRTInstall | None, driver: DriverFacts
) -> Problem | None:
    """Missing, or outside the pinned range of its CUDA major (another major: _major_mismatch)."""
    if cuda_python is None:
        fix = (pair_for(trt.cuda_major if trt else None) or _suggested(driver)).install()
        message = "cuda-python is not installed (TensorRT engines need cuda.bindings)"
        return Problem("cuda-python", "missing", f"{message}: {fix}")
    pair = pair_for(cuda_python.cuda_major)
    if pair is None:
        ranges = " or ".join(f"{p.requirements[1]} (CUDA {p.cuda_major})" for p in PAIRS)
        message = f"{cuda_python.describe()} is for neither pinned range, {ranges}"
        return Problem("cuda-python", "mismatch", f"{message}: {_suggested(driver).install()}")
    low, high = release(pair.cuda_python_min), release(pair.cuda_python_below)
    if not low <= release(cuda_python.version) < high:
        message = f"{cuda_python.describe()} is outside the pinned {pair.requirements[1]}"
        return Problem("cuda-python", "mismatch", f"{message}: {pair.install()}")
    return None


def _context_problem(context: ContextFacts | None) -> Problem | None:
    if context is None or context.error is None:
        return None
    status = "mismatch" if any(name in context.error for name in DRIVER_TOO_OLD) else "missing"
    return Problem("context", status, f"cannot create a CUDA context: {context.error}")


@dataclass(frozen=True)
class Check:
    """One line of the report: a check, its status, and what was found or is wrong."""

    name: str  # one of CHECKS
    status: str  # "ok", "warn", "missing" or "mismatch"
    detail: str


SEVERITY = ("warn", "missing", "mismatch")


def stack_checks(facts: StackFacts, problems: Sequence[Problem]) -> list[Check]:
    """One Check per name in CHECKS: its problems, else what was found, else why not checked."""
    found = _found(facts)
    checks = []
    for name in CHECKS:
        mine = [p for p in problems if p.check == name]
        if mine:
            status = max((p.status for p in mine), key=SEVERITY.index)
            checks.append(Check(name, status, "; ".join(p.message for p in mine)))
        elif found[name] is not None:
            checks.append(Check(name, "ok", str(found[name])))
        else:
            checks.append(Check(name, "missing", f"not checked: {_unchecked(name, facts)}"))
    return checks


def _found(facts: StackFacts) -> dict[str, str | None]:
    """What each check found, for the checks without a problem."""
    trt = tensorrt_install(facts.distributions)
    cuda_python = cuda_python_install(facts.distributions)
    driver, context = facts.driver, facts.context
    runs = f"{driver.cuda[0]}.{driver.cuda[1]}" if driver.cuda else None
    known = [f"{p.describe()} is for CUDA {p.cuda_major}" for p in (trt, cuda_python) if p]
    version = driver.version or "(version unknown)"
    return {
        "driver": f"NVIDIA driver {version} runs CUDA {runs}" if runs else None,
        "cuda-major": f"the driver runs CUDA {runs}; {', '.join(known)}"
        if runs and known
        else None,
        "tensorrt": f"{trt.describe()} (CUDA {trt.cuda_major}), as pinned" if trt else None,
        "cuda-python": (
            f"{cuda_python.describe()} (CUDA {cuda_python.cuda_major})" if cuda_python else None
        ),
        "context": f"created on {context.device}" if context and context.device else None,
    }


def _unchecked(name: str, facts: StackFacts) -> str:
    if facts.driver.cuda is None:
        return "no NVIDIA driver"
    if name == "cuda-major":
        return "neither TensorRT nor cuda-python is installed"
    if cuda_python_install(facts.distributions) is None:
        return "cuda-python is not installed"
    return "not tried"


def probe(context: bool = True) -> StackFacts:
    """The facts of this machine; with ``context``, a CUDA context is created when it can be."""
    driver = probe_driver()
    distributions = probe_distributions()
    tried = None
    if context and driver.cuda is not None and cuda_python_install(distributions) is not None:
        tried = try_context()
    return StackFacts(driver, distributions, tried)


IMPORT_LABELS = {"tensorrt": "TensorRT", "cuda.bindings": "cuda-python (cuda.bindings)"}
IMPORT_CHECKS = {"tensorrt": "tensorrt", "cuda.bindings": "cuda-python"}


def explain_import_failure(module: str, err: BaseException) -> str | None:
    """Why ``import tensorrt`` (or ``cuda.bindings``) failed, as one line with the versions found.

    None when Python finds no such module (and pip lists no distribution of it, or the module
    itself is absent rather than a part it loads): the caller says "not installed". The
    diagnosis skips the CUDA context, which would need the import.
    """
    return import_failure_message(module, err, probe(context=False))


def import_failure_message(module: str, err: BaseException, facts: StackFacts) -> str | None:
    """``explain_import_failure`` for given facts: the problems that concern ``module``."""
    installed: TensorRTInstall | CudaPythonInstall | None = (
        tensorrt_install(facts.distributions)
        if module == "tensorrt"
        else cuda_python_install(facts.distributions)
    )
    label, error = IMPORT_LABELS[module], " ".join(str(err).split())
    if isinstance(err, ModuleNotFoundError) and (installed is None or err.name == module):
        return None  # no such module at all: "not installed" is the whole story
    if installed is None:
        return f"{label} cannot be loaded ({error}), and pip lists no distribution of it: " + (
            _suggested(facts.driver).install()
        )
    found = [
        p.message
        for p in diagnose(facts)
        if p.check == IMPORT_CHECKS[module]
        or (p.check == "cuda-major" and installed.describe() in p.message)
    ]
    pair = pair_for(installed.cuda_major) or _suggested(facts.driver)
    reason = (
        "; ".join(found) or f"{installed.describe()} is installed: reinstall it: {pair.install()}"
    )
    return f"{label} cannot be loaded ({error}): {reason}"


def diagnose_briefly() -> str | None:
    """This machine's missing and mismatched pieces on one line (no context); None: none.

    For a CUDA call that failed after the imports worked (cudaErrorInsufficientDriver).
    """
    found = [p.message for p in diagnose(probe(context=False)) if p.status != "warn"]
    return "; ".join(found) or None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sketchsearch.runtime.cuda_stack",
        description="Check the NVIDIA driver, TensorRT and cuda-python against the pinned pairs.",
    )
    parser.add_argument("--json", action="store_true", help="Print the checks and facts as JSON.")
    args = parser.parse_args(argv)
    facts = probe()
    problems = diagnose(facts)
    checks = stack_checks(facts, problems)
    if args.json:
        payload = {
            "usable": usable(problems),
            "checks": [asdict(c) for c in checks],
            "facts": asdict(facts),
            "pinned": [asdict(p) for p in PAIRS],
        }
        print(dumps(payload, indent=1))
    else:
        for check in checks:
            print(f"{check.name:<12} {check.status:<9} {check.detail}")
    return int(ExitCode.OK if usable(problems) else ExitCode.USAGE)


if __name__ == "__main__":
    raise SystemExit(main())
