"""The reviews pages: one blueprint, ``reviews``, with one module per part of the work. Every rule
of the area reads here:

=====  =================================  =======================================================
POST   /cases/<uuid>/requests             coordinator; ``can_edit`` (``requests``)
GET    /requests/<uuid>                   coordinator, panel member; ``InfoRequest.can_view``
GET    /requests                          agency contributor: their agency's queue
GET    /requests/<uuid>/answer            agency contributor; ``InfoRequest.can_answer``
POST   /requests/<uuid>/answer            agency contributor; ``can_answer`` (reveal audited)
GET    /meetings                          coordinator, panel member (``meetings``)
GET    /meetings/new, POST                coordinator
GET    /meetings/<uuid>                   coordinator, panel member; ``Meeting.can_view``; a
                                          panel member accepts the statement first
POST   /meetings/<uuid>/accept            coordinator, panel member; ``Meeting.can_view``
POST   /meetings/<uuid>/agenda            coordinator; ``Meeting.can_edit``
POST   /meetings/<uuid>/members           coordinator; ``Meeting.can_edit``
POST   /meetings/<uuid>/attendance        coordinator; ``Meeting.can_edit``
POST   /meetings/<uuid>/minutes/<case>    coordinator; ``Meeting.can_edit``
GET    /meetings/<uuid>/pack              coordinator, panel member; ``can_view`` (audited)
GET    /cases/<uuid>/findings, POST       coordinator, panel member; ``can_view``; saving
                                          ``can_edit_findings`` (``findings``)
POST   /cases/<uuid>/actions              coordinator; ``can_edit`` (``actions``)
GET    /actions                           coordinator, panel member, agency contributor
GET    /actions/<uuid>, POST              the three above; ``Action.can_view``; saving
                                          ``can_update`` (403, audited)
GET    /cases/<uuid>/safety-plan, POST    coordinator, panel member; ``can_view``
GET    /safety-plans                      coordinator, panel member
=====  =================================  =======================================================

The JSON API of the same work is ``dr_panel.reviews.api``.
"""

from __future__ import annotations

from dr_panel.reviews.routes import actions, findings, meetings, requests
from dr_panel.reviews.routes.blueprint import bp
from dr_panel.reviews.routes.requests import request_form

__all__ = ["actions", "bp", "findings", "meetings", "request_form", "requests"]
