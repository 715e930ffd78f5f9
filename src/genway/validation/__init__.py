"""PR validation: a pull request's head checked out into a fresh snapshot, its project's setup,
test and lint commands run in the sandbox, the outcome reported to GitHub, then merged or sent
back to an agent."""
