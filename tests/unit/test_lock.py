"""The lock files pin what pyproject.toml asks for, and `make install` installs from them.

pyproject.toml declares ranges; requirements.lock (written by `make lock`) pins every package of
the project and all its extras to one version, with the hashes of its files;
services/requirements.lock is the runtime part of it, for the image. These tests fail when
pyproject.toml names a dependency the lock does not pin (a dependency added, `make lock`
forgotten), when a pin falls outside its range, or when the two locks disagree.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
SERVICES_LOCK = ROOT / "services" / "requirements.lock"
HUB_LOCK = ROOT / "classroom" / "hub-requirements.lock"
HUB_REQUIREMENTS = ROOT / "classroom" / "hub-requirements.in"


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    hashes: frozenset[str]

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> Version:
        return Version(str(self.requirement.specifier).removeprefix("=="))


def read_lock(path: Path) -> list[Pin]:
    """The entries of a hashed requirements file: `name==version ; marker --hash=...`, one per entry."""
    text = re.sub(r"\\\n", " ", path.read_text())  # join continuation lines
    pins = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        hashes = frozenset(re.findall(r"--hash=(\S+)", line))
        requirement = Requirement(re.sub(r"\s*--hash=\S+", "", line).strip())
        pins.append(Pin(requirement, hashes))
    return pins


def pyproject_requirements() -> dict[str, list[Requirement]]:
    """The project's requirements by where they are declared: "runtime" and each extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {"runtime": project["dependencies"], **project.get("optional-dependencies", {})}
    return {group: [Requirement(r) for r in requirements] for group, requirements in declared.items()}


def by_name(pins: list[Pin]) -> dict[str, list[Pin]]:
    # A universal lock may pin a package twice, for different Pythons (`; python_full_version...`).
    grouped: dict[str, list[Pin]] = {}
    for pin in pins:
        grouped.setdefault(pin.name, []).append(pin)
    return grouped


@pytest.fixture(scope="module")
def lock() -> list[Pin]:
    return read_lock(LOCK)


@pytest.fixture(scope="module")
def services_lock() -> list[Pin]:
    return read_lock(SERVICES_LOCK)


@pytest.mark.parametrize("path", [LOCK, SERVICES_LOCK, HUB_LOCK], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_entry_is_one_exact_version_with_its_hashes(path):
    pins = read_lock(path)
    assert pins, f"{path} pins nothing"
    for pin in pins:
        specifiers = list(pin.requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{pin.requirement} is not an exact pin"
        assert "*" not in specifiers[0].version, f"{pin.requirement} is a wildcard, not a pin"
        assert not pin.requirement.url, f"{pin.requirement} points at a URL"
        assert pin.hashes and all(h.startswith("sha256:") for h in pin.hashes), f"{pin.name} has no sha256 hash"


def test_one_pin_per_package_on_this_python(lock):
    applicable = [pin.name for pin in lock if pin.requirement.marker is None or pin.requirement.marker.evaluate()]
    duplicates = {name for name in applicable if applicable.count(name) > 1}
    assert not duplicates, f"two versions of {sorted(duplicates)} would be installed here"


@pytest.mark.parametrize("group", sorted(pyproject_requirements()))
def test_the_lock_pins_every_dependency_of_pyproject_within_its_range(lock, group):
    pinned = by_name(lock)
    for requirement in pyproject_requirements()[group]:
        name = canonicalize_name(requirement.name)
        assert name in pinned, (
            f"pyproject.toml ({group}) asks for {requirement}, which requirements.lock does not pin: run `make lock`"
        )
        for pin in pinned[name]:
            assert requirement.specifier.contains(pin.version, prereleases=True), (
                f"requirements.lock pins {pin.requirement}, outside pyproject.toml's {requirement}: run `make lock`"
            )


def test_the_services_lock_is_the_runtime_part_of_the_full_lock_at_the_same_versions(lock, services_lock):
    full = {(pin.name, pin.version): pin for pin in lock}
    for pin in services_lock:
        assert (pin.name, pin.version) in full, (
            f"services/requirements.lock pins {pin.requirement}, requirements.lock does not: run `make lock`"
        )
        assert pin.hashes == full[pin.name, pin.version].hashes, f"the two locks list different files of {pin.name}"


def test_the_hub_lock_pins_what_the_hub_image_needs_at_the_full_locks_versions(lock):
    full = {(pin.name, pin.version): pin for pin in lock}
    hub = read_lock(HUB_LOCK)
    for pin in hub:
        assert (pin.name, pin.version) in full, (
            f"classroom/hub-requirements.lock pins {pin.requirement}, requirements.lock does not: run `make lock`"
        )
        assert pin.hashes == full[pin.name, pin.version].hashes, f"the two locks list different files of {pin.name}"
    wanted = {canonicalize_name(Requirement(line).name) for line in HUB_REQUIREMENTS.read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert wanted <= {pin.name for pin in hub}, "the hub's lock misses what hub-requirements.in asks for: run `make lock`"


def test_the_services_lock_covers_the_runtime_dependencies_and_no_extra(services_lock):
    pinned = by_name(services_lock)
    declared = pyproject_requirements()
    runtime = {canonicalize_name(r.name) for r in declared["runtime"]}
    for name in runtime:
        assert name in pinned, f"the image would miss {name}: run `make lock`"
    extras_only = {
        canonicalize_name(r.name) for group, requirements in declared.items() if group != "runtime"
        for r in requirements
    } - runtime
    assert not extras_only & set(pinned), "the image's lock holds notebook or test packages"


# --- how make uses the lock -------------------------------------------------------------------


@pytest.fixture(scope="module")
def make_database(tmp_path_factory) -> str:
    """`make`'s view of the install rule: its prerequisites and the commands it would run."""
    venv = tmp_path_factory.mktemp("venv")
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-p", "install", f"VENV={venv}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return result.stdout.replace(str(venv), "$VENV")


def test_the_environment_is_rebuilt_when_the_lock_or_pyproject_changes(make_database):
    rule = re.search(r"^\$VENV/\.installed:(.*)$", make_database, re.MULTILINE)
    assert rule, "no rule for the environment's stamp file"
    assert {"pyproject.toml", "requirements.lock"} <= set(rule.group(1).split())


def test_make_install_installs_the_lock_then_the_project_without_resolving(make_database):
    commands = [line for line in make_database.splitlines() if "pip install" in line and "$VENV/bin/pip" in line]
    from_lock = [i for i, c in enumerate(commands) if re.search(r"-r\s+requirements\.lock\b", c)]
    project = [i for i, c in enumerate(commands) if re.search(r"--no-deps\s+-e\s+\.(\s|$)", c)]
    assert from_lock and project, f"install runs {commands}"
    assert from_lock[0] < project[0], "the project must go in after the locked packages"
    # Any install of the project itself (`.`, `-e .`, `.[extras]`) must leave its dependencies alone.
    installs_project = [c for c in commands if re.search(r"\s['\"]?\.(\[[^\]]*\])?['\"]?(\s|$)", c)]
    resolving = [c for c in installs_project if "--no-deps" not in c]
    assert not resolving, f"make install resolves the project's dependencies again: {resolving}"
