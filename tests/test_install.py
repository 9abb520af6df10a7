"""A fresh install gets the versions the tests ran with; the installed CLI prints clean help."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO, clean_env, opencell


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (REPO / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: {raw!r} is not pinned with =="
        pins[canonicalize_name(name)] = version.strip()
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def test_every_requirement_is_pinned_to_a_version_it_accepts() -> None:
    pins = _pins()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}")


def test_the_installed_versions_are_the_pinned_ones() -> None:
    pins = _pins()
    wrong = []
    for req in _requirements():
        name = canonicalize_name(req.name)
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            continue  # an extra this environment did not install
        if installed != pins[name]:
            wrong.append(f"{req.name} {installed} (pinned {pins[name]})")
    assert not wrong, ("installed without -c constraints.txt? " + ", ".join(wrong))


@pytest.mark.parametrize("command", [(), ("chat",), ("sessions",), ("run",), ("costs",)])
def test_help_shows_plain_metavars(command: tuple[str, ...]) -> None:
    result = opencell(*command, "--help", env=clean_env(COLUMNS="100"))
    assert result.returncode == 0, result.stderr
    noise = re.findall(r"<(?:str|int|bool|path)[^>]*>|\{[a-z_]+\}", result.stdout)
    assert not noise, f"--help prints type noise {noise}:\n{result.stdout}"
    assert "Usage: " in result.stdout and "--help" in result.stdout
