"""The generated OpenAPI documents: every route and every answer documented, without a server.

The live services are fuzzed against these documents in tests/property/test_fuzzer.py; these
tests say, quickly and by name, what the documents must contain.
"""

from __future__ import annotations

import re

import jsonschema
import pytest

from cqrs_demo import errors
from cqrs_demo.read import app as query_app
from cqrs_demo.write import app as command_app

SERVICES = {"command": command_app, "query": query_app}
METHODS = {"GET", "PUT", "POST", "PATCH", "DELETE"}


@pytest.fixture(scope="module", params=sorted(SERVICES))
def service(request):
    module = SERVICES[request.param]
    return module.routes(), module.document()


@pytest.fixture(scope="module")
def command_doc():
    return command_app.document()


@pytest.fixture(scope="module")
def query_doc():
    return query_app.document()


def operations(doc):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def validator(doc, name: str) -> jsonschema.Draft202012Validator:
    """A validator for one component, its references resolved within the document."""
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


def test_the_document_is_openapi_3_1(service):
    _, doc = service
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"]


def test_every_route_is_documented_and_nothing_else(service):
    app, doc = service
    served = {
        (method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in ("static", "openapi")
        for method in rule.methods & METHODS
    }
    documented = {(method, path) for method, path, _ in operations(doc)}
    assert documented == served


def test_every_schema_is_valid_json_schema_and_every_reference_resolves(service):
    _, doc = service
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
    text = repr(doc)
    for ref in set(re.findall(r"#/components/schemas/([\w.-]+)", text)):
        assert ref in doc["components"]["schemas"], ref


def test_every_example_is_valid_by_its_own_schema(service):
    _, doc = service
    examples = [(name, e) for name, s in doc["components"]["schemas"].items() for e in s.get("examples", [])]
    assert examples or doc["info"]["title"].endswith("query service")
    for name, example in examples:
        assert validator(doc, name).is_valid(example), (name, example)


def test_each_declared_error_is_documented_at_its_status_with_its_code(service):
    app, doc = service
    for rule in app.url_map.iter_rules():
        declared = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if declared is None:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods & METHODS:
            responses = doc["paths"][path][method.lower()]["responses"]
            for error in declared.errors:
                answer = responses[str(error.status)]
                refs = re.findall(r"#/components/schemas/(\w+)", repr(answer["content"]))
                assert error.body_model().__name__ in refs, (method, path, error.__name__)
                component = doc["components"]["schemas"][error.body_model().__name__]
                assert component["properties"]["error"]["const"] == error.code
                assert {"error", "message"} <= set(component["required"])


def test_every_answer_is_json(service):
    _, doc = service
    for method, path, operation in operations(doc):
        for status, response in operation["responses"].items():
            assert list(response["content"]) == ["application/json"], (method, path, status)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_changes_take_if_match_and_document_412_and_400(command_doc, method):
    operation = command_doc["paths"]["/api/products/{product_id}"][method]
    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert header["name"] == "If-Match" and not header["required"]
    pattern = header["schema"]["pattern"]
    assert re.search(pattern, '"3"') and re.search(pattern, '"2", "3"') and re.search(pattern, "*")
    assert not re.search(pattern, "") and not re.search(pattern, "abc")  # an empty If-Match is a 400
    assert {"400", "404", "412"} <= set(operation["responses"])
    assert "PreconditionFailed" in repr(operation["responses"]["412"])


@pytest.mark.parametrize("path", ["/api/products/{product_id}", "/api/orders/{order_id}"])
def test_reads_document_503_read_model_behind_with_retry_after(query_doc, path):
    answer = query_doc["paths"][path]["get"]["responses"]["503"]
    assert answer["headers"]["Retry-After"]["required"]
    assert "ReadModelBehind" in repr(answer["content"])
    ok = query_doc["paths"][path]["get"]["responses"]["200"]
    assert {"ETag", "X-Read-Model-Version"} <= set(ok["headers"])


def test_written_products_carry_etag_and_created_ones_location(command_doc):
    created = command_doc["paths"]["/api/products"]["post"]["responses"]["201"]
    assert {"ETag", "Location"} <= set(created["headers"])
    for method in ("put", "patch"):
        assert "ETag" in command_doc["paths"]["/api/products/{product_id}"][method]["responses"]["200"]["headers"]


def test_lists_carry_the_total_count(query_doc):
    for path in ("/api/products", "/api/orders"):
        headers = query_doc["paths"][path]["get"]["responses"]["200"]["headers"]
        assert headers["X-Total-Count"]["required"] and headers["X-Total-Count"]["schema"]["type"] == "integer"


def test_links_lead_from_a_created_product_to_its_changes(command_doc):
    """The stateful fuzzer follows these: the new id into the path, its ETag into If-Match."""
    ids = {operation["operationId"] for _, _, operation in operations(command_doc)}
    links = command_doc["paths"]["/api/products"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {"replace_product", "patch_product", "delete_product"}
    assert {link["operationId"] for link in links.values()} <= ids
    for link in links.values():
        assert link["parameters"] == {"path.product_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"}


# --- the mismatches a fuzzer found in the hand-written documents, kept fixed ----------------


def test_text_with_nul_or_only_spaces_is_refused_by_the_document(command_doc):
    product = validator(command_doc, "ProductFields")
    valid = {"name": "Mug", "price": 1, "quantity": 1, "sku": "M-1"}
    assert product.is_valid(valid)
    for name in ("a\x00b", "   ", "\u3000", "\x1c"):  # \x1c and \u3000: str.strip removes them too
        assert not product.is_valid({**valid, "name": name}), repr(name)
    assert product.is_valid({**valid, "name": "\ufeffMug"})  # not whitespace to str.strip either
    assert not product.is_valid({**valid, "description": "\x00"})


def test_an_order_line_names_one_product_and_the_other_may_be_null(command_doc):
    line = validator(command_doc, "OrderLine")
    assert line.is_valid({"sku": "M-1", "quantity": 1})
    assert line.is_valid({"product_id": 7, "quantity": 1})
    assert line.is_valid({"sku": "M-1", "product_id": None, "quantity": 1})
    assert line.is_valid({"sku": None, "product_id": 7, "quantity": 1})
    assert not line.is_valid({"sku": "M-1", "product_id": 7, "quantity": 1})
    assert not line.is_valid({"quantity": 1})
    assert not line.is_valid({"sku": None, "product_id": None, "quantity": 1})


def test_price_bounds_are_documented_for_the_price_filters(query_doc):
    parameters = {p["name"]: p for p in query_doc["paths"]["/api/products"]["get"]["parameters"]}
    for name in ("min_price", "max_price"):
        schema = parameters[name]["schema"]
        assert (schema["type"], schema["minimum"], schema["maximum"], schema["multipleOf"]) == (
            "number", 0, 9999999999.99, 0.01
        )
        assert not parameters[name]["required"]


def test_query_parameters_are_never_null(query_doc):
    for method, path, operation in operations(query_doc):
        for parameter in operation.get("parameters", []):
            assert "null" not in repr(parameter["schema"]), (method, path, parameter["name"])


def test_a_patch_takes_any_field_but_at_least_one_and_no_null(command_doc):
    patch = validator(command_doc, "ProductPatch")
    assert patch.is_valid({"price": 99.99})
    assert not patch.is_valid({})
    assert not patch.is_valid({"name": None})
    assert not patch.is_valid({"colour": "red"})


def test_money_is_a_number_in_cents(command_doc):
    price = command_doc["components"]["schemas"]["ProductFields"]["properties"]["price"]
    assert price["type"] == "number" and price["multipleOf"] == 0.01


def test_every_error_type_has_a_documented_body():
    for error in _error_types(errors.ApiError):
        schema = error.body_model().model_json_schema()
        assert schema["properties"]["error"]["const"] == error.code
        assert error.__doc__, f"{error.__name__} has no description for the document"


def _error_types(base):
    for sub in base.__subclasses__():
        yield sub
        yield from _error_types(sub)
