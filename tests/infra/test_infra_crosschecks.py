"""infra/ against the app: the settings it reads, the webhook Event Grid calls, the scopes its roles need.

Each check is a function of its inputs, and each has a test feeding it a mutated input that it rejects.
"""

import json
import re
from pathlib import Path
from typing import Any

import shared.settings
from shared.events import DEALLOCATE_OPERATION, MAX_EVENT_AGE, RESOURCE_ACTION_SUCCESS
from tests.infra.infra_support import (
    INFRA,
    ROOT,
    body,
    names_in,
    optional_settings,
    registered_functions,
    resolve,
    settings_read,
    tree,
)

SETTINGS_SOURCE = ROOT / "shared" / "settings.py"
SAMPLE_SETTINGS = ROOT / "local.settings.sample.json"


# --- Settings ---------------------------------------------------------------------------------------


def bicep_app_settings() -> dict[str, Any]:
    core = tree("app/core.bicep")
    site_settings = core["resources"]["siteSettings"]
    assert site_settings["type"] == "Microsoft.Web/sites/config"
    assert body(site_settings) == {"parent": "site", "name": "appsettings", "properties": "appSettings"}
    return dict(core["variables"]["appSettings"]["value"])


def unset_settings(read: set[str], in_bicep: set[str], optional: set[str]) -> set[str]:
    return read - in_bicep - optional


def test_every_setting_the_app_reads_is_set_by_the_bicep_or_listed_optional() -> None:
    read = settings_read(SETTINGS_SOURCE.read_text(encoding="utf-8"), vars(shared.settings))
    assert {"CAPTURE_REQUESTS_QUEUE", "AZURE_CLIENT_ID", "JANITOR_SCOPES"} <= read  # the parse found them
    in_bicep = set(bicep_app_settings())
    optional = optional_settings()
    assert unset_settings(read, in_bicep, optional) == set()
    assert in_bicep & optional == set(), (
        "a setting is both set by the Bicep and listed as left at its default"
    )
    documented = set(json.loads(SAMPLE_SETTINGS.read_text(encoding="utf-8"))["SettingsHelp"])
    assert optional <= documented, (
        "an optional setting infra/README.md lists has no help in local.settings.sample.json"
    )
    assert optional <= read, "infra/README.md lists a setting the app does not read"


def test_a_new_setting_the_bicep_does_not_set_is_reported() -> None:
    source = SETTINGS_SOURCE.read_text(encoding="utf-8")
    mutated = source.replace(
        'authority_host=env.get("AZURE_AUTHORITY_HOST") or None,',
        'authority_host=env.get("AZURE_AUTHORITY_HOST") or env.get("CAPTURE_NEW_KNOB") or None,',
    )
    assert mutated != source
    read = settings_read(mutated, vars(shared.settings))
    assert unset_settings(read, set(bicep_app_settings()), optional_settings()) == {"CAPTURE_NEW_KNOB"}


def test_the_bicep_creates_the_queues_the_app_uses_by_the_apps_default_names() -> None:
    main, core = tree("main.bicep"), tree("app/core.bicep")
    defaults = shared.settings.Settings()
    assert main["parameters"]["captureRequestsQueue"]["default"] == defaults.capture_requests_queue
    assert main["parameters"]["captureResultsQueue"]["default"] == defaults.capture_results_queue
    settings = bicep_app_settings()
    queues = {
        body(r)["name"] for r in core["resources"].values() if r["type"].endswith("/queueServices/queues")
    }
    assert queues == {settings["CAPTURE_REQUESTS_QUEUE"], settings["CAPTURE_RESULTS_QUEUE"]}
    module_params = body(main["modules"]["core"])["params"]
    assert module_params["captureRequestsQueue"] == "captureRequestsQueue"


def test_host_storage_is_reached_by_identity_only() -> None:
    settings = bicep_app_settings()
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert "AzureWebJobsStorage" not in settings  # no connection string, so no account key
    for service in ("blob", "queue", "table"):
        assert f"AzureWebJobsStorage__{service}ServiceUri" in settings
    storage = body(tree("app/core.bicep")["resources"]["storage"])
    assert storage["properties"]["allowSharedKeyAccess"] is False
    core = tree("app/core.bicep")["resources"]
    assert body(core["insights"])["properties"]["DisableLocalAuth"] is True
    assert body(core["logs"])["properties"]["features"]["disableLocalAuth"] is True


def test_the_function_app_runs_the_readmes_python_on_flex_consumption() -> None:
    core = tree("app/core.bicep")
    runtime = body(core["resources"]["site"])["properties"]["functionAppConfig"]["runtime"]
    version = resolve(core, runtime["version"])
    assert runtime["name"] == "python"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Python {version}" in readme
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'requires-python = ">={version},' in pyproject
    assert body(core["resources"]["plan"])["sku"] == {"name": "FC1", "tier": "FlexConsumption"}


# --- The Event Grid subscription's webhook ----------------------------------------------------------------


def webhook_problems(function_name: str, route: str, functions: list[dict[str, Any]]) -> list[str]:
    match = next((f for f in functions if f["name"] == function_name), None)
    if match is None:
        return [f"no function {function_name!r} in function_app.py"]
    problems = []
    if match["trigger"] != "httpTrigger":
        problems.append(f"{function_name} is a {match['trigger']}, not an HTTP webhook")
    if match["route"] != route:
        problems.append(f"{function_name}'s route is {match['route']!r}, the subscription calls {route!r}")
    if "POST" not in [m.upper() for m in match["methods"] or []]:
        problems.append(f"{function_name} does not accept POST")
    return problems


def subscription_target() -> tuple[str, str]:
    """The function and route main.bicep gives the Event Grid module, checked to be what it calls."""
    main = tree("main.bicep")
    params = body(main["modules"]["deallocationEvents"])["params"]
    function_name, route = resolve(main, params["functionName"]), resolve(main, params["route"])
    events = tree("app/events.bicep")
    webhook = events["resources"]["webhook"]
    assert webhook["existing"] and webhook["type"] == "Microsoft.Web/sites/functions"
    assert body(webhook)["name"] == "functionName"  # its key is the one the URL carries
    destination = body(events["resources"]["deallocations"])["properties"]["destination"]
    assert destination["endpointType"] == "WebHook"
    url = destination["properties"]["endpointUrl"]
    assert re.fullmatch(
        r"https://\$\{site\.properties\.defaultHostName\}/api/\$\{route\}\?code=\$\{webhook\.listKeys\(\)\.default\}",
        url,
    ), url
    return function_name, route


def test_the_event_subscription_calls_a_registered_webhook_function() -> None:
    function_name, route = subscription_target()
    assert function_name == "capture_on_deallocation"
    assert webhook_problems(function_name, route, registered_functions()) == []


def test_a_subscription_to_a_missing_or_moved_function_is_reported() -> None:
    functions = registered_functions()
    assert webhook_problems("capture_on_dealloc", "eventgrid/deallocations", functions) != []
    assert webhook_problems("capture_on_deallocation", "eventgrid/deallocation", functions) != []
    assert webhook_problems("capture_from_queue", "eventgrid/deallocations", functions) != []


def test_the_subscription_delivers_only_successful_deallocations_the_app_accepts() -> None:
    events = tree("app/events.bicep")
    props = body(events["resources"]["deallocations"])["properties"]
    assert [resolve(events, t) for t in props["filter"]["includedEventTypes"]] == [RESOURCE_ACTION_SUCCESS]
    (advanced,) = props["filter"]["advancedFilters"]
    assert advanced["key"] == "data.operationName" and advanced["operatorType"] == "StringIn"
    assert [resolve(events, v) for v in advanced["values"]] == [DEALLOCATE_OPERATION]
    assert props["eventDeliverySchema"] == "EventGridSchema"
    assert props["retryPolicy"]["eventTimeToLiveInMinutes"] * 60 <= MAX_EVENT_AGE.total_seconds()
    topic = body(events["resources"]["topic"])["properties"]
    assert topic["topicType"] == "Microsoft.Resources.ResourceGroups"


# --- Role scopes ------------------------------------------------------------------------------------------

SCOPE_KINDS = {
    "sourceGroups",
    "buildGroup",
    "galleries",
    "exportAccounts",
    "vhdSourceAccounts",
    "subscription",
}


def assigned_kinds() -> dict[str, str]:
    """For each scope kind main.bicep assigns roles at, the parameter that lists those scopes."""
    main = tree("main.bicep")
    parameters = set(main["parameters"])

    def param_of(variable: str) -> str:
        (param,) = names_in(main["variables"][variable]["value"]) & parameters
        return param

    kinds: dict[str, str] = {}
    for module in main["modules"].values():
        config, params = module["config"], body(module).get("params", {})
        path = module["detail"]["path"]
        if path == "app/group-roles.bicep":
            looped = config.get("loop_type", {}).get("detail", {}).get("array_name")
            variable = looped or body(module)["scope"]["function"]["parameters"]["resource_group_name"]
            kinds[params["scopeKind"]] = param_of(variable)
        elif path == "app/account-roles.bicep":
            kind = params.get("scopeKind", "exportAccounts")  # the module's default
            kinds[kind] = param_of(config["loop_type"]["detail"]["array_name"])
    if "subscriptionRoles" in main["resources"]:
        kinds["subscription"] = "(the deployment's subscription)"
    return kinds


def _member(name: str, member: str) -> dict[str, Any]:
    """pycep's tree of ``name.member``."""
    return {"operator": {"type": "property_accessor", "operands": {"operand_1": name, "operand_2": member}}}


def _groups(value: str) -> list[str]:
    return [g for g in value.replace(" ", "").split(",") if g]


def uncovered(world: dict[str, Any], parameters: dict[str, Any], kinds: dict[str, str]) -> list[str]:
    """What the example world uses that the role scopes, with these parameter values, do not reach."""
    values = {k: str(v["value"]) for k, v in parameters.items()}
    scope_groups = {
        kind: {g.lower() for g in _groups(values.get(param, ""))} for kind, param in kinds.items()
    }
    accounts = {a.lower() for a in _groups(values.get(kinds.get("exportAccounts", ""), ""))}
    vhd_sources = {a.lower() for a in _groups(values.get(kinds.get("vhdSourceAccounts", ""), ""))}
    account_groups = {a.split("/")[4] for a in accounts | vhd_sources}
    sub = world["subscriptions"][0]["id"]
    problems = []
    for vm in world["virtualMachines"]:
        if vm["resourceGroup"].lower() not in scope_groups.get("sourceGroups", set()):
            problems.append(f"VM {vm['name']}: its group {vm['resourceGroup']} is not a source group")
    for sa in world["storageAccounts"]:
        sa_id = f"/subscriptions/{sub}/resourcegroups/{sa['resourceGroup']}/providers/microsoft.storage/storageaccounts/{sa['name']}"
        if sa_id.lower() not in accounts | vhd_sources:
            problems.append(f"storage account {sa['name']} is neither an export nor a VHD source account")
    for gallery in world["galleries"]:
        if gallery["resourceGroup"].lower() not in scope_groups.get("galleries", set()):
            problems.append(f"gallery {gallery['name']}: its group is not a gallery group")
    reached = set().union(*scope_groups.values(), account_groups)
    for group in world["resourceGroups"]:
        if group["name"].lower() not in reached:
            problems.append(f"resource group {group['name']} is in no role scope")
    return problems


def _world() -> dict[str, Any]:
    return dict(json.loads((ROOT / "examples" / "world.json").read_text(encoding="utf-8")))


def _world_parameters() -> dict[str, Any]:
    return dict(json.loads((INFRA / "world.parameters.json").read_text(encoding="utf-8"))["parameters"])


def test_every_scope_kind_of_the_role_list_is_assigned() -> None:
    actions = json.loads((INFRA.parent / "shared" / "app-actions.json").read_text(encoding="utf-8"))
    kinds = assigned_kinds()
    assert set(kinds) == SCOPE_KINDS
    for role in actions["roles"]:
        assert role["scope"] in kinds, f"role {role['name']}: main.bicep assigns nothing at {role['scope']!r}"
        assert role["actions"] or role["dataActions"], f"role {role['name']} allows nothing"
        assert not any("*" in a for a in role["actions"] + role["dataActions"]), (
            f"role {role['name']} has a wildcard"
        )
    main = tree("main.bicep")
    load = main["variables"]["appActions"]["value"]["function"]
    assert (
        load["type"] == "load_json_content"
        and load["parameters"]["file_path"] == "../shared/app-actions.json"
    )
    app_roles = main["resources"]["appRoles"]
    assert app_roles["config"]["loop_type"]["detail"]["array_name"] == _member("appActions", "roles")
    (permission,) = body(app_roles)["properties"]["permissions"]
    assert permission["actions"] == _member("role", "actions")
    assert permission["dataActions"] == _member("role", "dataActions")


def test_the_role_scopes_cover_every_resource_group_of_the_example_world() -> None:
    kinds = assigned_kinds()
    assert (
        kinds["sourceGroups"] == "sourceResourceGroups" and kinds["exportAccounts"] == "exportStorageAccounts"
    )
    assert uncovered(_world(), _world_parameters(), kinds) == []


def test_a_world_group_outside_the_role_scopes_is_reported(tmp_path: Path) -> None:
    world = _world()
    world["resourceGroups"].append({"name": "rg-other", "location": "westeurope"})
    world["virtualMachines"].append(
        {**world["virtualMachines"][0], "name": "vm-other", "resourceGroup": "rg-other"}
    )
    world["storageAccounts"].append({**world["storageAccounts"][0], "name": "stother"})
    world["galleries"].append({"name": "galOther", "resourceGroup": "rg-other", "location": "westeurope"})
    problems = uncovered(world, _world_parameters(), assigned_kinds())
    assert problems == [
        "VM vm-other: its group rg-other is not a source group",
        "storage account stother is neither an export nor a VHD source account",
        "gallery galOther: its group is not a gallery group",
        "resource group rg-other is in no role scope",
    ]


def parameter_file_problems(bicep: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    """A parameter file's names that main.bicep does not declare, and required parameters it leaves out."""
    declared = bicep["parameters"]
    problems = [f"{name} is not a parameter of main.bicep" for name in parameters if name not in declared]
    for name, decl in declared.items():
        if decl.get("default") is None and name not in parameters:
            problems.append(f"{name} (required) is not set")
    return problems


def test_the_parameter_files_set_only_parameters_main_bicep_declares() -> None:
    main = tree("main.bicep")
    azd = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameter_file_problems(main, azd) == []
    assert parameter_file_problems(main, _world_parameters()) == []
    misspelt = {**_world_parameters(), "sourceResourceGroup": {"value": "rg-build"}}
    del misspelt["location"]
    assert parameter_file_problems(main, misspelt) == [
        "sourceResourceGroup is not a parameter of main.bicep",
        "location (required) is not set",
    ]


def test_the_postdeploy_hook_turns_on_the_parameter_that_creates_the_event_subscriptions() -> None:
    azure_yaml = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    azd = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    (env_name,) = re.findall(r"\$\{(\w+)=false\}", azd["eventSubscriptionEnabled"]["value"])
    assert f"azd env set {env_name} true" in azure_yaml and "azd provision" in azure_yaml
    assert (
        tree("main.bicep")["modules"]["deallocationEvents"]["config"]["condition"]
        == "eventSubscriptionEnabled"
    )
    ignored = (ROOT / ".funcignore").read_text(encoding="utf-8").split()
    assert {"infra/", ".venv-infra/", "tests/"} <= set(ignored)  # not in the deployed package
    # The app reads its action list at run time (preflight's permission check): it must be deployed.
    assert not any(p.lstrip("/").startswith(("shared", "*.json")) for p in ignored)
