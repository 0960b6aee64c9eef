"""The panel's review work on a case: information requests to agencies and their returns
(later: meetings, findings, actions, safety plans)."""
