from triage.schemas.export import JSON_DIR, rendered


def test_exported_json_schemas_are_current():
    for name, text in rendered().items():
        path = JSON_DIR / name
        assert path.exists(), f"{path} missing: run `make schemas`"
        assert path.read_text() == text, f"{path} is stale: run `make schemas`"
