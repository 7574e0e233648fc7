"""Reports: metrics tables, confusion matrices and their pictures."""
