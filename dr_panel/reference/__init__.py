"""Reference data that admins maintain: areas (local authorities) and agencies."""
