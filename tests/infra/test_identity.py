"""Identity construct: the Cognito user pool, its web client and the admin group."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

from tests.infra.synth import ENVIRONMENTS, WEB_ORIGIN, Json, one


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cognito_user_pool(env: str, assertions: dict[str, Template]) -> None:
    template = assertions[env]
    template.has_resource_properties(
        "AWS::Cognito::UserPool",
        {
            "UsernameAttributes": ["email"],
            "MfaConfiguration": "OPTIONAL",
            "EnabledMfas": ["SOFTWARE_TOKEN_MFA"],
            "Policies": {
                "PasswordPolicy": Match.object_like(
                    {
                        "MinimumLength": 8,
                        "RequireLowercase": True,
                        "RequireUppercase": True,
                        "RequireNumbers": True,
                        "RequireSymbols": True,
                    }
                )
            },
            "AccountRecoverySetting": {
                "RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]
            },
        },
    )
    template.has_resource_properties(
        "AWS::Cognito::UserPoolClient",
        {
            "GenerateSecret": False,
            "AllowedOAuthFlows": ["code"],
            "AllowedOAuthFlowsUserPoolClient": True,
            "AllowedOAuthScopes": Match.array_with(["openid", "email", "profile"]),
            "CallbackURLs": [WEB_ORIGIN],
            "PreventUserExistenceErrors": "ENABLED",
            "RefreshTokenValidity": Match.any_value(),
        },
    )
    template.has_resource_properties("AWS::Cognito::UserPoolGroup", {"GroupName": "admin"})


@pytest.mark.parametrize(("env", "self_sign_up"), [("dev", True), ("prod", False)])
def test_self_sign_up_and_retention(
    env: str, self_sign_up: bool, templates: dict[str, Json]
) -> None:
    pool = one(templates[env], "AWS::Cognito::UserPool")
    admin_only = pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"]
    assert admin_only is not self_sign_up
    assert pool["DeletionPolicy"] == ("Delete" if self_sign_up else "Retain")
