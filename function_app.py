"""Composition root of the VM Image Pipeline Function App: one blueprint per concern, nothing else."""

import azure.durable_functions as df
import azure.functions as func

from activities import bp as activities_bp
from activities.notices import bp as notices_bp
from orchestrators import bp as orchestrators_bp
from triggers import http_bp
from triggers.eventgrid_captures import eventgrid_bp
from triggers.http_cancel import cancel_bp
from triggers.http_list import list_bp
from triggers.http_marketplace_sas import marketplace_sas_bp
from triggers.http_migrations import migrations_bp
from triggers.http_openapi import openapi_bp
from triggers.janitor import janitor_bp
from triggers.migration_cancel import migration_cancel_bp
from triggers.queue_captures import queue_bp

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(activities_bp)
app.register_functions(notices_bp)
app.register_functions(orchestrators_bp)
app.register_functions(http_bp)
app.register_functions(cancel_bp)
app.register_functions(list_bp)
app.register_functions(openapi_bp)
app.register_functions(queue_bp)
app.register_functions(eventgrid_bp)
app.register_functions(janitor_bp)
app.register_functions(marketplace_sas_bp)
app.register_functions(migrations_bp)
app.register_functions(migration_cancel_bp)
