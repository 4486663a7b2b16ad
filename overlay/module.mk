# overlay/ — filled in by its issue.
