"""Generation jobs: one JetStream work-queue consumer per `jobs.<kind>` subject.

`runner.job_consumer` gives a durable pull consumer named `gen-<kind>` (dots become dashes:
NATS durable names cannot hold them) on the JOBS stream, filtered to `jobs.<kind>`, with
`settings.worker_concurrency` jobs in flight per process unless told otherwise. A handler that
returns acks the job; one that raises is redelivered with backoff (`jobs_retry_backoff_seconds`:
1 s, 4 s, 16 s, so 3 retries), then `on_exhausted` runs; `PermanentError` skips the retries.
A worker killed mid-job never acks: JetStream redelivers the job after
`jobs_ack_wait_seconds` (the consumer tells JetStream a long job is still alive while it
runs), so handlers must be idempotent.

The session jobs (`curriculum.py`, `article.py`, `conversion.py`) are one runner
(`session_tasks.consumer`) configured by a `SessionJob` each: the payload, the task, the result
event and how the failure event names the job. A new session job kind is one more such module::

    SUMMARY = session_tasks.SessionJob(
        kind=subjects.SUMMARY_JOB_KIND,        # jobs.summary.generate, durable gen-summary-generate
        task="summary",
        payload=events_pb2.GenerateSummaryJob,
        subject=subjects.SUMMARY_GENERATED,    # the result event
        event_prefix="summary",                # its event id: summary-<the job's event id>
        logged_as="summary_generated",
        result=_result,                        # (job, output, context, usage) -> (event, log)
        failed=_failed,                        # job -> GenerationFailed naming it
    )

    def consumer(ctx: JobContext) -> DurableConsumer:
        return session_tasks.consumer(ctx, SUMMARY)

and its factory in `events.JOB_CONSUMERS`. `subtopics.py` runs a sub-topic generation, whose
state is the generation's own row (service.generate_subtopics).
"""
