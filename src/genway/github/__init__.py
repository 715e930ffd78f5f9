"""GitHub: an organization's connection, projects pinned to repositories, webhook intake, and
the pull requests agent runs open."""
