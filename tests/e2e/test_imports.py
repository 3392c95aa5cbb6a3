"""No end-to-end module imports a test module.

What is shared lives in conftest.py (and fodtest, servers, drill, ...);
a test module that imports another one runs that module's code, takes
its fixtures along and breaks when that module's helpers change for its
own tests. This keeps it from coming back."""
import ast
import glob
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def imported_test_modules(source):
    """The test modules source imports, by name (test_*)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        out += [n for n in names if n.split(".")[0].startswith("test_")]
    return out


def test_the_check_sees_every_form_of_import():
    src = ("import os\nimport test_a\nimport test_b as b\n"
           "from test_c import x\nfrom conftest import start\n"
           "def f():\n    import test_d\n")
    assert imported_test_modules(src) == ["test_a", "test_b", "test_c",
                                        "test_d"]


def test_no_e2e_module_imports_a_test_module():
    found = {}
    for path in sorted(glob.glob(os.path.join(HERE, "*.py"))):
        with open(path) as f:
            names = imported_test_modules(f.read())
        if names:
            found[os.path.basename(path)] = names
    assert found == {}, ("import what you share from conftest.py, not "
                         "from a test module: %s" % found)
