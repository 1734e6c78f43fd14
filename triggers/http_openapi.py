"""``GET /api/openapi.json``: the OpenAPI 3.1 document of the HTTP API (``shared.openapi``).

Anonymous, unlike the rest of the API: the document holds no secret and nothing of this deployment (it
is generated from the code and is the repository's ``docs/openapi.json``, word for word), so a key would
guard nothing, while API tools (an API gateway's import, client generators, schema-based testers) can
read it without being handed a function key.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from shared.openapi import document_text

openapi_bp = df.Blueprint()


@openapi_bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_openapi(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(document_text(), status_code=200, mimetype="application/json")
