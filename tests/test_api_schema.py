"""The OpenAPI schema the app serves, and deny-by-default on every /api/ endpoint.

The endpoint list is read from the URLconf itself, so an endpoint added later is checked without touching this file:
an anonymous request to any method of any /api/ route must be refused (401/403) unless the route is in PUBLIC."""

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RoutePattern
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

# Routes anyone may call, by URL name in the "api" namespace, with why.
PUBLIC = {
    "api:token": "exchanges a username and password for a token",
    "api:schema": "the OpenAPI description itself, so clients can be generated before they hold a token",
    "api:docs": "the interactive documentation page of that schema",
}
METHODS = ("get", "post", "put", "patch", "delete")
CONVERTER_SAMPLES = {"uuid": "00000000-0000-4000-8000-000000000001", "int": "1", "slug": "x", "str": "x", "path": "x"}


def _api_routes():
    """(url name, concrete path, OpenAPI path template, view callback) for every route under /api/.

    The concrete path has each parameter filled with a sample value of its converter's type."""
    found = []

    def walk(patterns, prefix: str, namespace: str | None, converters: dict):
        for pattern in patterns:
            route = str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(
                    pattern.url_patterns,
                    prefix + route,
                    ":".join(p for p in (namespace, pattern.namespace) if p) or None,
                    {**converters, **pattern.pattern.converters},
                )
                continue
            assert isinstance(pattern, URLPattern)
            full = prefix + route
            if not full.startswith("api/"):
                continue
            assert isinstance(pattern.pattern, RoutePattern), f"{full}: only path() routes are expected under /api/"
            concrete = template = full
            for name, converter in {**converters, **pattern.pattern.converters}.items():
                key = type(converter).__name__.removesuffix("Converter").lower()
                for token in (f"<{key}:{name}>", f"<{name}>"):
                    concrete = concrete.replace(token, CONVERTER_SAMPLES[key])
                    template = template.replace(token, "{" + name + "}")
            assert "<" not in concrete, f"no sample value for a parameter of {full}"
            url_name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            found.append((url_name, "/" + concrete, "/" + template, pattern.callback))

    walk(get_resolver().url_patterns, "", None, {})
    return found


def _methods(callback) -> list[str]:
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is None:
        return list(METHODS)  # a plain function view: try everything
    return [m for m in METHODS if hasattr(view_class, m)]


ROUTES = _api_routes()


def test_the_urlconf_has_api_routes_and_every_public_one_exists():
    names = {name for name, _, _, _ in ROUTES}
    assert len(ROUTES) > 20
    assert set(PUBLIC) <= names, set(PUBLIC) - names


PRIVATE = [r for r in ROUTES if r[0] not in PUBLIC]


@pytest.mark.parametrize(("name", "path", "template", "callback"), PRIVATE, ids=[r[1] for r in PRIVATE])
def test_every_api_endpoint_refuses_anonymous_requests(name, path, template, callback):
    client = APIClient()
    methods = _methods(callback)
    assert methods, f"{path} answers no HTTP method"
    for method in methods:
        response = getattr(client, method)(path)
        assert response.status_code in (401, 403), (
            f"anonymous {method.upper()} {path} ({name}) answered {response.status_code}, expected 401/403"
        )


def test_the_public_endpoints_answer_anonymous_requests():
    client = APIClient()
    assert client.get(reverse("api:docs")).status_code == 200
    # The token endpoint is reachable anonymously, and refuses wrong credentials with a message.
    response = client.post(reverse("api:token"), {"username": "nobody", "password": "wrong"}, format="json")
    assert response.status_code == 400
    assert "token" not in response.json()


def test_the_served_openapi_schema_is_valid_and_generates_without_warnings():
    GENERATOR_STATS.reset()
    response = APIClient().get(reverse("api:schema"), {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    schema = json.loads(response.content)
    validate_schema(schema)
    warnings = dict(GENERATOR_STATS._warn_cache)
    errors = dict(GENERATOR_STATS._error_cache)
    assert not errors, errors
    assert not warnings, warnings
    # Every API route in the URLconf is described (the schema and docs views describe nothing themselves).
    described = set(schema["paths"])
    for name, path, template, _ in ROUTES:
        if name in ("api:schema", "api:docs"):
            continue
        assert template in described, f"{path} ({name}) is missing from the schema"
    # Token and session authentication are declared, so clients know how to call.
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])
