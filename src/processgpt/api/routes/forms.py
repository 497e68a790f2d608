"""``/v1/forms``: the forms people's work items ask for (``tool: formHandler:<form id>``),
stored when a definition using them is published. Read-only here; a member's key reads them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from processgpt.api.deps import ProcessDefinitionsDep, Tenant
from processgpt.api.errors import AUTHENTICATED, responses
from processgpt.protocols.views import FormView

router = APIRouter(
    prefix="/v1/forms", tags=["process definitions"], responses=responses(*AUTHENTICATED)
)

FormId = Annotated[str, Path(min_length=1, max_length=200, examples=["approval_form"])]


@router.get("/{form_id}", responses=responses(404, 422))
async def get_form(form_id: FormId, tenant_id: Tenant, repo: ProcessDefinitionsDep) -> FormView:
    """A form: its fields and HTML. 404 `form_not_found` when the tenant has no such form."""
    form = await repo.form(tenant_id, form_id)
    return FormView(id=form.id, proc_def_id=form.proc_def_id, fields=form.fields, html=form.html)
