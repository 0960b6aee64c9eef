"""Actions and safety plans: the coordinator sets actions on a reviewed case, the owner agency
updates them, the tracker lists them; the panel keeps one safety plan per person at risk."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from wtforms import SelectChoice as Opt

from dr_panel.auth.models import Role
from dr_panel.cases.models import Case
from dr_panel.extensions import db
from dr_panel.forms import whole_number
from dr_panel.reference.services import all_agencies
from dr_panel.reviews import actions as act
from dr_panel.reviews import schemas
from dr_panel.reviews.forms import ACTION_STATUS_LABELS, ActionForm, ActionUpdateForm, PlanForm
from dr_panel.reviews.routes.blueprint import PANEL, bp, me
from dr_panel.security import deny, get_or_404, roles

ACTION_READERS = roles(Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR)


def _action_form(**kwargs: Any) -> ActionForm:
    form = ActionForm(**kwargs)
    form.agency.choices = [Opt("", "Choose the agency")] + [
        Opt(a.code, a.label) for a in all_agencies(active_only=True)
    ]
    return form


@bp.app_template_global()
def case_actions_panel(case: Case) -> dict[str, Any]:
    """For the case page: the case's actions, the form to add one (coordinators, once the case
    is reviewed), and the person's safety plan."""
    user = me()
    can_add = case.can_edit(user) and case.status in act.OPEN_FOR_ACTIONS
    return {
        "actions": act.case_actions(case),
        "form": _action_form() if can_add else None,
        "plan": act.plan_for(case.person),
        "labels": ACTION_STATUS_LABELS,
        "text_of": act.text_of,
    }


@bp.route("/cases/<uuid>/actions", methods=["POST"])
@roles(Role.COORDINATOR)
def add_action(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="edit")
    form = _action_form()
    if form.validate_on_submit():
        agency = next(
            (a for a in all_agencies(active_only=True) if a.code == form.agency.data), None
        )
        try:
            act.create_action(
                case,
                description=form.description.data or "",
                agency=agency,
                due_on=form.due_on.data,
                by=me(),
            )
        except act.ActionError as err:
            db.session.rollback()
            flash(str(err), "error")
        else:
            db.session.commit()
            flash(f"Action added for {agency.name if agency else 'the agency'}.", "success")
    else:
        for errors in form.errors.values():
            flash(" ".join(errors), "error")
    return redirect(url_for("cases.view_case", uuid=case.uuid) + "#actions")


@bp.route("/actions")
@ACTION_READERS
def actions() -> Any:
    return render_template(
        "reviews/actions.html", groups=act.tracker(me()), labels=ACTION_STATUS_LABELS,
        describe=lambda a: act.text_of(a, "description")
    )


@bp.route("/actions/<uuid>", methods=["GET", "POST"])
@ACTION_READERS
def action(uuid: str) -> Any:
    a = get_or_404(act.Action, uuid, need="view")
    can_update = a.can_update(me())
    form = ActionUpdateForm()
    status = 200
    if request.method == "GET":
        form.status.data = a.status.value
        form.evidence.data = act.text_of(a, "evidence") or ""
        form.reason.data = act.text_of(a, "not_accepted_reason") or ""
        form.version.data = str(a.version)
    elif not can_update:
        deny(object_type="actions", object_uuid=a.uuid, why="record:update")
    elif form.validate_on_submit():
        change = schemas.action_change(
            schemas.ActionUpdate.model_construct(
                status=form.status.data, evidence=form.evidence.data, reason=form.reason.data
            )
        )
        try:
            version = whole_number(form.version.data)
            act.update_action(a, change, by=me(), expected_version=version)
        except act.ActionError as err:
            db.session.rollback()
            db.session.refresh(a)
            field = err.field if err.field in form else "status"
            form[field].errors = [*form[field].errors, str(err)]
            status = 409 if isinstance(err, act.StaleAction) else 400
        else:
            db.session.commit()
            flash("Action updated.", "success")
            return redirect(url_for("reviews.action", uuid=a.uuid))
    else:
        status = 400
    return render_template(
        "reviews/action.html",
        action=a,
        form=form if can_update else None,
        description=act.text_of(a, "description"),
        evidence=act.text_of(a, "evidence"),
        reason=act.text_of(a, "not_accepted_reason"),
        labels=ACTION_STATUS_LABELS,
        show_case=a.case.can_view(me()),
    ), status


def _plan_form(case: Case) -> PlanForm:
    form = PlanForm()
    form.lead.choices = [Opt("", "Choose the lead professional")] + [
        Opt(str(u.uuid), u.display_name + (f" ({u.agency.name})" if u.agency else ""))
        for u in act.lead_candidates(case)
    ]
    form.lead_agency.choices = [Opt("", "Not given")] + [
        Opt(a.code, a.label) for a in all_agencies(active_only=True)
    ]
    return form


@bp.route("/cases/<uuid>/safety-plan", methods=["GET", "POST"])
@PANEL
def safety_plan(uuid: str) -> Any:
    case = get_or_404(Case, uuid, need="view")
    plan = act.plan_for(case.person)
    form = _plan_form(case)
    status = 200
    if request.method == "GET":
        if plan is not None:
            form.status.data = plan.status.value
            form.risks.data = act.text_of(plan, "risks") or ""
            form.protective.data = act.text_of(plan, "protective") or ""
            form.interventions.data = [i.value for i in plan.intervention_list]
            form.lead.data = str(plan.lead_user.uuid)
            form.lead_agency.data = plan.lead_agency.code if plan.lead_agency else ""
            form.review_on.data = plan.review_on
            form.version.data = str(plan.version)
        else:
            user = me()
            form.status.data = act.PlanStatus.OPEN.value
            form.lead.data = str(user.uuid)
            form.lead_agency.data = user.agency.code if user.agency else ""
    elif form.validate_on_submit():
        data = schemas.plan_input(
            schemas.SafetyPlanUpdate.model_construct(
                status=form.status.data,
                risks=form.risks.data,
                protective=form.protective.data,
                interventions=list(form.interventions.data or []),
                lead=form.lead.data or "",
                lead_agency=form.lead_agency.data or None,
                review_on=form.review_on.data,
            ),
            case,
        )
        try:
            # An empty version: the form was opened before any plan existed.
            version = whole_number(form.version.data, default=0)
            plan = act.save_plan(case, data, by=me(), expected_version=version)
        except act.PlanError as err:
            db.session.rollback()
            plan = act.plan_for(case.person)
            field = err.field if err.field in form else "risks"
            form[field].errors = [*form[field].errors, str(err)]
            status = 409 if isinstance(err, act.StalePlan) else 400
        else:
            db.session.commit()
            flash("Safety plan saved.", "success")
            return redirect(url_for("reviews.safety_plan", uuid=case.uuid))
    else:
        status = 400
    return render_template(
        "reviews/safety_plan.html",
        case=case,
        plan=plan,
        form=form,
        new_nfos=[
            c
            for c in act.new_nfos_with_plans(me().area_ids)
            if plan is not None and c.person_id == plan.person_id
        ],
    ), status


@bp.route("/safety-plans")
@PANEL
def safety_plans() -> Any:
    return render_template(
        "reviews/safety_plans.html",
        plans=act.plans_for(me()),
        new_nfos=act.new_nfos_with_plans(me().area_ids),
    )
