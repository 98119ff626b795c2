"""CodePipeline stage transitions: DisableStageTransition, EnableStageTransition, GetPipelineState.

moto 5 implements only create/get/update/list/delete pipeline and tags; the
three actions a deploy pause needs answer "not implemented". db-migration
(seed 002: "the deployment process for the API should also be stopped because
it touches the database") disables the transition into the configured stage
for the run and enables it again on every path, and reads GetPipelineState to
know whether an operator had already disabled it. These are the AWS API
reference's shapes:

- state per pipeline, stage and transition type (`Inbound` or `Outbound`),
  kept on moto's pipeline object, so deleting the pipeline drops it and a
  stage an update removes stops being reported;
- DisableStageTransition records `enabled: false`, `disabledReason`,
  `lastChangedBy` (the caller's ARN, as STS GetCallerIdentity names it) and
  `lastChangedAt`; disabling again replaces the reason. EnableStageTransition
  records `enabled: true` with who and when. Both answer `{}`;
- GetPipelineState lists every stage with its actions' names and, for every
  stage but the first (nothing flows into the source stage), its
  `inboundTransitionState`: `{"enabled": true}` for one never changed;
- errors: `PipelineNotFoundException` for an unknown pipeline,
  `StageNotFoundException` for a stage the pipeline lacks,
  `ValidationException` for a transition type other than Inbound/Outbound, a
  reason outside 1-300 characters of `[a-zA-Z0-9!@ ().*?-]`, and a transition
  that does not exist (into the first stage, out of the last; real AWS shows
  no such transition, the error choice there is ours).

Not emulated: executions (moto runs no pipeline), so `inboundExecution`,
`latestExecution` and the actions' run states are absent.
"""

import json
import re
from typing import Any

from moto.codepipeline.exceptions import PipelineNotFoundException
from moto.codepipeline.models import CodePipeline, CodePipelineBackend
from moto.codepipeline.responses import CodePipelineResponse
from moto.core.exceptions import JsonRESTError
from moto.core.utils import utcnow
from moto.sts.models import sts_backends
from moto.utilities.utils import get_partition

TRANSITION_TYPES = ("Inbound", "Outbound")
REASON = re.compile(r"^[a-zA-Z0-9!@ ().*?-]{1,300}$")


class StageNotFoundException(JsonRESTError):
    code = 400

    def __init__(self, message: str):
        super().__init__("StageNotFoundException", message)


class ValidationException(JsonRESTError):
    code = 400

    def __init__(self, message: str):
        super().__init__("ValidationException", message)


def _transitions(pipeline: CodePipeline) -> dict[tuple[str, str], dict[str, Any]]:
    """(stage, type) -> the transition's state once changed; unchanged transitions are enabled."""
    if not hasattr(pipeline, "stage_transitions"):
        pipeline.stage_transitions = {}
    return pipeline.stage_transitions


def _pipeline(backend: CodePipelineBackend, name: str) -> CodePipeline:
    pipeline = backend.pipelines.get(name)
    if not pipeline:
        raise PipelineNotFoundException(
            f"Account '{backend.account_id}' does not have a pipeline with name '{name}'"
        )
    return pipeline


def _check_transition(pipeline: CodePipeline, stage: str, transition_type: str) -> None:
    if transition_type not in TRANSITION_TYPES:
        raise ValidationException(
            f"1 validation error detected: Value '{transition_type}' at 'transitionType' failed to satisfy constraint: "
            "Member must satisfy enum value set: [Inbound, Outbound]"
        )
    names = [s["name"] for s in pipeline.pipeline["stages"]]
    if stage not in names:
        raise StageNotFoundException(
            f"Stage '{stage}' not found in pipeline '{pipeline.pipeline['name']}'"
        )
    index = names.index(stage)
    if (transition_type == "Inbound" and index == 0) or (
        transition_type == "Outbound" and index == len(names) - 1
    ):
        raise ValidationException(
            f"Stage '{stage}' has no {transition_type.lower()} transition: it is the pipeline's "
            f"{'first' if index == 0 else 'last'} stage"
        )


def _set_transition(
    backend: CodePipelineBackend,
    caller: str,
    name: str,
    stage: str,
    transition_type: str,
    reason: str | None,
) -> None:
    pipeline = _pipeline(backend, name)
    _check_transition(pipeline, stage, transition_type)
    state: dict[str, Any] = {
        "enabled": reason is None,
        "lastChangedBy": caller,
        "lastChangedAt": utcnow().timestamp(),
    }
    if reason is not None:
        state["disabledReason"] = reason
    _transitions(pipeline)[(stage, transition_type)] = state


def _pipeline_state(backend: CodePipelineBackend, name: str) -> dict[str, Any]:
    pipeline = _pipeline(backend, name)
    transitions = _transitions(pipeline)
    stages = []
    for index, stage in enumerate(pipeline.pipeline["stages"]):
        entry: dict[str, Any] = {
            "stageName": stage["name"],
            "actionStates": [{"actionName": a["name"]} for a in stage["actions"]],
        }
        if index > 0:
            entry["inboundTransitionState"] = transitions.get(
                (stage["name"], "Inbound"), {"enabled": True}
            )
        stages.append(entry)
    return {
        "pipelineName": name,
        "pipelineVersion": pipeline.pipeline["version"],
        "stageStates": stages,
        "created": pipeline._created.timestamp(),
        "updated": pipeline._updated.timestamp(),
    }


def _caller(response: CodePipelineResponse) -> str:
    """Who changed the transition, as AWS records it: the caller's ARN."""
    sts = sts_backends[response.current_account][get_partition(response.region)]
    _, arn, _ = sts.get_caller_identity(response.get_access_key(), response.region)
    return arn


def disable_stage_transition(self: CodePipelineResponse) -> str:
    reason = self._get_param("reason")
    if not isinstance(reason, str) or not REASON.match(reason):
        raise ValidationException(
            "1 validation error detected: Value at 'reason' failed to satisfy constraint: "
            "Member must have length between 1 and 300 and match [a-zA-Z0-9!@ \\(\\)\\.\\*\\?\\-]+"
        )
    _set_transition(
        self.codepipeline_backend,
        _caller(self),
        self._get_param("pipelineName"),
        self._get_param("stageName"),
        self._get_param("transitionType"),
        reason,
    )
    return "{}"


def enable_stage_transition(self: CodePipelineResponse) -> str:
    _set_transition(
        self.codepipeline_backend,
        _caller(self),
        self._get_param("pipelineName"),
        self._get_param("stageName"),
        self._get_param("transitionType"),
        None,
    )
    return "{}"


def get_pipeline_state(self: CodePipelineResponse) -> str:
    return json.dumps(_pipeline_state(self.codepipeline_backend, self._get_param("name")))


def install() -> None:
    # moto dispatches an action to the response method of its snake_case name.
    CodePipelineResponse.disable_stage_transition = disable_stage_transition
    CodePipelineResponse.enable_stage_transition = enable_stage_transition
    CodePipelineResponse.get_pipeline_state = get_pipeline_state
