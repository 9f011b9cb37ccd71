"""The API's OpenAPI 3.1 document (`GET /openapi.json`, and as a page at `GET /docs`), generated from what
the handlers themselves use: the resource table (ingest/api/routes.py) for every path and method under a
version; the record layer's objects (casegate.store.records) for each object's bodies — a field's type,
length (`maxLength`), picklist (`enum`, the configured `[case]` values), whether it may be null, whether
a create must give it and whether a create or an update may write it, as `parse_body` checks them; the
configured `[api] versions` (the `{version}` path parameter's enum) and upsert external ids; and the error
shapes of ingest/api/errors.py and ingest/api/oauth.py with the statuses each operation can give.

Every route of the table must be described in `OPERATIONS`: building the document fails naming any that
is not, so a resource cannot be added without its description. Responses describe what the store gives
back (types and nullability, not the lengths or picklists of today's configuration, which older records
need not meet). Built once per process, on the first request for it (`ApiDocument`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any, get_args

from aiohttp import web
from casegate.ingest.api import composite, knowledge, query, sobject_collections
from casegate.ingest.api.context import BASE, ApiContext
from casegate.ingest.api.docs_page import render
from casegate.ingest.api.oauth import MAX_FORM
from casegate.ingest.api.operations import MAX_FIELDS_LISTED
from casegate.ingest.api.routes import ANY, TABLE
from casegate.store.ids import PREFIX
from casegate.store.knowledge import MAX_LIMIT
from casegate.store.records import OBJECTS, FieldSpec, ObjectSpec, RecordPolicy
from casegate.store.records.spec import FieldType
from casegate.store.soql.run import MAX_PAGE_SIZE

Schema = dict[str, Any]
Operation = dict[str, Any]
Paths = Iterable[tuple[str, Operation]]
VERSIONED = BASE + "/v{version}"
SCHEMAS, RESPONSES, PARAMETERS = "#/components/schemas/", "#/components/responses/", "#/components/parameters/"
DATETIME_OUT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$"
"""How the store writes a date-time (records.values.to_json): Salesforce's `2026-12-02T12:00:00.000+0000`."""
MAX_PATH_TEXT = 255
"""Characters of a path parameter: an 8,190-byte request line holds them percent-encoded."""
JSON = "application/json"


def ref(name: str) -> Schema:
    return {"$ref": SCHEMAS + name}


def nullable(schema: Schema) -> Schema:
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {**schema, "type": [schema["type"], "null"]}


def id_schema(objects: Sequence[str]) -> Schema:
    """An id of one of `objects`, as `store.ids.parse_id` reads it: the prefix, 12 characters, and the
    case-safe suffix or not."""
    prefixes = "|".join(PREFIX[o] for o in objects if o in PREFIX) or "[0-9A-Za-z]{3}"
    return {"type": "string", "pattern": f"^(?:{prefixes})[0-9A-Za-z]{{12}}(?:[0-9A-Za-z]{{3}})?$"}


def value_in(f: FieldSpec, policy: RecordPolicy) -> Schema:
    """What a create or an update may give for `f` (records.values.coerce takes it)."""
    s: Schema
    if f.type == "picklist":
        s = {"enum": list(policy.picklists[f.picklist] if f.picklist else f.values)}
    elif f.type == "boolean":
        s = {"type": "boolean"}
    elif f.type in ("int", "double"):
        s = {"type": "integer" if f.type == "int" else "number"}
        s |= {k: v for k, v in (("minimum", f.minimum), ("maximum", f.maximum)) if v is not None}
    elif f.type in ("datetime", "date"):
        s = {"type": "string", "format": "date-time" if f.type == "datetime" else "date"}
    elif f.type in ("reference", "id"):
        s = id_schema(f.reference_to)
    else:
        s = {"type": "string", "maxLength": f.length} | ({"format": "email"} if f.type == "email" else {})
    return (nullable(s) if f.nillable else s) | {"description": f.label}


def value_out(f: FieldSpec) -> Schema:
    """A field's value as a read gives it (records.values.to_json)."""
    kind = {"boolean": "boolean", "int": "integer", "double": "number"}.get(f.type, "string")
    s: Schema = {"type": kind}
    if f.type == "datetime":
        s["pattern"] = DATETIME_OUT
    elif f.type == "date":
        s["format"] = "date"
    return (nullable(s) if f.nillable else s) | {"description": f"{f.label} ({f.type})"}


def record(spec: ObjectSpec) -> Schema:
    """A record as `GET sobjects/{obj}/{id}` gives it: every field, or those `?fields=` names, and Id."""
    fields = {f.name: value_out(f) for f in spec.fields.values()}
    return {"type": "object", "title": spec.label, "required": ["attributes", "Id"],
            "properties": {"attributes": ref("Attributes"), **fields}, "additionalProperties": False}


def body(spec: ObjectSpec, policy: RecordPolicy, mode: str, *, in_collection: bool = False) -> Schema:
    """The fields a create (`mode` "create") or an update may send; in an sObject collection each record
    names its type in `attributes` and an update its `id`."""
    writable = [f for f in spec.fields.values() if (f.createable if mode == "create" else f.updateable)]
    required = [f.name for f in writable if f.required] if mode == "create" else []
    attributes: Schema = {"type": "object", "description": "Ignored: what the URL names counts"}
    if in_collection:
        attributes = {"type": "object", "required": ["type"], "properties": {"type": {"const": spec.name}}}
        required = ["attributes", *required] + (["id"] if mode == "update" else [])
    props = {"attributes": attributes, **({"id": id_schema((spec.name,))} if in_collection and mode == "update"
                                          else {}),
             **{f.name: value_in(f, policy) for f in writable}}
    return {"type": "object", "title": f"{spec.label} ({mode})", "required": required, "properties": props,
            "additionalProperties": False}


def error(codes: Sequence[str] | None = None) -> Schema:
    """Salesforce's error list (ApiError.body), its errorCode one of `codes` when given."""
    item: Schema = ref("Error")
    if codes is not None:
        item = {"allOf": [item, {"properties": {"errorCode": {"enum": list(codes)}}}]}
    return {"type": "array", "minItems": 1, "items": item}


def answer(description: str, schema: Schema | None = None, headers: Mapping[str, Any] | None = None
           ) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {JSON: {"schema": schema}}
    if headers:
        out["headers"] = dict(headers)
    return out


LIMIT_INFO = {"Sforce-Limit-Info": {"description": "api-usage=<used today>/<daily maximum>",
                                    "schema": {"type": "string"}}}
LOCATION = {"Location": {"description": "The new record's URL", "schema": {"type": "string"}}}


def ok(description: str, schema: Schema | None, status: int = 200, headers: Mapping[str, Any] | None = None
       ) -> dict[str, Any]:
    return {str(status): answer(description, schema, {**LIMIT_INFO, **(headers or {})})}


COMMON = {"401": {"$ref": RESPONSES + "Unauthorized"}, "404": {"$ref": RESPONSES + "NotFound"},
          "503": {"$ref": RESPONSES + "Unavailable"}}
"""What any resource of a version can answer: no good token, a version not served, the store down."""
BODY = {"400": {"$ref": RESPONSES + "BadRequest"}, "408": {"$ref": RESPONSES + "Timeout"},
        "413": {"$ref": RESPONSES + "TooLarge"}, "415": {"$ref": RESPONSES + "UnsupportedMediaType"}}
"""What a resource that reads a JSON body can answer besides."""
WRITE = {**BODY, "403": {"$ref": RESPONSES + "Forbidden"}}
BAD = {"400": {"$ref": RESPONSES + "BadRequest"}}
AUTO_ASSIGN = {"name": "Sforce-Auto-Assign", "in": "header", "required": False, "schema": {"type": "string"},
               "description": "FALSE: a new case is owned by the caller, not given by the assignment rules"}
QUERY_OPTIONS = {"name": "Sforce-Query-Options", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": f"batchSize={query.MIN_BATCH}…{MAX_PAGE_SIZE}: records a page"}


def operation(op_id: str, summary: str, tag: str, responses: Mapping[str, Any], *, params: Sequence[Any] = (),
              json_body: Schema | None = None, versioned: bool = True) -> Operation:
    out: Operation = {"operationId": op_id, "summary": summary, "tags": [tag]}
    out["parameters"] = ([{"$ref": PARAMETERS + "version"}] if versioned else []) + list(params)
    if json_body is not None:
        out["requestBody"] = {"required": True, "content": {JSON: {"schema": json_body}}}
    out["responses"] = {**responses, **(COMMON if versioned else {})}
    return out


def path_param(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


@dataclass(frozen=True)
class Source:
    """What the document is generated from besides the code: the running configuration."""

    policy: RecordPolicy
    versions: tuple[str, ...]


# -- the operations of the resource table -----------------------------------------------------------------
def resources(src: Source) -> Paths:
    yield "/", operation("resources", "The resources of a version", "Versions", ok("Resource URLs", ref("Resources")))


def limits(src: Source) -> Paths:
    yield "/limits", operation("limits", "API limits and today's use", "Versions", ok("Limits", ref("Limits")))


def global_describe(src: Source) -> Paths:
    yield "/sobjects", operation("globalDescribe", "Every object", "Describe",
                                 ok("The objects", ref("GlobalDescribe")))


def basic_info(src: Source) -> Paths:
    for obj in OBJECTS:
        yield f"/sobjects/{obj}", operation(f"basicInfo{obj}", f"{obj}: basic information", obj,
                                            ok("The object", ref("BasicInfo")))


def create(src: Source) -> Paths:
    for obj in OBJECTS:
        yield f"/sobjects/{obj}", operation(
            f"create{obj}", f"Create a {obj}", obj, {**ok("Created", ref("SaveResult"), 201, LOCATION), **WRITE},
            params=[AUTO_ASSIGN] if obj == "Case" else [], json_body=ref(f"{obj}Create"))


def describe(src: Source) -> Paths:
    for obj in OBJECTS:
        yield f"/sobjects/{obj}/describe", operation(f"describe{obj}", f"{obj}: its fields", obj,
                                                     ok("The describe", ref("Describe")))


def suggested_articles(src: Source) -> Paths:
    def text(name: str, description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description,
                "schema": {"type": "string", "maxLength": 500}}

    limit = {"name": "limit", "in": "query", "required": False, "description": "At most this many (default 5)",
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}}
    params = [text("subject", "The case's subject (this or description is needed)"),
              text("description", "The case's description"), text("language", "Only articles of this language"),
              limit]
    yield "/sobjects/Case/suggestedArticles", operation(
        "suggestedArticles", "Published articles whose words match a case being written", "Knowledge",
        {**ok("The articles, best first", {"type": "array", "items": ref(knowledge.ARTICLE)}), **BAD},
        params=params)


def _record_id(obj: str) -> dict[str, Any]:
    return path_param("id", id_schema((obj,)), f"The {obj}'s Id (15 or 18 characters)")


def read(src: Source) -> Paths:
    for obj, spec in OBJECTS.items():
        fields = {"name": "fields", "in": "query", "required": False, "style": "form", "explode": False,
                  "description": "Only these fields (and Id)",
                  "schema": {"type": "array", "minItems": 1, "maxItems": MAX_FIELDS_LISTED,
                             "items": {"enum": list(spec.fields)}}}
        yield f"/sobjects/{obj}/{{id}}", operation(f"read{obj}", f"Read a {obj}", obj,
                                                   {**ok("The record", ref(obj)), **BAD},
                                                   params=[_record_id(obj), fields])


def update(src: Source) -> Paths:
    for obj in OBJECTS:
        yield f"/sobjects/{obj}/{{id}}", operation(f"update{obj}", f"Update a {obj}", obj,
                                                   {"204": answer("Updated", headers=LIMIT_INFO), **WRITE},
                                                   params=[_record_id(obj)], json_body=ref(f"{obj}Update"))


def delete(src: Source) -> Paths:
    for obj in OBJECTS:
        yield f"/sobjects/{obj}/{{id}}", operation(f"delete{obj}", f"Delete a {obj}", obj,
                                                   {"204": answer("Deleted", headers=LIMIT_INFO),
                                                    "400": {"$ref": RESPONSES + "BadRequest"},
                                                    "403": {"$ref": RESPONSES + "Forbidden"}},
                                                   params=[_record_id(obj)])


def upsert(src: Source) -> Paths:
    for obj in OBJECTS:
        by = ["Id", *src.policy.external_ids.get(obj, ())]
        params = [path_param("field", {"enum": by}, "Id or an external-id field (`[case] external_ids`)"),
                  path_param("value", {"type": "string", "minLength": 1, "maxLength": MAX_PATH_TEXT},
                             "The value the record has (created with it when none has)"),
                  *([AUTO_ASSIGN] if obj == "Case" else [])]
        several = {"300": answer("Several records have the value: their URLs",
                                 {"type": "array", "items": {"type": "string"}})}
        yield f"/sobjects/{obj}/{{field}}/{{value}}", operation(
            f"upsert{obj}", f"Create or update a {obj} by Id or external id", obj,
            {**ok("Updated", ref("UpsertResult")), **ok("Created", ref("UpsertResult"), 201, LOCATION), **several,
             **WRITE}, params=params, json_body=ref(f"{obj}Update"))


def composite_request(src: Source) -> Paths:
    yield "/composite", operation("composite", f"Up to {composite.MAX_SUBREQUESTS} subrequests", "Composite",
                                  {**ok("Each subrequest's answer", ref("CompositeResponse")), **BODY},
                                  json_body=ref("CompositeRequest"))


def collection(src: Source, *, request: str) -> Paths:
    """POST (`request` "Create") or PATCH ("Update") composite/sobjects: records of any objects."""
    yield "/composite/sobjects", operation(
        f"{request.lower()}Records", f"{request} records of any objects", "Composite",
        {**ok("Each record's result", ref("CollectionResult")), **BODY},
        params=[AUTO_ASSIGN] if request == "Create" else [],
        json_body={"type": "object", "required": ["records"], "properties": {
            "allOrNone": {"type": "boolean"},
            "records": {"type": "array", "minItems": 1, "maxItems": sobject_collections.MAX_RECORDS,
                        "items": {"anyOf": [ref(f"{obj}Collection{request}") for obj in OBJECTS]}}}})


def delete_records(src: Source) -> Paths:
    ids = {"name": "ids", "in": "query", "required": True, "style": "form", "explode": False,
           "schema": {"type": "array", "minItems": 1, "maxItems": sobject_collections.MAX_RECORDS,
                      "items": id_schema(tuple(OBJECTS))}}
    all_or_none = {"name": "allOrNone", "in": "query", "required": False, "schema": {"type": "boolean"}}
    yield "/composite/sobjects", operation("deleteRecords", "Delete records of any objects", "Composite",
                                           {**ok("Each record's result", ref("CollectionResult")), **BAD},
                                           params=[ids, all_or_none])


def soql(src: Source, *, everything: bool) -> Paths:
    """query?q= (queryAll?q= with `everything`: deleted records too)."""
    name = "queryAll" if everything else "query"
    q = {"name": "q", "in": "query", "required": True, "description": "SOQL",
         "schema": {"type": "string", "minLength": 1, "maxLength": 500},
         "examples": {"cases": {"value": "SELECT Id, CaseNumber, Subject FROM Case WHERE IsClosed = false"}}}
    yield f"/{name}", operation(name, "SOQL, deleted records too" if everything else "SOQL", "Query",
                                {**ok("The first page", ref("QueryResult")), **BAD}, params=[q, QUERY_OPTIONS])


def soql_more(src: Source, *, everything: bool) -> Paths:
    name = "queryAll" if everything else "query"
    locator = path_param("locator", {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "maxLength": query.MAX_LOCATOR},
                         "From the previous page's nextRecordsUrl")
    yield f"/{name}/{{locator}}", operation(f"{name}More", "The next page of a query", "Query",
                                            {**ok("A page", ref("QueryResult")), **BAD}, params=[locator])


OPERATIONS: Mapping[tuple[str, str], Callable[[Source], Paths]] = {
    ("", "GET"): resources, ("limits", "GET"): limits, ("sobjects", "GET"): global_describe,
    ("sobjects/*", "GET"): basic_info, ("sobjects/*", "POST"): create, ("sobjects/*/describe", "GET"): describe,
    ("sobjects/*/suggestedArticles", "GET"): suggested_articles,
    ("sobjects/*/*", "GET"): read, ("sobjects/*/*", "PATCH"): update, ("sobjects/*/*", "DELETE"): delete,
    ("sobjects/*/*/*", "PATCH"): upsert, ("composite", "POST"): composite_request,
    ("composite/sobjects", "POST"): partial(collection, request="Create"),
    ("composite/sobjects", "PATCH"): partial(collection, request="Update"),
    ("composite/sobjects", "DELETE"): delete_records,
    ("query", "GET"): partial(soql, everything=False), ("query/*", "GET"): partial(soql_more, everything=False),
    ("queryAll", "GET"): partial(soql, everything=True), ("queryAll/*", "GET"): partial(soql_more, everything=True),
}
"""The description of each route of routes.TABLE, by its pattern (`*` for any one segment) and method."""


def route_key(pattern: Sequence[str | None]) -> str:
    return "/".join("*" if p is ANY else p for p in pattern)


# -- the routes outside the table, and the document --------------------------------------------------------
def versions_list(src: Source) -> Operation:
    return operation("versions", "The API versions served (no token needed)", "Versions",
                     {"200": answer("The versions", {"type": "array", "items": ref("Version")})},
                     versioned=False) | {"security": []}


def token() -> Operation:
    form = {"type": "object", "required": ["grant_type"], "properties": {
        "grant_type": {"enum": ["client_credentials", "refresh_token"]},
        "client_id": {"type": "string", "description": "The user's email (or in HTTP Basic credentials)"},
        "client_secret": {"type": "string", "description": "One of the user's API tokens"},
        "refresh_token": {"type": "string", "description": "For grant_type=refresh_token"}}}
    oauth_error: Schema = {"type": "object", "required": ["error", "error_description"],
                           "additionalProperties": False,
                           "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}}}
    codes = {"400": ["invalid_request", "unsupported_grant_type", "invalid_grant"], "401": ["invalid_client"]}
    errors = {status: answer(f"OAuth error: {', '.join(c)}", {**oauth_error, "properties": {
        **oauth_error["properties"], "error": {"enum": c}}}) for status, c in codes.items()}
    return {"operationId": "token", "summary": "OAuth 2.0 tokens: client_credentials and refresh_token grants",
            "tags": ["OAuth"], "security": [{}, {"clientBasic": []}],
            "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                "schema": form | {"description": f"At most {MAX_FORM} bytes"}}}},
            "responses": {"200": answer("Tokens", ref("Token")), **errors,
                          "503": {"$ref": RESPONSES + "Unavailable"}}}


def build(policy: RecordPolicy, versions: Sequence[str]) -> dict[str, Any]:
    """The OpenAPI document of the API as this configuration serves it."""
    src = Source(policy, tuple(versions))
    paths: dict[str, dict[str, Operation]] = {BASE: {"get": versions_list(src)},
                                              "/services/oauth2/token": {"post": token()}}
    for pattern, methods in TABLE:
        for method in methods:
            describer = OPERATIONS.get((route_key(pattern), method))
            if describer is None:
                raise RuntimeError(f"ingest/api/openapi.py does not describe {method} "
                                   f"{VERSIONED}/{route_key(pattern)} of the route table")
            for suffix, described in describer(src):
                paths.setdefault(VERSIONED + suffix, {})[method.lower()] = described
    return {
        "openapi": "3.1.0",
        "info": {"title": "casegate REST API (Salesforce-compatible)", "version": _version(),
                 "description": "Salesforce's REST dialect for the objects casegate keeps. Errors are Salesforce's "
                                "list of {message, errorCode, fields}; a method a resource does not have is 405 "
                                "METHOD_NOT_ALLOWED; HEAD is answered as GET."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas(src), "responses": error_responses(), "parameters": {
            "version": path_param("version", {"enum": list(src.versions)}, "An API version served (`[api] versions`)")},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "`casegate users token`, or an access token from /services/oauth2/token"},
                "clientBasic": {"type": "http", "scheme": "basic",
                                "description": "client_id and client_secret, for the token endpoint"}}},
    }


def _version() -> str:
    try:
        return version("casegate")
    except PackageNotFoundError:
        return "0"


def error_responses() -> dict[str, Any]:
    e = [("BadRequest", 400, None, "The request is not one the resource takes (errorCode says why)"),
         ("Unauthorized", 401, ["INVALID_SESSION_ID"], "No token, or one that is not good"),
         ("Forbidden", 403, ["INSUFFICIENT_ACCESS_OR_READONLY"], "Not this user's to change"),
         ("NotFound", 404, ["NOT_FOUND"], "No such record, resource or version"),
         ("MethodNotAllowed", 405, ["METHOD_NOT_ALLOWED"], "A method the resource does not have"),
         ("Timeout", 408, ["REQUEST_TIMEOUT"], "The body came slower than `[http] body_timeout`"),
         ("TooLarge", 413, ["REQUEST_ENTITY_TOO_LARGE"], "The body is larger than `[api] max_body_size`"),
         ("UnsupportedMediaType", 415, ["UNSUPPORTED_MEDIA_TYPE"], "The body is not application/json"),
         ("Unavailable", 503, ["SERVER_UNAVAILABLE"], "The case store cannot be reached: retry")]
    out = {name: answer(f"{status}: {text}", error(codes)) for name, status, codes, text in e}
    out["Unauthorized"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return out


def schemas(src: Source) -> dict[str, Schema]:
    out: dict[str, Schema] = {}
    for obj, spec in OBJECTS.items():
        out[obj] = record(spec)
        out[f"{obj}Create"] = body(spec, src.policy, "create")
        out[f"{obj}Update"] = body(spec, src.policy, "update")
        out[f"{obj}CollectionCreate"] = body(spec, src.policy, "create", in_collection=True)
        out[f"{obj}CollectionUpdate"] = body(spec, src.policy, "update", in_collection=True)
    return SHAPES | out


def _object(properties: Mapping[str, Schema], optional: Sequence[str] = (), *, closed: bool = True) -> Schema:
    """An object with `properties`, each required except `optional`."""
    out: Schema = {"type": "object", "required": [k for k in properties if k not in optional],
                   "properties": dict(properties)}
    return out | ({"additionalProperties": False} if closed else {})


STR, BOOL, INT = {"type": "string"}, {"type": "boolean"}, {"type": "integer"}
NULL_STR = {"type": ["string", "null"]}
STRINGS = {"type": "array", "items": STR}
URLS = _object({"sobject": STR, "describe": STR, "rowTemplate": STR})
FLAGS = ("custom", "createable", "updateable", "deletable", "queryable", "retrieveable", "searchable")
SHAPES: dict[str, Schema] = {
    "Error": _object({"message": STR, "errorCode": STR, "fields": STRINGS}),
    "CollectionError": _object({"statusCode": STR, "message": STR, "fields": STRINGS}),
    "SaveResult": _object({"id": STR, "success": {"const": True}, "errors": {"type": "array", "maxItems": 0}}),
    "UpsertResult": _object({"id": STR, "success": {"const": True}, "errors": {"type": "array", "maxItems": 0},
                             "created": BOOL}),
    "CollectionResult": {"type": "array", "items": _object(
        {"id": STR, "success": BOOL, "errors": {"type": "array", "items": ref("CollectionError")}}, ["id"])},
    "Attributes": _object({"type": STR, "url": STR}),
    "Version": _object({"label": STR, "url": STR, "version": STR}),
    "Resources": _object({name: STR for name in ("sobjects", "query", "queryAll", "composite", "limits")}),
    "Limits": {"type": "object", "required": ["DailyApiRequests"],
               "additionalProperties": _object({"Max": INT, "Remaining": INT})},
    "SObjectBasic": _object({"name": STR, "label": STR, "labelPlural": STR, "keyPrefix": STR,
                             **dict.fromkeys(FLAGS, BOOL), "layoutable": BOOL, "urls": URLS}),
    "GlobalDescribe": _object({"encoding": STR, "maxBatchSize": INT,
                               "sobjects": {"type": "array", "items": ref("SObjectBasic")}}),
    "BasicInfo": _object({"objectDescribe": ref("SObjectBasic"), "recentItems": {"type": "array"}}),
    "PicklistValue": _object({"value": STR, "label": STR, "active": BOOL, "defaultValue": BOOL,
                              "validFor": {"type": "null"}}),
    "FieldDescribe": _object({
        "name": STR, "label": STR, "type": {"enum": list(get_args(FieldType))}, "soapType": STR,
        **dict.fromkeys(("length", "byteLength", "digits", "precision", "scale"), INT),
        **dict.fromkeys(("nillable", "createable", "updateable", "defaultedOnCreate", "externalId", "unique",
                         "idLookup", "nameField", "autoNumber", "calculated", "custom", "filterable", "sortable",
                         "groupable", "restrictedPicklist"), BOOL),
        "referenceTo": STRINGS, "relationshipName": NULL_STR,
        "picklistValues": {"type": "array", "items": ref("PicklistValue")}}),
    "ChildRelationship": _object({"childSObject": STR, "field": STR, "relationshipName": STR, "cascadeDelete": BOOL,
                                  "restrictedDelete": BOOL, "deprecatedAndHidden": BOOL}),
    "Describe": _object({"name": STR, "label": STR, "labelPlural": STR, "keyPrefix": STR,
                         **dict.fromkeys(FLAGS, BOOL), "undeletable": BOOL,
                         "fields": {"type": "array", "items": ref("FieldDescribe")},
                         "childRelationships": {"type": "array", "items": ref("ChildRelationship")}, "urls": URLS}),
    "QueryResult": _object({"totalSize": {"type": "integer", "minimum": 0}, "done": BOOL,
                            "records": {"type": "array", "items": {
                                "type": "object", "required": ["attributes"],
                                "properties": {"attributes": _object({"type": STR, "url": STR}, ["url"])}}},
                            "nextRecordsUrl": STR}, ["nextRecordsUrl"]),
    "CompositeRequest": {"type": "object", "required": ["compositeRequest"], "properties": {
        "allOrNone": BOOL,
        "compositeRequest": {"type": "array", "minItems": 1, "maxItems": composite.MAX_SUBREQUESTS, "items": _object({
            "method": {"enum": list(composite.METHODS)},
            "url": {"type": "string", "pattern": r"^/services/data/v\d{1,3}\.\d(?:/.*)?$", "maxLength": 2000},
            "referenceId": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,80}$"},
            "body": {}, "httpHeaders": {"type": "object", "additionalProperties": STR}},
            ["body", "httpHeaders"])}}},
    "CompositeResponse": _object({"compositeResponse": {"type": "array", "items": _object({
        "body": {}, "httpHeaders": {"type": "object", "additionalProperties": STR}, "httpStatusCode": INT,
        "referenceId": STR})}}),
    "Token": _object({"access_token": STR, "refresh_token": STR, "instance_url": STR, "id": STR,
                      "token_type": {"const": "Bearer"}, "issued_at": {"type": "string", "pattern": "^[0-9]+$"},
                      "signature": STR}, ["refresh_token"]),
}
"""The shapes that do not depend on an object: what the handlers of ingest/api/ answer."""


class ApiDocument:
    """The document of this process's configuration, and its page, each made on first use and kept."""

    def __init__(self, ctx: ApiContext):
        self.ctx = ctx

    @cached_property
    def document(self) -> dict[str, Any]:
        return build(self.ctx.policy, self.ctx.api.versions)

    @cached_property
    def json(self) -> bytes:
        return json.dumps(self.document, separators=(",", ":")).encode()

    @cached_property
    def page(self) -> str:
        return render(self.document)

    async def serve_json(self, request: web.Request) -> web.Response:
        return web.Response(body=self.json, content_type=JSON)

    async def serve_page(self, request: web.Request) -> web.Response:
        return web.Response(text=self.page, content_type="text/html", headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
