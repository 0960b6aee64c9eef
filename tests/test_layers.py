"""The import graph keeps its shape: the HTTP layer sits on the domains, never the reverse, and the
domains' packages depend on each other in one direction only.

A maintainer adding an import that points the wrong way (a service importing a route module, the
API registry, ``flask_openapi3``; or ``cases`` importing ``trends`` while ``trends`` imports
``cases``) is told here, with the import that does it, before the cycle forces imports inside
functions again. Imports made only for type checking (``if TYPE_CHECKING:``) do not count: they
never run.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import grimp
import pytest

# The HTTP layer: pages, the JSON API, forms, command lines and the app factory. Everything else in
# dr_panel is a domain (models and services) or the shared kernel beneath them.
WEB_MODULES = {
    "dr_panel",  # the app factory
    "dr_panel.wsgi",
    "dr_panel.cli",
    "dr_panel.bench",
    "dr_panel.security",  # the access guard and error pages
    "dr_panel.webapi",  # the JSON API's shared helpers
    "dr_panel.forms",
    "dr_panel.keys_cli",
    "dr_panel.pagination",  # page links of the lists
    "dr_panel.auth",  # its init_app wires sign-in (the login manager, token loading) into the app
}
WEB_PACKAGES = {"api", "admin", "main", "demo"}  # wholly HTTP (or a command's demo data)
WEB_NAMES = ("routes", "api", "schemas", "forms", "cli", "feeds", "downloads", "imports")
HTTP_LIBRARIES = {"flask_openapi3", "flask_wtf", "wtforms"}
KERNEL = {"dr_panel.extensions"}  # the extension objects themselves (CSRF, login manager, db)


def is_web(module: str) -> bool:
    parts = module.split(".")
    if module in WEB_MODULES or (len(parts) > 1 and parts[1] in WEB_PACKAGES):
        return True
    return any(
        p in WEB_NAMES or p.endswith(("_routes", "_api", "_cli", "_forms")) for p in parts[2:]
    )


def package(module: str) -> str:
    return ".".join(module.split(".")[:2])


@cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(
        "dr_panel", include_external_packages=True, exclude_type_checking_imports=True,
        cache_dir=None,  # a cache beside the checkout would answer for yesterday's imports
    )


def domain_imports() -> list[tuple[str, str]]:
    g = graph()
    return [
        (m, imported)
        for m in sorted(g.modules)
        if m.startswith("dr_panel") and not is_web(m) and m not in KERNEL
        for imported in sorted(g.find_modules_directly_imported_by(m))
    ]


def test_no_domain_module_imports_the_http_layer() -> None:
    upward = [
        f"{m} imports {imp}" for m, imp in domain_imports()
        if (imp.startswith("dr_panel") and is_web(imp)) or imp in HTTP_LIBRARIES
    ]
    assert upward == []


def test_the_domain_packages_have_no_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    via: dict[tuple[str, str], str] = {}
    for m, imp in domain_imports():
        if not imp.startswith("dr_panel.") or is_web(imp) or package(m) == package(imp):
            continue
        edges[package(m)].add(package(imp))
        via.setdefault((package(m), package(imp)), f"{m} -> {imp}")
    cycles = []
    for start in sorted(edges):
        # Depth-first from each package: any path back to it is a cycle.
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges[node]):
                if nxt == start:
                    steps = zip(path, [*path[1:], start], strict=True)
                    cycles.append(" -> ".join([*path, start]) + ": "
                                  + "; ".join(via[step] for step in steps))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert cycles == []


@pytest.mark.parametrize("module", ["dr_panel.cases.services", "dr_panel.reviews.services"])
def test_the_layer_rule_is_really_checked(module: str) -> None:
    """The classification is not vacuous: services are domain, route modules are web."""
    assert not is_web(module)
    assert is_web(module.replace("services", "routes"))
    assert is_web(module.replace("services", "api"))
