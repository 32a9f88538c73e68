"""The OpenAPI schema (/api/v1/schema/) is valid OpenAPI 3, names every API route once, and documents each
operation: a unique operationId (what generated clients name their methods by) and its responses."""

import json
import re
from collections import Counter

from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.validation import validate_schema

from tests.conftest import login

METHODS = {"get", "post", "put", "patch", "delete"}
NOT_OPERATIONS = ("api-schema", "api-docs")


def _api_routes(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _api_routes(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern) and (p.name or "").startswith("api-") and p.name not in NOT_OPERATIONS:
            yield "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", prefix + str(p.pattern))


def test_the_schema_is_valid_and_documents_every_operation(lead):
    response = login(lead).get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)  # OpenAPI 3.0's own JSON schema

    operations = [(path, method, op) for path, item in schema["paths"].items()
                  for method, op in item.items() if method in METHODS]  # fmt: skip
    assert len(operations) > 60
    ids = Counter(op.get("operationId") for _, _, op in operations)
    assert None not in ids and not [i for i, n in ids.items() if n > 1], [i for i, n in ids.items() if n > 1]
    undocumented = [f"{method.upper()} {path}" for path, method, op in operations
                    if not any(code.startswith("2") for code in op.get("responses", {}))
                    or not all(r.get("description") is not None for r in op["responses"].values())]  # fmt: skip
    assert not undocumented, undocumented

    missing = sorted(set(_api_routes(get_resolver().url_patterns)) - set(schema["paths"]))
    assert not missing, f"API routes absent from the schema: {missing}"
