"""lockengined: the unix-socket daemon that holds delta and resource leases for local processes."""
