"""The docs stay true: the permission matrix in docs/permissions.md is the one the code enforces."""

import re
from pathlib import Path

from accounts import access
from accounts.models import Role

ROOT = Path(__file__).resolve().parent.parent


def documented_matrix() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "permissions.md").read_text()
    block = text.split("<!-- matrix:start -->")[1].split("<!-- matrix:end -->")[0]
    rows = [line for line in block.strip().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    roles = header[2:]
    matrix = {}
    for line in rows[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        matrix[cells[0]] = {role for role, cell in zip(roles, cells[2:], strict=True) if cell == "✓"}
    return matrix


def test_permission_matrix_matches_the_access_policy():
    documented = documented_matrix()
    assert set(documented) == set(access.ACTIONS)
    for action, roles in access.ACTIONS.items():
        assert documented[action] == {str(r) for r in roles} | {Role.ADMIN.value}, action


def test_readme_lists_every_environment_setting_of_the_core():
    readme = (ROOT / "README.md").read_text()
    settings_source = (ROOT / "config" / "settings.py").read_text()
    names = set(re.findall(r'env(?:_bool|_int|_bytes|_list)?\("([A-Z_]+)"', settings_source))
    operations = (ROOT / "docs" / "operations.md").read_text()
    missing = sorted(name for name in names if name not in readme and name not in operations)
    assert not missing, f"Settings not documented in README.md or docs/operations.md: {missing}"
