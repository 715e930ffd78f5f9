"""How a Genway `agent.run` job looks through Codegen's API: statuses, runs and log entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from genway.agents.models import PENDING, AgentPlan
from genway.agents.plans import PLAN_READY
from genway.agents.schemas import AgentRunLog, AgentRunResponse, GithubPullRequest, SourceType
from genway.jobs.events import EventType
from genway.jobs.models import Job, JobEvent
from genway.jobs.states import JobStatus

ACTIVE = "ACTIVE"
COMPLETE = "COMPLETE"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TIMEOUT = "TIMEOUT"


def codegen_status(job: Job, plan: AgentPlan | None = None) -> str:
    """Codegen's upper-case status: ACTIVE until the job ends (PLAN_READY while its plan
    waits for confirmation), then how it ended."""
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        if plan is not None and plan.status == PENDING and job.status == JobStatus.QUEUED:
            return PLAN_READY
        return ACTIVE
    if job.status == JobStatus.SUCCEEDED:
        return COMPLETE
    if job.status == JobStatus.CANCELLED:
        return CANCELLED
    return TIMEOUT if (job.error or {}).get("code") == "timeout" else FAILED


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def run_url(base_url: str, job: Job) -> str:
    return f"{base_url.rstrip('/')}/v1/organizations/{job.org_id}/agent/run/{job.id}"


def run_response(job: Job, base_url: str, plan: AgentPlan | None = None) -> AgentRunResponse:
    result = job.result or {}
    text = result.get("text") if job.status == JobStatus.SUCCEEDED else None
    summary = result.get("summary")
    if job.error:
        summary = str(job.error.get("message", ""))
        details = job.error.get("details")
        result = details if isinstance(details, dict) else {}  # a stopped run's work so far
    return AgentRunResponse(
        id=job.id,
        organization_id=job.org_id,
        status=codegen_status(job, plan),
        created_at=iso(job.created_at),
        web_url=run_url(base_url, job),
        result=text,
        summary=summary,
        source_type=SourceType(job.input.get("source_type", SourceType.API)),
        github_pull_requests=_pull_requests(result, job),
        metadata=job.input.get("metadata"),
        plan=plan.plan if plan is not None else result.get("plan"),
        branch=result.get("branch") or job.input.get("branch"),
        commit=result.get("commit"),
        diff_stat=result.get("diff_stat"),
    )


def _pull_requests(result: dict[str, Any], job: Job) -> list[GithubPullRequest]:
    """The pull request the run opened or updated (Codegen's `github_pull_requests`)."""
    pull = result.get("pull_request")
    if not isinstance(pull, dict) or not isinstance(pull.get("number"), int):
        return []
    return [
        GithubPullRequest(
            id=pull["number"],
            title=pull.get("title"),
            url=pull.get("url"),
            created_at=iso(job.finished_at or job.created_at),
            head_branch_name=result.get("branch"),
        )
    ]


def _status_entry(data: dict[str, Any]) -> dict[str, Any]:
    status = data.get("status")
    if status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return {
            "message_type": "ERROR",
            "tool_name": "status",
            "observation": data.get("error") or {"status": status, "reason": data.get("reason")},
        }
    return {
        "message_type": "ACTION",
        "tool_name": "status",
        "thought": f"Run {status}: {data.get('reason', '')}".strip(),
        "tool_output": {"status": status},
    }


def _output_entry(data: dict[str, Any]) -> dict[str, Any]:
    name = data.get("name")
    fields = {k: v for k, v in data.items() if k != "name"}
    if name == "request":
        return {"message_type": "USER_MESSAGE", "observation": str(data.get("prompt", ""))}
    if name == "result":
        return {
            "message_type": "FINAL_ANSWER",
            "thought": data.get("summary"),
            "observation": fields,
        }
    if name == "tool":
        return {
            "message_type": "ACTION",
            "tool_name": data.get("tool_name"),
            "thought": data.get("thought"),
            "tool_input": data.get("tool_input") or {},
            "tool_output": {"output": data.get("tool_output"), "is_error": data.get("is_error")},
            "observation": data.get("tool_output"),
        }
    if name == "thought":
        return {"message_type": "PLAN_EVALUATION", "thought": data.get("text")}
    if name == "plan":
        return {
            "message_type": "PLAN_EVALUATION",
            "thought": data.get("plan"),
            "observation": fields,
        }
    if name == "attempt":
        return {"message_type": "ACTION", "tool_name": "llm", "tool_input": fields}
    if name == "edits":
        return {
            "message_type": "ACTION",
            "tool_name": "apply_edits",
            "tool_input": {"files": data.get("files", [])},
            "tool_output": {"revision": data.get("revision")},
        }
    return {"message_type": "ACTION", "tool_name": str(name), "tool_output": fields}


def log_entry(event: JobEvent) -> AgentRunLog:
    """A job event as a Codegen log entry (text deltas are not logs: they are the answer)."""
    data = event.data or {}
    if event.type == EventType.STATUS:
        fields = _status_entry(data)
    elif event.type == EventType.OUTPUT:
        fields = _output_entry(data)
    elif event.type == EventType.PROGRESS:
        fields = {"message_type": "PLAN_EVALUATION", "thought": data.get("message")}
    elif event.type == EventType.LOG:
        fields = {
            "message_type": "ACTION",
            "tool_name": "run_command",
            "observation": data.get("text"),
        }
    elif event.type == EventType.CANCEL_REQUESTED:
        fields = {"message_type": "USER_MESSAGE", "observation": "cancellation requested"}
    else:
        fields = {"message_type": "PLAN_EVALUATION", "thought": data.get("text")}
    return AgentRunLog(agent_run_id=event.job_id, created_at=iso(event.created_at), **fields)
