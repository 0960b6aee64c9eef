"""Privacy at every exit: the one identifier detector (``detector``) that alert drafts, drug-concern
reports, e-mails and other free text pass through before they leave dr-panel, and the blind
indexes of name and address tokens (``tokens``, ``models``) it finds stored people by."""
