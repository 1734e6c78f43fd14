"""Sample app: orchestrations that report the versions devhost gives them (orchestration versioning)."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    """Waits for "go" (a deployment may happen meanwhile), then starts two children."""
    yield context.wait_for_external_event("go")
    explicit = yield context.call_sub_orchestrator("child", version="0.9")
    default = yield context.call_sub_orchestrator("child")
    return [context.version, explicit, default]


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):
    return context.version
    yield  # a generator, as every orchestrator


@app.orchestration_trigger(context_name="context")
def looping(context: df.DurableOrchestrationContext):
    """Continues as new once; returns the version of each execution."""
    seen = context.get_input() or []
    seen = [*seen, context.version]
    if len(seen) < 2:
        yield context.wait_for_external_event("again")
        context.continue_as_new(seen)
        return None
    return seen
