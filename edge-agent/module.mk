# edge-agent/ — filled in by its issue.
