"""The administrator's pages: accounts, areas and agencies. Admins see no case content."""
