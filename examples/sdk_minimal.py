"""The minimal executor of process-gpt-agent-sdk's README, with only its imports changed to
:mod:`processgpt_agent_sdk.compat` (it was written for a2a-sdk 0.3)::

    processgpt worker --agent crewai-action --executor examples.sdk_minimal:MinimalExecutor

or, as that README starts it, in a script of its own::

    server = ProcessGPTAgentServer(agent_executor=MinimalExecutor(), agent_type="crewai-action")
    await server.run()
"""

import json

from processgpt_agent_sdk.compat import (
    AgentExecutor,
    EventQueue,
    RequestContext,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatusUpdateEvent,
    new_agent_text_message,
    new_text_artifact,
)


class MinimalExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        # 1) the input
        query = context.get_user_input()
        print("User Query:", query)

        # 2) a status event (the events table); json.dumps, never str()
        payload = {"demo": "hello world"}
        event_queue.enqueue_event(
            TaskStatusUpdateEvent(
                status={
                    "state": TaskState.working,
                    "message": new_agent_text_message(
                        json.dumps(payload, ensure_ascii=False),
                        context.get_context_data()["row"]["proc_inst_id"],
                        context.get_context_data()["row"]["id"],
                    ),
                },
                contextId=context.get_context_data()["row"]["proc_inst_id"],
                taskId=context.get_context_data()["row"]["id"],
                metadata={"crew_type": "action", "event_type": "task_started"},
            )
        )

        # 3) the final artifact (the task's result in todolist)
        artifact = new_text_artifact(
            name="result",
            description="Demo Result",
            text=json.dumps(payload, ensure_ascii=False),
        )
        event_queue.enqueue_event(
            TaskArtifactUpdateEvent(
                artifact=artifact,
                lastChunk=True,
                contextId=context.get_context_data()["row"]["proc_inst_id"],
                taskId=context.get_context_data()["row"]["id"],
            )
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return
