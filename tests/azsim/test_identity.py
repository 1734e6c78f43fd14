"""Managed identity: DefaultAzureCredential against the App Service endpoint, tokens Azurite and ARM accept."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.blob import BlobServiceClient

from azsim.identity import ARM_AUDIENCE, STORAGE_AUDIENCE, Identity, TokenIssuer
from azsim.interfaces import InvalidToken
from tests.azsim.azsim_test_names import TENANT


def _claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_default_credential_gets_an_arm_token_from_the_endpoint(storage_env):
    token = DefaultAzureCredential().get_token("https://management.azure.com/.default").token
    claims = _claims(token)
    assert claims["aud"] == "https://management.azure.com"
    assert claims["iss"] == f"https://sts.windows.net/{TENANT}/"
    assert claims["tid"] == TENANT
    assert claims["oid"] == storage_env.default.object_id
    assert claims["appid"] == storage_env.default.client_id
    assert claims["nbf"] <= time.time() < claims["exp"]
    principal = storage_env.issuer.verifier().verify(f"Bearer {token}", audience=ARM_AUDIENCE)
    assert principal.object_id == storage_env.default.object_id
    assert principal.tenant_id == TENANT


def test_client_id_selects_another_identity(storage_env):
    cred = ManagedIdentityCredential(client_id=storage_env.other.client_id)
    token = cred.get_token("https://storage.azure.com/.default").token
    assert _claims(token)["oid"] == storage_env.other.object_id
    assert _claims(token)["aud"] == "https://storage.azure.com"

    unknown = ManagedIdentityCredential(client_id=str(uuid.uuid4()))
    with pytest.raises(ClientAuthenticationError):
        unknown.get_token("https://storage.azure.com/.default")


def test_storage_token_is_accepted_by_azurite(storage_env):
    service = BlobServiceClient(storage_env.customer_url, credential=DefaultAzureCredential())
    name = f"oauth-{uuid.uuid4().hex[:8]}"
    service.create_container(name)
    assert name in [c.name for c in service.list_containers()]


def test_azurite_refuses_an_arm_token_and_an_expired_token(storage_env):
    class Fixed:
        def __init__(self, token: str) -> None:
            self.token = token

        def get_token(self, *scopes, **kwargs):
            from azure.core.credentials import AccessToken

            return AccessToken(self.token, int(time.time()) + 3600)

    arm_token = storage_env.issuer.mint(storage_env.default, "https://management.azure.com")
    expired = TokenIssuer(
        TENANT, [storage_env.default], storage_env.default, clock=lambda: time.time() - 7200
    ).mint(storage_env.default, "https://storage.azure.com", lifetime=3600)
    for token, why in ((arm_token, "audience"), (expired, "expired")):
        service = BlobServiceClient(storage_env.customer_url, credential=Fixed(token))
        with pytest.raises(HttpResponseError) as err:
            list(service.list_containers())
        assert err.value.status_code in (401, 403), why


def test_verifier_rejects_bad_tokens(storage_env):
    issuer = storage_env.issuer
    verifier = issuer.verifier()
    good = issuer.mint(storage_env.default, "https://management.azure.com/")
    assert verifier.verify(f"Bearer {good}", audience=ARM_AUDIENCE).audience == ARM_AUDIENCE

    storage = issuer.mint(storage_env.default, "https://storage.azure.com")
    past = TokenIssuer(
        TENANT, [], storage_env.default, signing_key=issuer.signing_key, clock=lambda: 1_000_000
    )
    expired = past.mint(storage_env.default, "https://management.azure.com")
    foreign = TokenIssuer(str(uuid.uuid4()), [], storage_env.default, signing_key=issuer.signing_key).mint(
        storage_env.default, "https://management.azure.com"
    )
    forged = TokenIssuer(TENANT, [], storage_env.default).mint(
        storage_env.default, "https://management.azure.com"
    )
    header, _claims_part, sig = good.split(".")
    tampered_claims = base64.urlsafe_b64encode(
        json.dumps({**_claims(good), "oid": str(uuid.uuid4())}).encode()
    ).rstrip(b"=")
    cases = {
        "missing": None,
        "not bearer": f"Basic {good}",
        "malformed": "Bearer abc.def",
        "garbage": "Bearer !!!.???.***",
        "wrong audience": f"Bearer {storage}",
        "expired": f"Bearer {expired}",
        "other tenant": f"Bearer {foreign}",
        "other signing key": f"Bearer {forged}",
        "tampered": f"Bearer {header}.{tampered_claims.decode()}.{sig}",
    }
    for why, value in cases.items():
        with pytest.raises(InvalidToken):
            verifier.verify(value, audience=ARM_AUDIENCE)
            pytest.fail(f"accepted a token that is {why}")
    assert verifier.verify(f"Bearer {storage}", audience=STORAGE_AUDIENCE).audience == STORAGE_AUDIENCE


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_endpoint_requires_the_identity_header_and_a_known_resource(storage_env):
    base = storage_env.identity.url + "?api-version=2019-08-01"
    secret = {"X-IDENTITY-HEADER": storage_env.identity.identity_header}
    status, _ = _get(base + "&resource=https://management.azure.com", {"X-IDENTITY-HEADER": "wrong"})
    assert status == 401
    status, body = _get(base + "&resource=https://vault.example.invalid", secret)
    assert status == 400 and "AADSTS500011" in body["message"]
    status, body = _get(base + "&resource=https://management.azure.com", secret)
    assert status == 200 and body["token_type"] == "Bearer"
    assert int(body["expires_on"]) > time.time() + 3600
    status, body = _get(
        base + f"&resource=https://storage.azure.com&principal_id={storage_env.other.object_id}", secret
    )
    assert status == 200 and _claims(body["access_token"])["oid"] == storage_env.other.object_id


def test_identity_is_hashable_and_default_is_served_without_selector():
    ident = Identity(object_id="o", client_id="c")
    issuer = TokenIssuer(TENANT, [], ident)
    assert (
        issuer.find() is ident and issuer.find(client_id="C") is ident and issuer.find(object_id="x") is None
    )
