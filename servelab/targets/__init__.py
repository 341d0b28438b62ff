"""Where a course manifest runs: `local` (this machine) or, later, `kubernetes`."""
