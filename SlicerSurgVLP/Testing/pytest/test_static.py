"""What Slicer itself would find wrong, checked without Slicer: syntax of every supported Python, the UI file,
the CMake lists, the extension description, and imports limited to what a Slicer Python has."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
import xml.etree.ElementTree as ElementTree

import pytest

from conftest import MODULE_DIR, REPO_DIR

PYTHON_FILES = sorted(path for path in MODULE_DIR.rglob("*.py") if "Testing" not in path.relative_to(MODULE_DIR).parts)
LIBRARY = MODULE_DIR / "SlicerSurgVLPLib"
# What every Slicer since 5.8 ships besides the standard library: its own packages and numpy.
SLICER_PROVIDES = {"slicer", "vtk", "vtkmodules", "qt", "ctk", "numpy", "SlicerSurgVLPLib", "__main__"}
# The one library module that may touch MRML (see SlicerSurgVLPLib/__init__.py).
SCENE_MODULE = LIBRARY / "scene.py"
STDLIB = set(sys.stdlib_module_names)
# Removed from the standard library by 3.12 or 3.13: a module using them would break in a newer Slicer.
REMOVED_FROM_STDLIB = {"cgi", "cgitb", "imp", "distutils", "asynchat", "asyncore", "smtpd", "telnetlib", "nntplib",
                       "pipes", "crypt", "uu", "xdrlib", "msilib", "nis", "spwd", "sndhdr", "sunau", "aifc", "audioop",
                       "chunk", "imghdr", "mailcap", "ossaudiodev"}


def test_module_files_are_found():
    names = {path.relative_to(MODULE_DIR).as_posix() for path in PYTHON_FILES}
    assert {"SlicerSurgVLP.py", "SlicerSurgVLPLib/client.py", "SlicerSurgVLPLib/scene.py"} <= names


@pytest.mark.parametrize("version", [(3, 9), (3, 12)], ids=["py3.9", "py3.12"])
@pytest.mark.parametrize("path", PYTHON_FILES + sorted((MODULE_DIR / "Testing" / "Python").glob("*.py")),
                         ids=lambda path: path.name)
def test_every_module_file_parses_with_the_grammar_of_slicers_python(path, version):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=version)
    annotated = any(isinstance(node, ast.AnnAssign) or (isinstance(node, ast.arg) and node.annotation) or
                    (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns)
                    for node in ast.walk(tree))
    # Annotations are only safe on 3.9 (X | Y, list[int] in signatures) when they are never evaluated.
    assert not annotated or any(isinstance(node, ast.ImportFrom) and node.module == "__future__" and
               any(alias.name == "annotations" for alias in node.names) for node in tree.body), \
        f"{path.name}: add 'from __future__ import annotations' (Slicer 5.8 runs Python 3.9)"


def _runtime_only_syntax(tree: ast.AST) -> list[str]:
    """Constructs that 3.9's grammar accepts but 3.9 fails to run."""
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None)
        if name in ("isinstance", "issubclass") and any(isinstance(argument, ast.BinOp) for argument in node.args[1:]):
            problems.append(f"line {node.lineno}: {name} with X | Y needs Python 3.10")
        if name == "zip" and any(keyword.arg == "strict" for keyword in node.keywords):
            problems.append(f"line {node.lineno}: zip(strict=) needs Python 3.10")
        if name == "dataclass" and any(keyword.arg in ("slots", "kw_only") for keyword in node.keywords):
            problems.append(f"line {node.lineno}: dataclass(slots=, kw_only=) needs Python 3.10")
    return problems


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda path: path.name)
def test_no_construct_that_only_newer_pythons_run(path):
    assert _runtime_only_syntax(ast.parse(path.read_text(encoding="utf-8"))) == []


def _top_level_imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda path: path.name)
def test_the_module_imports_only_what_slicer_ships(path):
    imported = set(_top_level_imports(path))
    foreign = sorted(name for name in imported - STDLIB - SLICER_PROVIDES if name != "__future__")
    assert foreign == [], f"{path.name} imports {foreign}, which a Slicer Python does not have"
    assert imported & REMOVED_FROM_STDLIB == set()
    if path.parent == LIBRARY and path != SCENE_MODULE:
        assert imported & {"slicer", "vtk", "vtkmodules", "qt", "ctk", "__main__"} == set(), \
            f"{path.name}: only scene.py of the library may import Slicer"


def test_nothing_in_the_library_imports_the_scene_module():
    for path in PYTHON_FILES:
        if path.parent == LIBRARY and path != SCENE_MODULE:
            assert "scene" not in re.findall(r"^from \.(\w+) import|^from SlicerSurgVLPLib\.(\w+)",
                                             path.read_text(encoding="utf-8"), re.MULTILINE), path.name


def _ui_widget_names():
    tree = ElementTree.parse(MODULE_DIR / "Resources" / "UI" / "SlicerSurgVLP.ui")
    return {widget.get("name") for widget in tree.iter("widget")}


def test_every_ui_name_the_widget_uses_exists_in_the_ui_file():
    used = set(re.findall(r"self\.ui\.(\w+)", (MODULE_DIR / "SlicerSurgVLP.py").read_text(encoding="utf-8")))
    assert used, "the widget uses no UI element?"
    assert sorted(used - _ui_widget_names()) == []


def test_the_ui_file_has_no_widget_the_module_ignores():
    used = set(re.findall(r"self\.ui\.(\w+)", (MODULE_DIR / "SlicerSurgVLP.py").read_text(encoding="utf-8")))
    labels_and_sections = {name for name in _ui_widget_names()
                           if name.endswith(("Label", "Section")) or name == "SlicerSurgVLP"}
    assert sorted(_ui_widget_names() - used - labels_and_sections) == []


def _cmake_list(variable):
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    block = re.search(rf"set\({variable}\s+(.*?)\)", text, re.DOTALL).group(1)
    return {line.strip().replace("${MODULE_NAME}", "SlicerSurgVLP") for line in block.splitlines() if line.strip()}


def test_every_python_file_and_resource_is_listed_in_the_module_cmake_lists():
    listed = _cmake_list("MODULE_PYTHON_SCRIPTS")
    assert listed == {path.relative_to(MODULE_DIR).as_posix() for path in PYTHON_FILES}
    resources = _cmake_list("MODULE_PYTHON_RESOURCES")
    assert resources == {path.relative_to(MODULE_DIR).as_posix()
                         for path in (MODULE_DIR / "Resources").rglob("*") if path.is_file()}
    assert "slicerMacroBuildScriptedModule" in (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")


def _extension_variables():
    text = (REPO_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    return dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', text)), text


def test_the_extension_cmake_lists_follows_the_template():
    variables, text = _extension_variables()
    for name in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert variables.get(f"EXTENSION_{name}", "").strip(), f"EXTENSION_{name} is missing or empty"
    assert variables["EXTENSION_DEPENDS"] == "NA"
    for line in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(SlicerSurgVLP)",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert line in text
    assert re.search(r"^project\(SlicerSurgVLP\)", text, re.MULTILINE)
    icon = variables["EXTENSION_ICONURL"].split("/main/", 1)[1]
    assert (REPO_DIR / icon).is_file(), "the icon URL must name the icon committed in the repository"


def test_the_extension_descriptions_agree_with_the_cmake_lists():
    variables, _ = _extension_variables()
    index = MODULE_DIR / "ExtensionsIndex"
    entries = {}
    for line in (index / "SlicerSurgVLP.s4ext").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            entries[key] = value.strip()
    for key in ("scm", "scmurl", "scmrevision", "depends", "build_subdirectory", "homepage", "contributors",
                "category", "iconurl", "status", "description", "screenshoturls", "enabled"):
        assert entries.get(key), f"{key} is missing from the .s4ext"
    assert entries["category"] == variables["EXTENSION_CATEGORY"]
    assert entries["description"] == variables["EXTENSION_DESCRIPTION"]
    assert entries["iconurl"] == variables["EXTENSION_ICONURL"]
    catalog = json.loads((index / "SlicerSurgVLP.json").read_text(encoding="utf-8"))
    assert {"$schema", "category", "scm_url"} <= set(catalog)  # the catalogue schema's required fields
    assert set(catalog) <= {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
                            "dicom_support_rule", "build_subdirectory", "enabled", "tier"}
    assert catalog["category"] == variables["EXTENSION_CATEGORY"] and catalog["scm_url"] == entries["scmurl"]


def test_the_icon_is_a_128_pixel_png():
    data = (MODULE_DIR / "Resources" / "Icons" / "SlicerSurgVLP.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (128, 128)


@pytest.mark.parametrize("package", ["torch", "monailabel", "surgvlp", "av", "SimpleITK"])
def test_the_server_packages_are_not_importable_here(package):
    """This environment stands for Slicer's Python: a test passing here must not lean on the server's packages."""
    assert importlib.util.find_spec(package) is None


def test_this_environment_is_like_slicer_5_12():
    import numpy
    import pydicom

    assert int(numpy.__version__.split(".")[0]) >= 2 and int(pydicom.__version__.split(".")[0]) >= 3
