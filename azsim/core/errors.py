"""The one place that renders Azure errors: ARM error envelope, status, code, message, target, details.

Handlers raise ``ArmError`` (or use the named factories below, whose texts are Azure's where known:
see ``docs/azure-facts.md`` and ``docs/azsim-arm.md``); the server turns it into a response.
"""

from __future__ import annotations

from typing import Any


class ArmError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        details: list[dict[str, Any]] | None = None,
        innererror: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"({code}) {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details
        self.innererror = innererror
        self.headers = headers or {}

    def error_object(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            err["target"] = self.target
        if self.details:
            err["details"] = self.details
        if self.innererror:
            err["innererror"] = self.innererror
        return err

    def body(self) -> dict[str, Any]:
        return {"error": self.error_object()}


_RNF_HINT = "For more details please go to https://aka.ms/ARMResourceNotFoundFix"


def resource_not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. {_RNF_HINT}",
    )


def resource_group_not_found(resource_group: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{resource_group}' could not be found.")


def subscription_not_found(subscription: str) -> ArmError:
    return ArmError(404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found.")


def operation_not_allowed(message: str, status: int = 409) -> ArmError:
    return ArmError(status, "OperationNotAllowed", message)


def invalid_parameter(message: str, target: str | None = None) -> ArmError:
    return ArmError(400, "InvalidParameter", message, target=target)


def bad_request(message: str, target: str | None = None) -> ArmError:
    return ArmError(400, "BadRequest", message, target=target)


def authorization_failed(object_id: str, action: str, scope: str) -> ArmError:
    return ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{object_id}' with object id '{object_id}' does not have authorization to perform action "
        f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please "
        "refresh your credentials.",
    )


def linked_authorization_failed(object_id: str, action: str, scope: str) -> ArmError:
    return ArmError(
        403,
        "LinkedAuthorizationFailed",
        f"The client '{object_id}' with object id '{object_id}' has permission to perform the requested action "
        f"but does not have permission to perform action '{action}' on the linked scope '{scope}' or the "
        "linked scope is invalid.",
    )


def invalid_authentication_token(reason: str) -> ArmError:
    return ArmError(401, "InvalidAuthenticationToken", f"The access token is invalid. {reason}".strip())
