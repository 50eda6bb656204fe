"""The dashboard and the API (`hevcq serve`)."""
